//go:build chaos

package main

import (
	"net/http"
	"testing"
)

func TestChaosMetricsLatency(t *testing.T) {
	const delay = 0.05
	app := startApp(t, map[string]string{"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "0.05"})
	before := scrape(t, app)
	before.expect(t, 1, "shopsession_chaos_experiment_active", "experiment", "latency", "run_id", "")
	before.expect(t, 0, "shopsession_chaos_experiment_active", "experiment", "error", "run_id", "")
	delayedBefore := before.value("shopsession_chaos_delay_seconds_total", "run_id", "")
	for range 2 {
		app.searchFor(t, "chaos-metrics-latency", "apple")
	}
	s := scrape(t, app)
	// Two searches, two round trips each: a GET and an EVALSHA.
	s.expect(t, before.value("shopsession_chaos_delays_injected_total", "run_id", "")+4, "shopsession_chaos_delays_injected_total", "run_id", "")
	s.expect(t, 0, "shopsession_chaos_errors_injected_total", "run_id", "")
	// The seconds are measured, not delays × the setting: at least the four
	// delays, and less than a delay more than them.
	if waited := s.value("shopsession_chaos_delay_seconds_total", "run_id", "") - delayedBefore; waited < 4*delay || waited > 5*delay {
		t.Errorf("delay seconds rose by %v, want from %v to %v", waited, 4*delay, 5*delay)
	}

	if resp := putChaos(t, app, `{"experiment":"error"}`); resp.status != http.StatusOK {
		t.Fatalf("PUT = %d %s", resp.status, resp.body)
	}
	s = scrape(t, app)
	s.expect(t, 0, "shopsession_chaos_experiment_active", "experiment", "latency", "run_id", "")
	s.expect(t, 1, "shopsession_chaos_experiment_active", "experiment", "error", "run_id", "")
}

// TestChaosMetricsError: experiment 2 as an operator sees it — every other
// page without recommendations, each injected error a Redis error of a GET.
func TestChaosMetricsError(t *testing.T) {
	app := startApp(t, map[string]string{"CHAOS": "error"})
	app.searchFor(t, "chaos-metrics-error", "apple")
	for range 5 {
		app.get(t, "/search", "sessionID=chaos-metrics-error")
	}
	s := scrape(t, app)
	s.expect(t, 3, "shopsession_chaos_errors_injected_total", "run_id", "")
	s.expect(t, 3, "shopsession_redis_errors_total", "command", "get")
	s.expect(t, 6, "shopsession_redis_commands_total", "command", "get")
	s.expect(t, 3, "shopsession_redis_commands_total", "command", "evalsha")
	s.expect(t, 3, "shopsession_search_pages_total", "outcome", "with_recommendations")
	s.expect(t, 3, "shopsession_search_pages_total", "outcome", "without_recommendations")
	s.expect(t, 0, "shopsession_chaos_delays_injected_total", "run_id", "")
	s.expect(t, 0, "shopsession_chaos_delay_seconds_total", "run_id", "")
}

// TestChaosDelaySecondsAreWaited: a delay cut short by the Redis timeout
// counts the time it waited, not the delay it was set to.
func TestChaosDelaySecondsAreWaited(t *testing.T) {
	app := startApp(t, map[string]string{"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "30", "REDIS_TIMEOUT": "100ms"})
	before := scrape(t, app)
	app.searchFor(t, "chaos-metrics-cut-short", "apple") // the read times out; no write follows
	s := scrape(t, app)
	s.expect(t, before.value("shopsession_chaos_delays_injected_total", "run_id", "")+1, "shopsession_chaos_delays_injected_total", "run_id", "")
	s.expect(t, before.value("shopsession_redis_errors_total", "command", "get")+1, "shopsession_redis_errors_total", "command", "get")
	waited := s.value("shopsession_chaos_delay_seconds_total", "run_id", "") - before.value("shopsession_chaos_delay_seconds_total", "run_id", "")
	if waited < 0.1 || waited > 5 {
		t.Errorf("delay seconds rose by %v for one 30 s delay cut short at 100 ms, want about 0.1", waited)
	}
}
