package chaos

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// TestConnectionLayerFaultsAreCounted: at the connection layer, the totals
// and the experiment group count every delay and error that the
// connection_layer block counts, and so do their metrics; the control group
// gets none.
func TestConnectionLayerFaultsAreCounted(t *testing.T) {
	app := newPageService(t, nil, map[string]string{"CHAOS": "latency,error", "CHAOS_DELAY_SECONDS": "0.001",
		"CHAOS_ERROR_EVERY": "2", "CHAOS_LAYER": LayerConnection})
	reg := prometheus.NewRegistry()
	if err := app.e.Register(reg); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		app.search(fmt.Sprint("counted-", i))
	}
	s := app.status(t, "")
	c, conn := s.Counters, s.Counters.Connection
	errs := conn.ConnectionsDropped + conn.ErrorRepliesInjected
	if conn.DelaysInjected == 0 || errs == 0 || c.DelaysInjected != conn.DelaysInjected || c.ErrorsInjected != errs || c.DelaySecondsInjected <= 0 {
		t.Errorf("counters %+v; want the connection layer's %d delays and %d errors in the totals, with the time they waited", c, conn.DelaysInjected, errs)
	}
	if g := s.Groups["experiment"]; g.DelaysInjected != conn.DelaysInjected || g.ErrorsInjected != errs {
		t.Errorf("experiment group %+v; want %d delays and %d errors", g, conn.DelaysInjected, errs)
	}
	if g := s.Groups["control"]; g.DelaysInjected != 0 || g.ErrorsInjected != 0 {
		t.Errorf("control group %+v; want nothing injected", g)
	}
	m := gather(t, reg)
	m.expect(t, float64(conn.DelaysInjected), "chaos_delays_injected_total run_id=")
	m.expect(t, float64(errs), "chaos_errors_injected_total run_id=")
	m.expect(t, float64(conn.DelaysInjected), "chaos_group_delays_injected_total chaos_group=experiment run_id=")
	m.expect(t, float64(errs), "chaos_group_errors_injected_total chaos_group=experiment run_id=")
}

// roundTripsOf runs f and returns the round trips it added.
func roundTripsOf(e *Experiment, f func()) int64 {
	before := e.Status("").Counters.RedisRoundTrips
	f()
	return e.Status("").Counters.RedisRoundTrips - before
}

// TestRoundTripsAreCountedWhereTheyHappen: a command that waits in vain for
// a pooled connection makes no round trip; each try of a retried command
// makes one, and so does the handshake of a connection dialled anew.
func TestRoundTripsAreCountedWhereTheyHappen(t *testing.T) {
	t.Run("pool timeout", func(t *testing.T) {
		e := testExperiment(t, nil, Options{})
		rdb := testClient(t, e, redis.Options{PoolSize: 1, PoolTimeout: 50 * time.Millisecond, MaxRetries: -1})
		held := rdb.Conn() // holds the pool's one connection
		defer held.Close()
		if err := held.Ping(t.Context()).Err(); err != nil {
			t.Fatal(err)
		}
		var err error
		if trips := roundTripsOf(e, func() { err = rdb.Get(t.Context(), "chaos-test:pool").Err() }); trips != 0 || !errors.Is(err, redis.ErrPoolTimeout) {
			t.Errorf("a GET that found no connection: %v, %d round trips; want a pool timeout and none", err, trips)
		}
	})
	for _, tc := range []struct {
		name  string
		env   map[string]string
		trips int64
	}{
		// LOADING is retried on the same connection: two tries.
		{"error reply", map[string]string{"CHAOS_ERROR_REPLY": "LOADING"}, 2},
		// A dropped connection is retried on a new one: the retry's HELLO, then the GET.
		{"dropped connection", nil, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"CHAOS": "error", "CHAOS_ERROR_EVERY": "1", "CHAOS_LAYER": LayerConnection}
			for k, v := range tc.env {
				env[k] = v
			}
			rdb, e := connClient(t, env, redis.Options{MaxRetries: 1, DialerRetries: 1, MinRetryBackoff: time.Millisecond, MaxRetryBackoff: time.Millisecond})
			if err := rdb.Ping(context.Background()).Err(); err != nil { // the first connection is dialled
				t.Fatal(err)
			}
			var err error
			trips := roundTripsOf(e, func() { err = rdb.Get(context.Background(), connSessionKeyPrefix+"retried").Err() })
			if tries := e.Status("").Counters.ErrorsInjected; err == nil || tries != 2 || trips != tc.trips {
				t.Errorf("a GET retried once: %v after %d tries, %d round trips; want an error after 2 tries, %d round trips", err, tries, trips, tc.trips)
			}
		})
	}
}

// TestGroupCountersSumSquares: the sum of squares that gives the spread of a
// group's searches loses no page added at once from many goroutines.
func TestGroupCountersSumSquares(t *testing.T) {
	var g groupCounters
	const pages, each = 8, 500
	done := make(chan struct{})
	for p := range pages {
		go func() {
			defer func() { done <- struct{}{} }()
			for range each {
				g.add(&request{}, outcome{took: time.Duration(p+1) * time.Millisecond})
			}
		}()
	}
	for range pages {
		<-done
	}
	f := g.figures()
	want := 0.0
	for p := range pages {
		want += each * float64(p+1) * float64(p+1) / 1e6
	}
	if f.Searches != pages*each || f.SearchSquareSeconds < want*(1-1e-9) || f.SearchSquareSeconds > want*(1+1e-9) {
		t.Fatalf("%d searches, %g s² summed; want %d and %g s²", f.Searches, f.SearchSquareSeconds, pages*each, want)
	}
}
