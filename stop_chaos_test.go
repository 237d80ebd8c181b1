//go:build chaos

package main

import (
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitForDelaysInProgress polls the status until n delays are waiting.
func waitForDelaysInProgress(t *testing.T, app *testApp, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c := chaosStatusOf(t, app).Counters; c.DelaysInProgress != n; c = chaosStatusOf(t, app).Counters {
		if time.Now().After(deadline) {
			t.Fatalf("%d delays in progress after 10 s, want %d: %+v", c.DelaysInProgress, n, c)
		}
		runtime.Gosched()
	}
}

// TestDeleteEndsDelaysAtOnce: 16 searches inside a 5 s delay, at each
// layer, all get their page, rendered with its data, within 100 ms of the
// DELETE /debug/chaos's answer. REDIS_TIMEOUT is longer than the delay and
// the pool larger than the searches, so that only the DELETE ends the delays.
func TestDeleteEndsDelaysAtOnce(t *testing.T) {
	const searches, bound = 16, 100 * time.Millisecond
	for _, layer := range []string{"command", "connection"} {
		t.Run(layer, func(t *testing.T) {
			app := startApp(t, map[string]string{"REDIS_URL": testRedis.url() + "?pool_size=32", "REDIS_TIMEOUT": "10s"})
			app.searchFor(t, "halt-warm", "warm") // the script is loaded
			if resp := putChaos(t, app, fmt.Sprintf(`{"experiment":"latency","delay_seconds":5,"layer":%q}`, layer)); resp.status != http.StatusOK {
				t.Fatalf("PUT = %d %s", resp.status, resp.body)
			}
			pages, arrived := make([]response, searches), make([]time.Time, searches)
			var wg sync.WaitGroup
			for i := range searches {
				wg.Go(func() {
					pages[i] = app.searchFor(t, fmt.Sprint("halt-", layer, "-", i), "apple")
					arrived[i] = time.Now()
				})
			}
			waitForDelaysInProgress(t, app, searches)
			if resp := deleteChaos(t, app); resp.status != http.StatusOK {
				t.Fatalf("DELETE = %d %s", resp.status, resp.body)
			}
			deleted := time.Now()
			wg.Wait()
			slowest := time.Duration(0)
			for i, page := range pages {
				slowest = max(slowest, arrived[i].Sub(deleted))
				if page.status != http.StatusOK || !hasRecommendation(page.body) || !strings.Contains(page.body, "apple") {
					t.Errorf("search %d: %d, recommendation %v; want the page with its data", i, page.status, hasRecommendation(page.body))
				}
			}
			if slowest > bound {
				t.Errorf("the last of %d pages arrived %v after the DELETE's answer, want within %v", searches, slowest, bound)
			} else {
				t.Logf("the last of %d pages arrived %v after the DELETE's answer", searches, slowest)
			}
			if c := chaosStatusOf(t, app).Counters; c.DelaysInProgress != 0 {
				t.Errorf("%d delays still in progress", c.DelaysInProgress)
			}
		})
	}
}

// TestReadyzIsNotDelayed: a latency with no commands named leaves /readyz's
// PING alone at each layer, and the handshake of the connection it may
// dial: a 1.5 s delay must not fail a 1 s readiness probe.
func TestReadyzIsNotDelayed(t *testing.T) {
	for _, layer := range []string{"command", "connection"} {
		t.Run(layer, func(t *testing.T) {
			app := startApp(t, map[string]string{"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "1.5", "CHAOS_LAYER": layer})
			// The start's SCRIPT LOAD was delayed; the first GET may dial.
			before := chaosStatusOf(t, app).Counters
			for range 2 {
				start := time.Now()
				resp := app.get(t, "/readyz", "")
				took := time.Since(start)
				if resp.status != http.StatusOK || resp.body != "ready\n" || took > 500*time.Millisecond {
					t.Errorf("GET /readyz = %d %q after %v, want ready at once", resp.status, resp.body, took)
				}
			}
			if c := chaosStatusOf(t, app).Counters; c.DelaysInjected != before.DelaysInjected || c.Connection.DelaysInjected != before.Connection.DelaysInjected {
				t.Errorf("counters %+v, from %+v; want no delay injected", c, before)
			}
		})
	}
}
