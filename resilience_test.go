package main

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// TestReadyzTellsNoInternals: with Redis refusing connections or refusing
// the password, /readyz keeps the instance in rotation (200) and says it is
// degraded, without the dial address, the Redis error or its reply text,
// which are for the log, not for whoever can reach the port.
func TestReadyzTellsNoInternals(t *testing.T) {
	const password = "s3cretPW"
	server, err := startRedisServer("--requirepass", password)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(server.stop)
	for _, tc := range []struct {
		name     string
		redisURL string
		prepare  func()
	}{
		{"wrong password", "redis://:wrong-" + password + "@" + server.addr() + "/0", func() {}},
		{"stopped", "redis://:" + password + "@" + server.addr() + "/0", server.stop},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := startApp(t, map[string]string{"REDIS_URL": tc.redisURL})
			tc.prepare()
			resp := app.get(t, "/readyz", "")
			if resp.status != http.StatusOK || !strings.HasPrefix(resp.body, "degraded") {
				t.Errorf("GET /readyz = %d %q, want 200 and a body saying degraded", resp.status, resp.body)
			}
			for _, internal := range []string{strconv.Itoa(server.port), "127.0.0.1", "dial", "refused", "WRONGPASS", "NOAUTH", "password", password, "redis:"} {
				if strings.Contains(resp.body, internal) {
					t.Errorf("GET /readyz tells %q: %q", internal, resp.body)
				}
			}
		})
	}
}
