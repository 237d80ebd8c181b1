//go:build chaos

package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestDryRunThroughTheShop: a dry run of 1 s on every round trip leaves
// every search fast, and one of every 2nd read failing leaves every search
// its recommendations; each counts what it would have injected, which for
// the reads is what the same experiment, run for real on the same searches,
// then injects.
func TestDryRunThroughTheShop(t *testing.T) {
	app := startApp(t, map[string]string{"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "1", "CHAOS_DRY_RUN": "true"})
	before := chaosStatusOf(t, app).Counters
	id := uuid.NewString()
	for i := range 3 {
		start := time.Now()
		resp := app.searchFor(t, id, fmt.Sprint("q", i))
		if took := time.Since(start); resp.status != http.StatusOK || took > 500*time.Millisecond {
			t.Errorf("search %d in a dry run of 1 s: %d after %v, want 200 well under 1 s", i, resp.status, took)
		}
	}
	s := chaosStatusOf(t, app)
	// Three searches of two round trips: the read and the write.
	if c := s.Counters; !s.DryRun || s.State != "running" || c.DelaysInjected != 0 || c.DelaysWouldInject-before.DelaysWouldInject != 6 {
		t.Errorf("dry run %v, state %s, counters %+v; want 6 delays it would inject, none injected", s.DryRun, s.State, c)
	}
	if g := s.Groups["experiment"]; g.Searches != 3 || g.DelaysWouldInject != 6 || g.DelaysInjected != 0 {
		t.Errorf("experiment group %+v, want 3 searches and 6 delays it would inject", g)
	}

	errors := func(body string) (withRecommendation int) {
		t.Helper()
		if resp := putChaos(t, app, body); resp.status != http.StatusOK {
			t.Fatalf("PUT %s = %d %s", body, resp.status, resp.body)
		}
		id := uuid.NewString()
		app.searchFor(t, id, "first") // a new session reads nothing yet
		for i := range 6 {
			if resp := app.searchFor(t, id, fmt.Sprint("q", i)); hasRecommendation(resp.body) {
				withRecommendation++
			}
		}
		return withRecommendation
	}
	if n := errors(`{"experiment":"error","error_every":2,"dry_run":true}`); n != 6 {
		t.Errorf("dry run of every 2nd read failing: %d of 6 searches with recommendations, want all", n)
	}
	dry := chaosStatusOf(t, app)
	if n := errors(`{"experiment":"error","error_every":2}`); n != 3 {
		t.Errorf("the real run: %d of 6 searches with recommendations, want 3", n)
	}
	real := chaosStatusOf(t, app)
	dryGroup, realGroup := dry.Groups["experiment"], real.Groups["experiment"]
	if dryGroup.ErrorsWouldInject != 3 || dryGroup.ErrorsInjected != 0 || dryGroup.FailedReads != 0 ||
		realGroup.ErrorsInjected != dryGroup.ErrorsWouldInject || realGroup.ErrorsWouldInject != 0 {
		t.Errorf("dry run's experiment group %+v, the real run's %+v; want the errors it would inject (3 of 7 reads) to be the real run's", dryGroup, realGroup)
	}
	if n := strings.Count(app.logs.String(), `msg="redis error CHAOS"`); n != 3 {
		t.Errorf("%d 'redis error CHAOS' lines, want the real run's 3 alone", n)
	}
}

// TestRunIDThroughTheShop: while an experiment with a run id runs, the
// shop's own log lines carry it, and so do the status and every chaos
// metric, and none of the shop's metrics; after DELETE nothing does, and an
// experiment without a run id logs none.
func TestRunIDThroughTheShop(t *testing.T) {
	app := startApp(t, map[string]string{"CHAOS": "error", "CHAOS_ERROR_EVERY": "1", "CHAOS_RUN_ID": "weekly-7"})
	app.searchFor(t, uuid.NewString(), "apple")
	// The store logs the error before the page answers.
	if lines := logLines(app, `msg="redis error CHAOS"`); len(lines) != 1 || strings.Count(lines[0], " run_id=weekly-7") != 1 {
		t.Errorf("the shop's redis error lines %q, want one with run_id=weekly-7", lines)
	}
	if lines := logLines(app, `msg="CHAOS BUILD`); len(lines) != 1 || !strings.Contains(lines[0], " run_id=weekly-7") {
		t.Errorf("the experiment's first line %q, want run_id=weekly-7", lines)
	}
	if s := chaosStatusOf(t, app); s.RunID != "weekly-7" {
		t.Errorf("status run_id %q, want weekly-7", s.RunID)
	}
	expectMetricsRunID(t, scrape(t, app), "weekly-7")

	if resp := deleteChaos(t, app); resp.status != http.StatusOK {
		t.Fatalf("DELETE = %d %s", resp.status, resp.body)
	}
	if s := chaosStatusOf(t, app); s.RunID != "" {
		t.Errorf("status run_id %q after DELETE, want none", s.RunID)
	}
	expectMetricsRunID(t, scrape(t, app), "")
	if resp := putChaos(t, app, `{"experiment":"error","error_every":1}`); resp.status != http.StatusOK {
		t.Fatalf("PUT = %d %s", resp.status, resp.body)
	}
	app.searchFor(t, uuid.NewString(), "pear")
	if lines := logLines(app, `msg="redis error CHAOS"`); len(lines) != 2 || strings.Contains(lines[1], "run_id") {
		t.Errorf("the shop's redis error lines %q, want a second without a run id", lines)
	}
}

// logLines are the app's log lines that hold s.
func logLines(app *testApp, s string) []string {
	var out []string
	for line := range strings.Lines(app.logs.String()) {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

// expectMetricsRunID: every series of every chaos family has run_id=id,
// and no other family a run_id at all.
func expectMetricsRunID(t *testing.T, s scraped, id string) {
	t.Helper()
	chaosFamilies := 0
	for name, f := range s.families {
		isChaos := strings.HasPrefix(name, "shopsession_chaos_")
		if isChaos {
			chaosFamilies++
		}
		for _, m := range f.GetMetric() {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == "run_id" {
					found = true
					if !isChaos || l.GetValue() != id {
						t.Errorf("%s has run_id=%q, want %q on chaos metrics alone", name, l.GetValue(), id)
					}
				}
			}
			if isChaos && !found {
				t.Errorf("%s has no run_id label", name)
			}
		}
	}
	if chaosFamilies < 20 {
		t.Errorf("only %d chaos families in /metrics", chaosFamilies)
	}
}
