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

// TestSparedCommandsGetNoFault: the commands the Spared option names (a
// health check's, by key) get no delay and no failure at either layer, a
// script's by its first key; the same commands on another key do.
func TestSparedCommandsGetNoFault(t *testing.T) {
	const spared = "chaos-test:{ready}"
	script := redis.NewScript(`return redis.call("GET", KEYS[1])`)
	for _, layer := range []string{LayerCommand, LayerConnection} {
		t.Run(layer, func(t *testing.T) {
			e := testExperiment(t, map[string]string{"CHAOS": "latency,error", "CHAOS_DELAY_SECONDS": "0.02",
				"CHAOS_ERROR_EVERY": "1", "CHAOS_LAYER": layer}, Options{
				Spared: func(c Command) bool { return c.Key == spared },
			})
			rdb := testClient(t, e, redis.Options{MaxRetries: -1})
			if err := rdb.Ping(t.Context()).Err(); err != nil { // the handshake, out of the way
				t.Fatal(err)
			}
			before := e.Status("").Counters
			if err := rdb.Get(t.Context(), spared).Err(); err != redis.Nil {
				t.Errorf("GET of the spared key: %v, want redis.Nil (no failure)", err)
			}
			if err := script.Run(t.Context(), rdb, []string{spared}).Err(); err != redis.Nil {
				t.Errorf("the script on the spared key: %v, want redis.Nil", err)
			}
			c := e.Status("").Counters
			if faults := c.DelaysInjected + c.ErrorsInjected - before.DelaysInjected - before.ErrorsInjected; faults != 0 {
				t.Errorf("the spared commands got %d faults: %+v", faults, c)
			}
			if err := rdb.Get(t.Context(), "chaos-test:other").Err(); err == nil || err == redis.Nil {
				t.Errorf("GET of another key: %v, want the injected failure", err)
			}
			script.Run(t.Context(), rdb, []string{"chaos-test:other"})
			if after := e.Status("").Counters; after.DelaysInjected == c.DelaysInjected {
				t.Errorf("the script on another key was not delayed: %+v", after)
			}
		})
	}
}
