//go:build chaos

package main

import (
	"net/http"
	"regexp"
	"testing"
	"time"

	"example.com/shopsession/chaos"
)

// The connection layer's own tests, against a real redis-server, are
// package chaos's (chaos/conn_test.go); this one runs it in the shop.

// TestConnectionLayerInTheApp: the connection layer over env and PUT. The
// latency delays both round trips of a search while the status counts them
// at the connection layer; the error drops every other read's connection and
// the page still renders, without recommendations.
func TestConnectionLayerInTheApp(t *testing.T) {
	const delay = 100 * time.Millisecond
	app := startApp(t, map[string]string{"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "0.1", "CHAOS_LAYER": "connection"})
	app.searchFor(t, "conn", "warm") // the script is loaded
	start := time.Now()
	if resp := app.searchFor(t, "conn", "apple"); resp.status != http.StatusOK || !hasRecommendation(resp.body) {
		t.Errorf("search with connection latency = %d, recommendation %v", resp.status, hasRecommendation(resp.body))
	}
	if took := time.Since(start); took < 2*delay || took > 4*delay {
		t.Errorf("a search took %v, want two %v delays", took, delay)
	}
	s := chaosStatusOf(t, app)
	if s.Layer != chaos.LayerConnection || s.Counters.Connection.DelaysInjected < 4 || s.Counters.DelaysInjected != s.Counters.Connection.DelaysInjected {
		t.Errorf("status %+v, counters %+v; want the delays at the connection layer, and in the total", s.Config, s.Counters)
	}

	if resp := putChaos(t, app, `{"experiment":"error","layer":"connection"}`); resp.status != http.StatusOK {
		t.Fatalf("PUT = %d %s", resp.status, resp.body)
	}
	withRecs := 0
	for range 4 {
		resp := app.searchFor(t, "conn", "pear")
		if resp.status != http.StatusOK {
			t.Errorf("status %d", resp.status)
		}
		if hasRecommendation(resp.body) {
			withRecs++
		}
	}
	s = chaosStatusOf(t, app)
	if withRecs != 2 || s.Counters.Connection.ConnectionsDropped != 2 || s.Counters.ErrorsInjected != 2 {
		t.Errorf("%d of 4 pages with recommendations, counters %+v; want 2 and 2 dropped connections", withRecs, s.Counters)
	}
	app.logs.waitFor(t, regexp.MustCompile(`msg="redis error EOF" op=read`))
	m := scrape(t, app)
	m.expect(t, 1, "shopsession_chaos_connection_layer", "run_id", "")
	m.expect(t, 2, "shopsession_chaos_connections_dropped_total", "run_id", "")
	m.expect(t, float64(s.Counters.Connection.DelaysInjected), "shopsession_chaos_connection_delays_injected_total", "run_id", "")
	m.expect(t, float64(s.Counters.Connection.DelaysInjected), "shopsession_chaos_delays_injected_total", "run_id", "")
	m.expect(t, 2, "shopsession_chaos_errors_injected_total", "run_id", "")
	m.expect(t, 2, "shopsession_chaos_group_errors_injected_total", "chaos_group", "experiment", "run_id", "")
}
