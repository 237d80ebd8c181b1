package chaos

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// pages is what a run of the same pages did under one experiment.
type pages struct {
	status  Status
	failed  int           // reads that returned an error
	slowest time.Duration // the slowest page
}

// pagesUnder serves n pages under the experiment body asks for, each a
// read of its session's key, the sessions taken in turn from 20, on a
// client with clientOpts; it returns the status after them, how many reads
// failed, and the slowest page.
func pagesUnder(t *testing.T, body string, n int, clientOpts redis.Options) pages {
	t.Helper()
	cfg, err := FromJSON([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(cfg, Options{Token: testToken, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Unit: func(r *http.Request) string { return r.URL.Query().Get("session") }})
	if err != nil {
		t.Fatal(err)
	}
	rdb := testClient(t, e, clientOpts)
	var out pages
	page := e.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := rdb.Get(r.Context(), "chaos-test:dry:"+r.URL.Query().Get("session")).Err()
		if err != nil && !errors.Is(err, redis.Nil) {
			out.failed++
		}
	}))
	for i := range n {
		start := time.Now()
		page.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", fmt.Sprintf("/search?session=s%d", i%20), nil))
		out.slowest = max(out.slowest, time.Since(start))
	}
	out.status = e.Status("")
	return out
}

// dryRunOf is body with dry_run set.
func dryRunOf(body string) string { return strings.Replace(body, "{", `{"dry_run":true,`, 1) }

// expectSameDecisions: the dry run injected nothing and would have
// injected, group by group and in the totals, what the real run did.
func expectSameDecisions(t *testing.T, real, dry pages) {
	t.Helper()
	if !dry.status.DryRun || dry.status.State != StateRunning || real.status.DryRun {
		t.Errorf("dry run's status: dry_run %v, state %s; the real run's dry_run %v", dry.status.DryRun, dry.status.State, real.status.DryRun)
	}
	if dry.failed != 0 {
		t.Errorf("%d reads failed in the dry run, want none", dry.failed)
	}
	rc, dc := real.status.Counters, dry.status.Counters
	if dc.DelaysInjected != 0 || dc.ErrorsInjected != 0 || dc.DelaySecondsInjected != 0 || dc.Connection.ConnectionsDropped != 0 {
		t.Errorf("dry run's counters %+v: it injected", dc)
	}
	if rc.DelaysWouldInject != 0 || rc.ErrorsWouldInject != 0 {
		t.Errorf("real run's counters %+v: it counted faults it would inject", rc)
	}
	if dc.DelaysWouldInject != rc.DelaysInjected || dc.ErrorsWouldInject != rc.ErrorsInjected {
		t.Errorf("dry run would have injected %d delays and %d errors; the real run injected %d and %d",
			dc.DelaysWouldInject, dc.ErrorsWouldInject, rc.DelaysInjected, rc.ErrorsInjected)
	}
	if int64(real.failed) != rc.ErrorsInjected {
		t.Errorf("real run: %d reads failed, %d errors injected", real.failed, rc.ErrorsInjected)
	}
	for name, rg := range real.status.Groups {
		dg := dry.status.Groups[name]
		if dg.Searches != rg.Searches || dg.DelaysWouldInject != rg.DelaysInjected || dg.ErrorsWouldInject != rg.ErrorsInjected ||
			dg.DelaysInjected != 0 || dg.ErrorsInjected != 0 || dg.FailedReads != 0 {
			t.Errorf("%s group: dry run %+v, real run %+v", name, dg, rg)
		}
	}
}

// TestDryRunDecidesAsARealRunAtTheCommandLayer: with a blast radius, a
// rate of failed reads and a jitter that draws no delay a quarter of the
// time, a dry run counts, group by group, the faults a real run of the
// same seed injects over the same pages, and injects none.
func TestDryRunDecidesAsARealRunAtTheCommandLayer(t *testing.T) {
	const body = `{"experiment":"latency,error","delay_seconds":0.002,"delay_jitter_seconds":0.004,"error_rate":0.4,"sessions_percent":50,"seed":7}`
	real := pagesUnder(t, body, 60, redis.Options{})
	dry := pagesUnder(t, dryRunOf(body), 60, redis.Options{})
	rc := real.status.Counters
	// Else the comparison proves little: some of each, not all.
	if rc.DelaysInjected == 0 || rc.ErrorsInjected == 0 || rc.ErrorsInjected+rc.DelaysInjected >= 60 {
		t.Fatalf("real run injected %d delays and %d errors over 60 pages: want some of each, and not on every page", rc.DelaysInjected, rc.ErrorsInjected)
	}
	if real.status.Groups["control"].Searches == 0 || real.status.Groups["control"].ErrorsInjected != 0 {
		t.Fatalf("control group %+v: want pages, none failed", real.status.Groups["control"])
	}
	t.Logf("real run: %d delays, %d errors; groups %+v", rc.DelaysInjected, rc.ErrorsInjected, real.status.Groups)
	expectSameDecisions(t, real, dry)
}

// TestDryRunDecidesAsARealRunAtTheConnectionLayer: the same at the
// connection layer, with no retries so that a real run's dropped
// connection makes no second decision.
func TestDryRunDecidesAsARealRunAtTheConnectionLayer(t *testing.T) {
	const body = `{"experiment":"latency,error","delay_seconds":0.002,"delay_jitter_seconds":0.004,"error_rate":0.4,"layer":"connection","seed":11}`
	opts := redis.Options{MaxRetries: -1}
	real := pagesUnder(t, body, 60, opts)
	dry := pagesUnder(t, dryRunOf(body), 60, opts)
	rc := real.status.Counters
	if rc.DelaysInjected == 0 || rc.ErrorsInjected == 0 || rc.Connection.ConnectionsDropped != rc.ErrorsInjected {
		t.Fatalf("real run's counters %+v: want delays, and errors as dropped connections", rc)
	}
	t.Logf("real run: %d delays, %d errors", rc.DelaysInjected, rc.ErrorsInjected)
	expectSameDecisions(t, real, dry)
}

