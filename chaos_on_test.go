//go:build chaos

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"example.com/shopsession/chaos"
	"github.com/google/uuid"
)

// TestChaosConfigInvalid: the shop refuses an invalid experiment as a usage
// error, one line, with chaos.FromEnv's text (whose every message
// chaos.TestFromEnvRefuses checks), and run refuses to start on it.
func TestChaosConfigInvalid(t *testing.T) {
	for _, env := range []map[string]string{
		{"CHAOS": "true"},
		{"CHAOS_DELAY_SECONDS": "Inf"},
		{"CHAOS_ERROR_RATE": "0.3", "CHAOS_ERROR_EVERY": "2"},
		{"CHAOS": "latency", "CHAOS_LAYER": "connection", "CHAOS_SESSIONS_PERCENT": "50"},
		{"CHAOS_DURATION_SECONDS": "1e6"},
	} {
		_, want := chaos.FromEnv(mapGetenv(env))
		e, err := newExperiment(mapGetenv(env), slog.New(slog.NewTextHandler(io.Discard, nil)))
		var usage usageError
		if want == nil || e != nil || !errors.As(err, &usage) || err.Error() != want.Error() || strings.Contains(err.Error(), "\n") {
			t.Errorf("env %v: %v, error %q; want no experiment and one usage line %q", env, e, err, want)
		}
	}
	// run refuses to start on it, with the same usage error.
	err := run(t.Context(), onFreePorts, mapGetenv(map[string]string{"CHAOS": "true", "REDIS_URL": testRedis.url()}), nil, newLogBuffer())
	var usage usageError
	if !errors.As(err, &usage) || !strings.Contains(err.Error(), `invalid CHAOS "true": ambiguous`) {
		t.Errorf("run with CHAOS=true returned %v, want the usage error", err)
	}
}

func chaosStatusOf(t *testing.T, app *testApp) chaos.Status {
	t.Helper()
	resp := app.admin.get(t, "/debug/chaos", "")
	if resp.status != http.StatusOK || resp.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /debug/chaos = %d %s", resp.status, resp.header.Get("Content-Type"))
	}
	var status chaos.Status
	if err := json.Unmarshal([]byte(resp.body), &status); err != nil {
		t.Fatalf("GET /debug/chaos: %v in %s", err, resp.body)
	}
	return status
}

func TestChaosUnsetInjectsNothing(t *testing.T) {
	app := startApp(t, nil)
	for range 4 {
		if resp := app.searchFor(t, "unset", "apple"); !hasRecommendation(resp.body) {
			t.Fatalf("no recommendation with CHAOS unset")
		}
	}
	status := chaosStatusOf(t, app)
	if status.Build != "chaos" || !strings.Contains(status.Warning, "not for production") || status.Experiment != "none" ||
		status.Counters.DelaysInjected != 0 || status.Counters.DelaySecondsInjected != 0 || status.Counters.ErrorsInjected != 0 || status.ActiveSince.Latency != nil || status.ActiveSince.Error != nil {
		t.Errorf("status = %+v, want the chaos build, no experiment, nothing injected", status)
	}
	app.logs.waitFor(t, regexp.MustCompile(`level=WARN msg="CHAOS BUILD[^"]*" experiment=none`))
}

