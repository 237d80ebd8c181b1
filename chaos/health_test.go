package chaos

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestLatencySparesHealthChecks: with no commands named, a latency delays
// neither PING nor the handshake of the connection it dials (HELLO, and
// SELECT for a database other than 0), at either layer; naming ping
// targets it.
func TestLatencySparesHealthChecks(t *testing.T) {
	for _, layer := range []string{LayerCommand, LayerConnection} {
		for _, tc := range []struct {
			commands string
			delays   int64
		}{{"", 0}, {"ping", 1}} {
			t.Run(layer+"/commands="+tc.commands, func(t *testing.T) {
				e := testExperiment(t, map[string]string{"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "1.5",
					"CHAOS_LAYER": layer, "CHAOS_COMMANDS": tc.commands}, Options{})
				rdb := testClient(t, e, redis.Options{DB: 1}) // a new client: the PING dials
				start := time.Now()
				if err := rdb.Ping(t.Context()).Err(); err != nil {
					t.Fatal(err)
				}
				took := time.Since(start)
				c := e.Status("").Counters
				if c.DelaysInjected != tc.delays || (tc.delays == 0) != (took < time.Second) {
					t.Errorf("a PING on a new connection took %v with %d delays, want %d", took, c.DelaysInjected, tc.delays)
				}
			})
		}
	}
}
