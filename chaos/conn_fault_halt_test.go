package chaos

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// holdingConnFaults are the connection faults that hold a read: a
// blackhole, for as long as the read's deadline (30 s here), and a slow
// reply of 2 000 bytes at 10 a second, 200 s. The value is small so that
// what follows the fault's end, the reply read at once, takes little even
// under -race: the bound is on the fault.
var holdingConnFaults = []struct {
	name string
	env  map[string]string
	held func(ConnCounters) int64
}{
	{ConnFaultBlackhole, map[string]string{"CHAOS_CONN_FAULT": "blackhole"}, func(c ConnCounters) int64 { return c.ReadsBlackholed }},
	{ConnFaultSlowReply, map[string]string{"CHAOS_CONN_FAULT": "slow_reply", "CHAOS_SLOW_REPLY_BYTES_PER_SECOND": "10"}, func(c ConnCounters) int64 { return c.SlowReplies }},
}

const heldValueSize = 2_000

// seedHeldValue stores the value the held reads read, under key.
func seedHeldValue(t *testing.T, key string) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: testRedis.Addr()})
	defer rdb.Close()
	if err := rdb.Set(context.Background(), key, strings.Repeat("v", heldValueSize), time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestStoppingEndsHeldConnFaultsAtOnce: 16 GETs held by a blackhole or a
// slow reply all return within haltBound of their plan's end, however it
// ends (Stop, a replacement by Use, the end of the duration on the
// guardrails' clock), each with the whole value Redis holds: the blackhole
// lifts as for a continued process, the trickle gives the rest at once.
func TestStoppingEndsHeldConnFaultsAtOnce(t *testing.T) {
	const n = 16
	key := connSessionKeyPrefix + "held"
	seedHeldValue(t, key)
	for _, fault := range holdingConnFaults {
		for _, how := range []struct {
			name string
			stop func(*Experiment, *manualClock)
		}{
			{"Stop", func(e *Experiment, _ *manualClock) { e.Stop() }},
			{"Use", func(e *Experiment, _ *manualClock) {
				cfg, err := FromJSON([]byte(`{"experiment":"latency","delay_seconds":5,"commands":["set"],"layer":"connection"}`))
				if err != nil {
					panic(err)
				}
				e.Use(cfg)
			}},
			{"duration", func(_ *Experiment, c *manualClock) { c.advance(30 * time.Second) }},
		} {
			t.Run(fault.name+"/"+how.name, func(t *testing.T) {
				clock := &manualClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
				env := withFault(fault.env, "CHAOS_DURATION_SECONDS", "30")
				cfg, err := FromEnv(mapGetenv(env))
				if err != nil {
					t.Fatal(err)
				}
				opts := connOptions
				opts.Logger, opts.Token = slog.New(slog.NewTextHandler(io.Discard, nil)), testToken
				e, err := newExperiment(cfg, opts, clock)
				if err != nil {
					t.Fatal(err)
				}
				rdb := testClient(t, e, redis.Options{PoolSize: n, ReadTimeout: 30 * time.Second, MaxRetries: -1})
				values, errs, returned := make([]string, n), make([]error, n), make([]time.Time, n)
				var wg sync.WaitGroup
				for i := range n {
					wg.Go(func() {
						values[i], errs[i] = rdb.Get(t.Context(), key).Result()
						returned[i] = time.Now()
					})
				}
				waitCondition(t, "16 reads held", func() bool { return fault.held(e.Status("").Counters.Connection) == n })
				stopped := time.Now()
				how.stop(e, clock)
				wg.Wait()
				slowest := time.Duration(0)
				for i := range n {
					slowest = max(slowest, returned[i].Sub(stopped))
					if errs[i] != nil || len(values[i]) != heldValueSize {
						t.Errorf("GET %d: %d bytes, %v; want the %d bytes Redis holds", i, len(values[i]), errs[i], heldValueSize)
					}
				}
				if slowest > haltBound {
					t.Errorf("the last of %d held GETs returned %v after the plan ended, want within %v", n, slowest, haltBound)
				}
			})
		}
	}
}

// TestAbortEndsHeldConnFaultsAtOnce: ten pages held by a blackhole or a
// slow reply; the once-a-second judge aborts the experiment on its p99 and
// every page returns within 100 ms.
func TestAbortEndsHeldConnFaultsAtOnce(t *testing.T) {
	const pages = 10
	key := pageSessionKeyPrefix + "held"
	seedHeldValue(t, key)
	for _, fault := range holdingConnFaults {
		t.Run(fault.name, func(t *testing.T) {
			clock := &manualClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
			e, _ := newPageExperiment(t, clock, withFault(fault.env, "CHAOS_STOP_SEARCH_P99_SECONDS", "0.5"))
			rdb := testClient(t, e, redis.Options{PoolSize: 16, ReadTimeout: time.Minute, MaxRetries: -1})
			h := e.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { rdb.Get(r.Context(), key) }))
			var wg sync.WaitGroup
			for range pages {
				wg.Go(func() {
					req := httptest.NewRequest(http.MethodPost, "/search", nil)
					req.Header.Set("Cookie", pageSessionCookie+"="+uuid.NewString())
					h.ServeHTTP(httptest.NewRecorder(), req)
				})
			}
			waitCondition(t, "10 reads held", func() bool { return fault.held(e.Status("").Counters.Connection) == pages })
			clock.advance(time.Second) // the judge's tick: every page is past the p99
			start := time.Now()
			wg.Wait()
			if took, s := time.Since(start), e.Status(""); s.State != StateAborted || took > haltBound {
				t.Errorf("state %s (abort %+v); the held pages returned %v after the abort, want within %v", s.State, s.Abort, took, haltBound)
			}
		})
	}
}

// withFault is a connection-layer error experiment failing every read with
// fault's settings, and kv added.
func withFault(fault map[string]string, kv ...string) map[string]string {
	env := map[string]string{"CHAOS": "error", "CHAOS_ERROR_EVERY": "1", "CHAOS_LAYER": LayerConnection}
	for k, v := range fault {
		env[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		env[kv[i]] = kv[i+1]
	}
	return env
}
