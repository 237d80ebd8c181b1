//go:build chaos

package main

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestDebugChaosSendsTheShopsSecurityHeaders on every answer, refusals
// included: the admin listener's, around the package's control handler
// (whose own guard is chaos.TestHandlerRefusesWhatALoopbackPeerDoesNotProve's).
func TestDebugChaosSendsTheShopsSecurityHeaders(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	e, err := newExperiment(mapGetenv(map[string]string{"CHAOS": "error", "CHAOS_ERROR_EVERY": "3", "CHAOS_CONTROL_TOKEN": testControlToken}), logger)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: testRedis.addr()})
	t.Cleanup(func() { rdb.Close() })
	e.instrument(rdb)
	handler := newAdminHandler(newMetrics(), e, logger)
	for _, tc := range []struct{ method, host, remote, token, body string }{
		{"GET", "127.0.0.1", "127.0.0.1:1", "", ""},
		{"PUT", "127.0.0.1", "127.0.0.1:1", testControlToken, `{"experiment":"latency"}`},
		{"PUT", "127.0.0.1", "127.0.0.1:1", testControlToken, `nope`},
		{"PUT", "127.0.0.1", "127.0.0.1:1", "", `{"experiment":"latency"}`},
		{"PATCH", "127.0.0.1", "127.0.0.1:1", testControlToken, `{"delay_seconds":0.1}`},
		{"DELETE", "127.0.0.1", "127.0.0.1:1", testControlToken, ""},
		{"POST", "127.0.0.1", "127.0.0.1:1", "", ""},
		{"GET", "attacker.example", "127.0.0.1:1", "", ""},
		{"GET", "127.0.0.1", "192.0.2.7:1", "", ""},
	} {
		req := httptest.NewRequest(tc.method, "/debug/chaos", strings.NewReader(tc.body))
		req.Host, req.RemoteAddr = tc.host, tc.remote
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		h := rec.Header()
		if h.Get("Content-Security-Policy") != contentSecurityPolicy[0] || h.Get("X-Content-Type-Options") != "nosniff" ||
			h.Get("Referrer-Policy") != "no-referrer" || h.Get("Cache-Control") != "no-store" {
			t.Errorf("%s from %s to Host %s (%d): headers %v", tc.method, tc.remote, tc.host, rec.Code, h)
		}
	}
}

// TestDebugChaosRefusesBodiesThatAreNotAnExperiment: a PUT body must be one
// JSON object; anything else, however it arrives, is a 400 and changes
// nothing. Only a body over the limit is a 413.
func TestDebugChaosRefusesBodiesThatAreNotAnExperiment(t *testing.T) {
	app := startApp(t, map[string]string{"CHAOS": "error", "CHAOS_ERROR_EVERY": "3"})
	for _, body := range []string{`null`, ` null `, `[]`, `"latency"`, `1`, `true`, ``, `{`, `{"experiment":"latency"} x`} {
		resp := putChaos(t, app, body)
		if resp.status != http.StatusBadRequest {
			t.Errorf("PUT %q = %d %q, want 400", body, resp.status, resp.body)
		}
	}
	if resp := putChaos(t, app, `{"experiment":"latency","pad":"`+strings.Repeat("x", 64<<10)+`"}`); resp.status != http.StatusRequestEntityTooLarge {
		t.Errorf("PUT of more than 64 KiB = %d, want 413", resp.status)
	}

	// A chunked body with a malformed chunk size, sent as bytes on the wire.
	conn, err := net.Dial("tcp", strings.TrimPrefix(app.admin.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "PUT /debug/chaos HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "+testControlToken+
		"\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("PUT with a malformed chunked body = %d, want 400", resp.StatusCode)
	}
	if s := chaosStatusOf(t, app); s.Experiment != "error" || s.ErrorEvery != 3 {
		t.Errorf("refused bodies changed the experiment to %+v", s.Config)
	}
}
