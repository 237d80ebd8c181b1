package chaos

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// haltBound is how soon after its plan stops a delay must end: far more than
// a GET on loopback takes, far less than the 5 s delay.
const haltBound = 100 * time.Millisecond

// waitCondition waits for cond, yielding the processor between looks, and
// fails the test after 10 s.
func waitCondition(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 10 s", what)
		}
		runtime.Gosched()
	}
}

// TestStoppingEndsDelaysAtOnce: 16 GETs inside a 5 s delay, at each layer,
// all return within haltBound of their plan's end, however it ends (Stop, a
// replacement by Use, the end of the duration on the guardrails' clock), and
// each then reaches Redis as if there had been no delay.
func TestStoppingEndsDelaysAtOnce(t *testing.T) {
	const n = 16
	for _, layer := range []string{LayerCommand, LayerConnection} {
		for _, how := range []struct {
			name string
			stop func(*Experiment, *manualClock)
		}{
			{"Stop", func(e *Experiment, _ *manualClock) { e.Stop() }},
			{"Use", func(e *Experiment, _ *manualClock) {
				cfg, err := FromJSON([]byte(`{"experiment":"latency","delay_seconds":5,"commands":["set"],"layer":"` + layer + `"}`))
				if err != nil {
					panic(err)
				}
				e.Use(cfg)
			}},
			{"duration", func(_ *Experiment, c *manualClock) { c.advance(30 * time.Second) }},
		} {
			t.Run(layer+"/"+how.name, func(t *testing.T) {
				clock := &manualClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
				cfg, err := FromEnv(mapGetenv(map[string]string{"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "5",
					"CHAOS_COMMANDS": "get", "CHAOS_LAYER": layer, "CHAOS_DURATION_SECONDS": "30"}))
				if err != nil {
					t.Fatal(err)
				}
				e, err := newExperiment(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Token: testToken}, clock)
				if err != nil {
					t.Fatal(err)
				}
				// A pool and a read timeout large enough that neither ends a delay.
				rdb := testClient(t, e, redis.Options{PoolSize: n, ReadTimeout: 30 * time.Second, MaxRetries: -1})
				errs, returned := make([]error, n), make([]time.Time, n)
				var wg sync.WaitGroup
				for i := range n {
					wg.Go(func() {
						errs[i] = rdb.Get(t.Context(), "chaos-test:halt").Err()
						returned[i] = time.Now()
					})
				}
				waitCondition(t, "16 delays in progress", func() bool { return e.Status("").Counters.DelaysInProgress == n })
				stopped := time.Now()
				how.stop(e, clock)
				wg.Wait()
				slowest := time.Duration(0)
				for i := range n {
					slowest = max(slowest, returned[i].Sub(stopped))
					if errs[i] != redis.Nil {
						t.Errorf("GET %d: %v, want redis.Nil: the command reaches Redis once its delay ends", i, errs[i])
					}
				}
				if c := e.Status("").Counters; c.DelaysInjected != n || c.DelaysInProgress != 0 {
					t.Errorf("counters %+v, want %d delays, none in progress", c, n)
				}
				if slowest > haltBound {
					t.Errorf("the last of %d delayed GETs returned %v after the plan ended, want within %v", n, slowest, haltBound)
				}
			})
		}
	}
}

// TestAbortEndsDelaysAtOnce: ten pages hang inside a 30 s delay; the
// once-a-second judge aborts the experiment on its p99 and every page
// returns within 100 ms, at both layers.
func TestAbortEndsDelaysAtOnce(t *testing.T) {
	const pages, bound = 10, 100 * time.Millisecond
	for _, layer := range []string{LayerCommand, LayerConnection} {
		t.Run(layer, func(t *testing.T) {
			clock := &manualClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
			e, _ := newPageExperiment(t, clock, map[string]string{"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "30", "CHAOS_COMMANDS": "get",
				"CHAOS_STOP_SEARCH_P99_SECONDS": "0.5", "CHAOS_LAYER": layer})
			rdb := testClient(t, e, redis.Options{PoolSize: 16, ReadTimeout: time.Minute, MaxRetries: -1})
			h := e.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { rdb.Get(r.Context(), "chaos-test:abort") }))
			var wg sync.WaitGroup
			for range pages {
				wg.Go(func() {
					req := httptest.NewRequest(http.MethodPost, "/search", nil)
					req.Header.Set("Cookie", pageSessionCookie+"="+uuid.NewString())
					h.ServeHTTP(httptest.NewRecorder(), req)
				})
			}
			waitCondition(t, "10 delays in progress", func() bool { return e.Status("").Counters.DelaysInProgress == pages })
			clock.advance(time.Second) // the judge's tick: every page is past the p99
			start := time.Now()
			wg.Wait()
			if took, s := time.Since(start), e.Status(""); s.State != StateAborted || took > bound {
				t.Errorf("state %s (abort %+v); the hung pages returned %v after the abort, want within %v", s.State, s.Abort, took, bound)
			}
		})
	}
}