// TestDryRunOfALongDelayIsFast: a dry run of 1 s on every read delays no
// page, and of every 2nd read failing fails none, counting each.
func TestDryRunOfALongDelayIsFast(t *testing.T) {
	slow := pagesUnder(t, `{"dry_run":true,"experiment":"latency","delay_seconds":1}`, 5, redis.Options{})
	if slow.slowest > 500*time.Millisecond || slow.status.Counters.DelaysWouldInject != 5 || slow.status.Counters.DelaysInProgress != 0 {
		t.Errorf("dry run of 1 s: slowest page %v, counters %+v; want every page well under 1 s, 5 delays it would inject", slow.slowest, slow.status.Counters)
	}
	every := pagesUnder(t, `{"dry_run":true,"experiment":"error","error_every":2}`, 10, redis.Options{})
	if every.failed != 0 || every.status.Counters.ErrorsWouldInject != 5 || every.status.Groups["experiment"].FailedReads != 0 {
		t.Errorf("dry run of error_every 2: %d failed reads, counters %+v, experiment group %+v; want none failed, 5 it would fail",
			every.failed, every.status.Counters, every.status.Groups["experiment"])
	}
}

// TestDryRunHasItsGuardrails: a dry run's stop conditions judge its pages
// as a real run's do (here pages that never read), and abort it.
func TestDryRunHasItsGuardrails(t *testing.T) {
	e := testExperiment(t, nil, Options{})
	cfg, err := FromJSON([]byte(`{"dry_run":true,"experiment":"error","stop_min_searches":3,"stop_failed_reads_share":0.5}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Use(cfg); err != nil {
		t.Fatal(err)
	}
	page := e.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for range 3 {
		page.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/search", nil))
	}
	if s := e.Status(""); s.State != StateAborted || s.Abort == nil || s.Abort.Condition != ConditionFailedReads || !s.DryRun {
		t.Errorf("dry run after 3 pages that did not read: state %s, abort %+v, dry_run %v; want aborted by %s", s.State, s.Abort, s.DryRun, ConditionFailedReads)
	}
}

// TestPatchOfDryRunStartsANewRun: a dry run's figures are of faults it
// would have injected, a real run's of faults it did, so a PATCH naming
// dry_run begins a run of its own, as one naming the blast radius does; one
// naming the delay alone goes on with the run.
func TestPatchOfDryRunStartsANewRun(t *testing.T) {
	e := testExperiment(t, nil, Options{})
	cfg, err := FromJSON([]byte(`{"dry_run":true,"experiment":"latency","delay_seconds":0.5}`))
	if err != nil {
		t.Fatal(err)
	}
	e.Use(cfg)
	run := e.active.Load().run
	if code, err := e.patch([]byte(`{"delay_seconds":0.4}`)); err != nil || e.active.Load().run != run {
		t.Fatalf("PATCH of the delay = %d %v; same run %v, want it", code, err, e.active.Load().run == run)
	}
	if code, err := e.patch([]byte(`{"dry_run":false}`)); err != nil || e.active.Load().run == run || e.Status("").DryRun {
		t.Errorf("PATCH of dry_run = %d %v; same run %v, dry_run %v; want a new real run", code, err, e.active.Load().run == run, e.Status("").DryRun)
	}
}

// TestDryRunAndRunIDSettings: CHAOS_DRY_RUN and CHAOS_RUN_ID are read and
// checked as the other settings are, and so are their JSON fields.
func TestDryRunAndRunIDSettings(t *testing.T) {
	cfg, err := FromEnv(mapGetenv(map[string]string{"CHAOS": "latency", "CHAOS_DRY_RUN": "true", "CHAOS_RUN_ID": "weekly.latency-42_a"}))
	if err != nil || !cfg.DryRun || cfg.RunID != "weekly.latency-42_a" {
		t.Errorf("FromEnv = %+v, %v; want a dry run with its run id", cfg, err)
	}
	for _, tc := range []struct{ env map[string]string }{
		{map[string]string{"CHAOS": "latency", "CHAOS_DRY_RUN": "maybe"}},
		{map[string]string{"CHAOS": "latency", "CHAOS_RUN_ID": "has space"}},
		{map[string]string{"CHAOS": "latency", "CHAOS_RUN_ID": strings.Repeat("a", 65)}},
	} {
		_, err := FromEnv(mapGetenv(tc.env))
		var name, value string
		for k, v := range tc.env {
			if k != "CHAOS" {
				name, value = k, v
			}
		}
		if err == nil || !strings.HasPrefix(err.Error(), fmt.Sprintf("invalid %s %q: want ", name, value)) || strings.Contains(err.Error(), "\n") {
			t.Errorf("FromEnv(%s=%q) = %v, want one line naming the variable, the value and what is allowed", name, value, err)
		}
	}
	if _, err := FromJSON([]byte(`{"experiment":"latency","run_id":"a/b"}`)); err == nil || !strings.HasPrefix(err.Error(), `invalid run_id "a/b": want up to 64 characters`) {
		t.Errorf("FromJSON of run_id a/b = %v", err)
	}
	if cfg, err := FromJSON([]byte(`{"experiment":"latency","run_id":"` + strings.Repeat("a", 64) + `"}`)); err != nil || len(cfg.RunID) != 64 {
		t.Errorf("FromJSON of a run id of 64 = %v", err)
	}
}
