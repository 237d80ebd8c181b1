//go:build chaos

package main

import (
	"fmt"
	"net/http"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// waitForRecommendations searches until a page shows recommendations again.
func waitForRecommendations(t *testing.T, app *testApp) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !hasRecommendation(app.searchFor(t, "back-"+uuid.NewString(), "lamp").body) {
		if time.Now().After(deadline) {
			t.Fatalf("no recommendations 10 s after Redis came back; log:\n%s", app.logs.String())
		}
		runtime.Gosched()
	}
}

// TestEveryOtherReadFailingNeverOpensTheBreaker: experiment 2 under 32
// concurrent clients, with the most sensitive breaker allowed
// (BREAKER_FAILURES=3), stays exact:
// the breaker never opens, every other read fails and is logged, and every
// page is a 200.
func TestEveryOtherReadFailingNeverOpensTheBreaker(t *testing.T) {
	const clients, searches = 32, 60
	app := startApp(t, map[string]string{"CHAOS": "error", "BREAKER_FAILURES": "3"})
	var mu sync.Mutex
	withoutRecommendation := 0
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for s := range searches {
				resp := app.searchFor(t, fmt.Sprint("exp2-", c), fmt.Sprint("q", s%5))
				if resp.status != http.StatusOK {
					t.Errorf("status %d", resp.status)
				}
				if !hasRecommendation(resp.body) {
					mu.Lock()
					withoutRecommendation++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	logs := app.logs.String()
	if strings.Contains(logs, "circuit breaker") {
		t.Errorf("experiment 2 changed the breaker's state:\n%s", regexp.MustCompile(`(?m)^.*circuit breaker.*$`).FindAllString(logs, -1))
	}
	reads := int64(clients * searches)
	c := chaosStatusOf(t, app).Counters
	logged := strings.Count(logs, `msg="redis error CHAOS" op=read`)
	if c.Reads != reads || c.ErrorsInjected != reads/2 || int64(withoutRecommendation) != reads/2 || int64(logged) != reads/2 {
		t.Errorf("%d searches: counters %+v, %d pages without a recommendation, %d 'redis error CHAOS' lines; want %d of each",
			reads, c, withoutRecommendation, logged, reads/2)
	}
}

// TestRedisSlowerThanTimeout: with every Redis round trip slower than
// REDIS_TIMEOUT, 16 clients' 320 searches all get a full page without
// recommendations; the breaker opens, so only the operations before that,
// those in flight then, and one probe per cool-down wait for the timeout.
// When Redis is fast again, recommendations come back.
func TestRedisSlowerThanTimeout(t *testing.T) {
	const clients, pages, failures = 16, 20, 5
	app := startApp(t, map[string]string{"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "1", "REDIS_TIMEOUT": "200ms",
		"BREAKER_FAILURES": fmt.Sprint(failures), "BREAKER_COOLDOWN": "1s"})
	before := chaosStatusOf(t, app).Counters
	searchConcurrently(t, app, clients, pages)
	waited := chaosStatusOf(t, app).Counters.DelaysInjected - before.DelaysInjected

	logs := app.logs.String()
	probes := strings.Count(logs, `msg="redis circuit breaker half-open`)
	if n := len(breakerOpened.FindAllString(logs, -1)); n != 1+probes {
		t.Errorf("the breaker opened %d times with %d probes, want once plus once per failed probe", n, probes)
	}
	if limit := int64(failures + 2*clients + probes); waited > limit {
		t.Errorf("%d of %d searches waited for the timeout, want at most %d (%d probes)", waited, clients*pages, limit, probes)
	} else {
		t.Logf("%d of %d searches waited for the timeout (%d probes)", waited, clients*pages, probes)
	}
	if resp := app.get(t, "/readyz", ""); resp.status != http.StatusOK || !strings.HasPrefix(resp.body, "degraded") {
		t.Errorf("GET /readyz with the breaker open = %d %q, want 200 degraded", resp.status, resp.body)
	}

	if resp := deleteChaos(t, app); resp.status != http.StatusOK {
		t.Fatalf("DELETE /debug/chaos = %d %s", resp.status, resp.body)
	}
	waitForRecommendations(t, app)
	app.logs.waitFor(t, regexp.MustCompile(`msg="redis circuit breaker closed`))
	if resp := app.get(t, "/readyz", ""); resp.status != http.StatusOK || resp.body != "ready\n" {
		t.Errorf("GET /readyz with Redis back = %d %q, want 200 ready", resp.status, resp.body)
	}
}