func TestLatencyDelaysEveryRoundTrip(t *testing.T) {
	const delay = 50 * time.Millisecond
	app := startApp(t, map[string]string{"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "0.05"})
	app.logs.waitFor(t, regexp.MustCompile(`level=WARN msg="CHAOS BUILD[^"]*" experiment=latency delay_seconds=0.05`))
	app.searchFor(t, "latency", "warm-up") // opens the pool's connection

	for range 3 {
		before := chaosStatusOf(t, app).Counters
		start := time.Now()
		resp := app.searchFor(t, "latency", "apple")
		elapsed := time.Since(start)
		after := chaosStatusOf(t, app).Counters

		if !hasRecommendation(resp.body) {
			t.Errorf("latency below the Redis timeout cost the recommendation")
		}
		trips := after.RedisRoundTrips - before.RedisRoundTrips
		if trips != 2 || after.DelaysInjected-before.DelaysInjected != 2 {
			t.Errorf("a search made %d round trips and %d delays, want 2 and 2", trips, after.DelaysInjected-before.DelaysInjected)
		}
		if elapsed < time.Duration(trips)*delay {
			t.Errorf("a search took %v, less than %d × %v", elapsed, trips, delay)
		}
		// The hook counts what it waited: at least what was asked for, and
		// never more than the search took.
		injected := time.Duration((after.DelaySecondsInjected - before.DelaySecondsInjected) * float64(time.Second))
		if injected < time.Duration(trips)*delay || injected > elapsed {
			t.Errorf("injected %v for %d delays of %v in a search of %v", injected, trips, delay, elapsed)
		}
	}
}

func TestLatencyEndsWithTheContext(t *testing.T) {
	app := startApp(t, map[string]string{"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "30", "REDIS_TIMEOUT": "100ms"})
	start := time.Now()
	resp := app.searchFor(t, "slow", "apple")
	// Loose on purpose: the bound only shows the 30 s wait did not run out.
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("a search took %v; the delay should end with the 100ms Redis timeout", elapsed)
	}
	if resp.status != http.StatusOK || hasRecommendation(resp.body) {
		t.Errorf("status %d, recommendation %v; want 200 without", resp.status, hasRecommendation(resp.body))
	}
	app.logs.waitFor(t, regexp.MustCompile(`msg="redis error context deadline exceeded" op=read`))
}

func TestErrorFailsEveryOtherRead(t *testing.T) {
	app := startApp(t, map[string]string{"CHAOS": "error"})
	id := uuid.NewString()
	for i := 1; i <= 6; i++ {
		resp := app.searchFor(t, id, fmt.Sprint("q", i))
		failed := i%2 == 0
		if resp.status != http.StatusOK || hasRecommendation(resp.body) == failed {
			t.Errorf("read %d: status %d, recommendation %v; want 200 and a recommendation only on odd reads", i, resp.status, hasRecommendation(resp.body))
		}
	}
	if n := strings.Count(app.logs.String(), `msg="redis error CHAOS" op=read`); n != 3 {
		t.Errorf("log has %d 'redis error CHAOS' lines, want 3:\n%s", n, app.logs.String())
	}
	if c := chaosStatusOf(t, app).Counters; c.Reads != 6 || c.ErrorsInjected != 3 {
		t.Errorf("counters = %+v, want 6 reads and 3 errors", c)
	}
}

func TestErrorCountUnderConcurrency(t *testing.T) {
	const clients, searches, every = 8, 20, 3
	app := startApp(t, map[string]string{"CHAOS": "error", "CHAOS_ERROR_EVERY": fmt.Sprint(every)})
	var mu sync.Mutex
	withoutRecommendation := 0
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			id := uuid.NewString()
			for s := range searches {
				resp := app.searchFor(t, id, fmt.Sprint("q", c, s))
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
	reads := int64(clients * searches)
	c := chaosStatusOf(t, app).Counters
	if c.Reads != reads || c.ErrorsInjected != reads/every || int64(withoutRecommendation) != reads/every {
		t.Errorf("%d reads: counters %+v, %d pages without a recommendation; want %d errors", reads, c, withoutRecommendation, reads/every)
	}
}

func TestLatencyAndErrorCombined(t *testing.T) {
	app := startApp(t, map[string]string{"CHAOS": "latency,error", "CHAOS_DELAY_SECONDS": "0.01"})
	app.searchFor(t, "both", "warm-up") // read 1 succeeds and opens the connection
	before := chaosStatusOf(t, app).Counters
	for i := range 4 { // reads 2 to 5: 2 and 4 fail before reaching Redis
		app.searchFor(t, "both", fmt.Sprint("q", i))
	}
	after := chaosStatusOf(t, app).Counters
	if got := after.ErrorsInjected - before.ErrorsInjected; got != 2 {
		t.Errorf("errors injected = %d, want 2", got)
	}
	if trips, delays := after.RedisRoundTrips-before.RedisRoundTrips, after.DelaysInjected-before.DelaysInjected; trips != 4 || delays != 4 {
		t.Errorf("round trips %d, delays %d; want 4 and 4 (two searches of two trips)", trips, delays)
	}
}

// An experiment that names the recommender is refused when the shop calls
// no recommender: it would be shown as running and inject nothing.
func TestRecommenderDependencyNeedsARecommender(t *testing.T) {
	env := map[string]string{"CHAOS": "error", "CHAOS_DEPENDENCIES": "recommender", "CHAOS_CONTROL_TOKEN": testControlToken}
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	if _, err := newExperiment(mapGetenv(env), discard); err == nil || !strings.Contains(err.Error(), `invalid CHAOS_DEPENDENCIES "recommender"`) {
		t.Errorf("without a recommender: %v, want CHAOS_DEPENDENCIES refused", err)
	}
	if _, err := newExperiment(mapGetenv(env), discard, recommenderDependency); err != nil {
		t.Errorf("with a recommender: %v", err)
	}
}
