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

	"example.com/shopsession/chaos"
)

// guardEnv keeps the circuit breaker out of the guardrails' tests: an
// experiment that fails every read would open it, and an open breaker fails
// reads without reaching the hooks.
func guardEnv(kv ...string) map[string]string {
	return withEnv(map[string]string{"BREAKER_FAILURES": "1000"}, kv...)
}

// TestGuardConfig: the shop reads the guardrails from its environment, and
// an invalid one is a usage error (the shop exits 2) of one line naming it.
// The settings' own checks are package chaos's (chaos/guard_test.go).
func TestGuardConfig(t *testing.T) {
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	e, err := newExperiment(mapGetenv(map[string]string{
		"CHAOS": "latency", "CHAOS_DURATION_SECONDS": "300", "CHAOS_SESSIONS_PERCENT": "12.5",
		"CHAOS_STOP_WINDOW_SEARCHES": "50", "CHAOS_STOP_FAILED_READS_SHARE": "0.2", "CHAOS_STOP_SEARCH_P99_SECONDS": "0.5",
		"CHAOS_CONTROL_TOKEN": testControlToken,
	}), discard)
	if err != nil {
		t.Fatal(err)
	}
	if c := e.Config(); c.DurationSeconds != 300 || c.SessionsPercent == nil || *c.SessionsPercent != 12.5 ||
		c.StopWindowSearches != 50 || c.StopFailedReadsShare != 0.2 || c.StopSearchP99Seconds != 0.5 {
		t.Errorf("from env: %+v", c.Guardrails)
	}
	e.Stop() // and its 300 s timer
	for env, want := range map[string]string{
		"CHAOS_DURATION_SECONDS":        "-1",
		"CHAOS_SESSIONS_PERCENT":        "101",
		"CHAOS_STOP_WINDOW_SEARCHES":    "1.5",
		"CHAOS_STOP_FAILED_READS_SHARE": "1.01",
		"CHAOS_STOP_SEARCH_P99_SECONDS": "NaN",
	} {
		_, err := newExperiment(mapGetenv(map[string]string{env: want}), discard)
		var usage usageError
		if !errors.As(err, &usage) || !strings.Contains(err.Error(), fmt.Sprintf("invalid %s %q: want", env, want)) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s=%s: error %q, want one usage line naming it", env, want, err)
		}
	}
}

// TestDurationOverHTTP runs the real timer: the log says when it ended.
func TestDurationOverHTTP(t *testing.T) {
	app := startApp(t, guardEnv())
	resp := putChaos(t, app, `{"experiment":"latency","delay_seconds":0.01,"duration_seconds":1}`)
	if resp.status != http.StatusOK || !strings.Contains(resp.body, `"state":"running"`) || !strings.Contains(resp.body, `"ends_at":`) {
		t.Fatalf("PUT = %d %s", resp.status, resp.body)
	}
	app.logs.waitFor(t, regexp.MustCompile(`msg="chaos experiment ended: its duration ran out`))
	if s := chaosStatusOf(t, app); s.State != "ended" || s.EndedAt == nil {
		t.Errorf("after the duration: state %s, ended %v", s.State, s.EndedAt)
	}
	if resp := putChaos(t, app, `{"experiment":"latency","duration_seconds":-5}`); resp.status != http.StatusBadRequest ||
		!strings.Contains(resp.body, `invalid duration_seconds "-5"`) {
		t.Errorf("PUT with a negative duration = %d %s", resp.status, resp.body)
	}
}

// sessionsIn finds n session ids in each group of the app's running
// experiment, as GET /debug/chaos?session= on its admin listener answers.
func sessionsIn(t *testing.T, app *testApp, n int) (experiment, control []string) {
	t.Helper()
	for i := 0; len(experiment) < n || len(control) < n; i++ {
		id := fmt.Sprintf("session-%d", i)
		switch group := groupOf(t, app, id); group {
		case "experiment":
			experiment = append(experiment, id)
		case "control":
			control = append(control, id)
		default:
			t.Fatalf("session %s is in group %q", id, group)
		}
	}
	return experiment[:n], control[:n]
}

// groupOf is the group GET /debug/chaos?session=id answers.
func groupOf(t *testing.T, app *testApp, id string) string {
	t.Helper()
	resp := app.admin.get(t, "/debug/chaos?session="+id, "")
	var s chaos.Status
	if err := json.Unmarshal([]byte(resp.body), &s); resp.status != http.StatusOK || err != nil || s.Session == nil || s.Session.ID != id {
		t.Fatalf("GET /debug/chaos?session=%s = %d %s (%v)", id, resp.status, resp.body, err)
	}
	return s.Session.Group
}

// TestBlastRadiusSparesTheControlGroup fails every read of the experiment
// group's sessions: the control group's never fail, and the counters say so.
func TestBlastRadiusSparesTheControlGroup(t *testing.T) {
	app := startApp(t, guardEnv("CHAOS", "error", "CHAOS_ERROR_EVERY", "1", "CHAOS_SESSIONS_PERCENT", "50", "CHAOS_SEED", "7"))
	experiment, control := sessionsIn(t, app, 3)
	for _, id := range experiment {
		var s chaos.Status
		if err := json.Unmarshal([]byte(app.admin.get(t, "/debug/chaos?session="+id, "").body), &s); err != nil || s.Session == nil || s.Session.Group != "experiment" {
			t.Fatalf("GET /debug/chaos?session=%s: %+v, %v", id, s.Session, err)
		}
	}
	if resp := app.admin.get(t, "/debug/chaos?session=a/b", ""); resp.status != http.StatusBadRequest {
		t.Errorf("GET /debug/chaos?session=a/b = %d, want 400", resp.status)
	}
	for range 4 {
		for i := range experiment {
			if page := app.searchFor(t, experiment[i], "apple").body; hasRecommendation(page) {
				t.Errorf("session %s of the experiment group read its interests", experiment[i])
			}
			if page := app.searchFor(t, control[i], "apple").body; !hasRecommendation(page) {
				t.Errorf("session %s of the control group did not read its interests", control[i])
			}
		}
	}
	s := chaosStatusOf(t, app)
	want := map[string]chaos.GroupFigures{
		"experiment": {Searches: 12, FailedReads: 12, ErrorsInjected: 12},
		"control":    {Searches: 12},
	}
	for name, w := range want {
		g := s.Groups[name]
		if g.Searches != w.Searches || g.FailedReads != w.FailedReads || g.ErrorsInjected != w.ErrorsInjected || g.DelaysInjected != 0 || g.MeanSearchMS <= 0 {
			t.Errorf("%s group: %+v, want %+v", name, g, w)
		}
	}
	if s.Counters.ErrorsInjected != 12 {
		t.Errorf("%d errors injected, want 12", s.Counters.ErrorsInjected)
	}
}

// TestBlastRadiusDelaysOnlyTheExperimentGroup: the control group's commands
// get no delay; a new visitor, whose session the response issues, is counted
// in its group too.
func TestBlastRadiusDelaysOnlyTheExperimentGroup(t *testing.T) {
	app := startApp(t, guardEnv())
	resp := putChaos(t, app, `{"experiment":"latency","delay_seconds":0.001,"sessions_percent":50,"seed":11}`)
	if resp.status != http.StatusOK {
		t.Fatalf("PUT = %d %s", resp.status, resp.body)
	}
	experiment, control := sessionsIn(t, app, 2)
	for i := range 2 {
		app.searchFor(t, experiment[i], "apple")
		app.searchFor(t, control[i], "apple")
	}
	fresh := app.do(t, http.MethodPost, "/search", "", "application/x-www-form-urlencoded", strings.NewReader("query=pear"))
	id := fresh.cookie(sessionCookie)
	var s chaos.Status
	if err := json.Unmarshal([]byte(app.admin.get(t, "/debug/chaos?session="+id, "").body), &s); err != nil {
		t.Fatal(err)
	}
	wantSearches := map[string]int64{"experiment": 2, "control": 2}
	wantSearches[s.Session.Group]++
	for name, g := range s.Groups {
		wantDelays := int64(0)
		if name == "experiment" {
			wantDelays = 2 * g.Searches
		}
		if g.Searches != wantSearches[name] || g.DelaysInjected != wantDelays || g.FailedReads != 0 {
			t.Errorf("%s group: %+v, want %d searches and %d delays", name, g, wantSearches[name], wantDelays)
		}
	}
}

func TestStopConditionFailedReadsAborts(t *testing.T) {
	app := startApp(t, guardEnv("CHAOS", "error", "CHAOS_ERROR_EVERY", "1", "CHAOS_STOP_WINDOW_SEARCHES", "10", "CHAOS_STOP_FAILED_READS_SHARE", "0.5"))
	for i := range 10 {
		if s := chaosStatusOf(t, app); s.State != "running" {
			t.Fatalf("after %d searches: state %s", i, s.State)
		}
		app.searchFor(t, "stop-reads", "apple")
	}
	s := chaosStatusOf(t, app)
	if s.State != "aborted" || s.EndedAt == nil || s.Abort == nil || s.Abort.Condition != "failed_reads_share" ||
		s.Abort.Observed != 1 || s.Abort.Threshold != 0.5 || s.Abort.Window != 10 || s.Abort.Groups.Experiment.Searches != 10 {
		t.Fatalf("after a window of failed reads: state %s, abort %+v", s.State, s.Abort)
	}
	app.logs.waitFor(t, regexp.MustCompile(`level=WARN msg="chaos experiment aborted by a stop condition.*condition=failed_reads_share observed=1 threshold=0.5 window_searches=10`))
	// Once: it stays off, and searches read their interests again.
	for range 5 {
		if page := app.searchFor(t, "stop-reads", "apple").body; !hasRecommendation(page) {
			t.Errorf("a search after the abort did not read its interests")
		}
	}
	if s := chaosStatusOf(t, app); s.State != "aborted" || s.Counters.ErrorsInjected != 10 {
		t.Errorf("after the abort: state %s, %d errors injected, want 10", s.State, s.Counters.ErrorsInjected)
	}
	if resp := putChaos(t, app, `{"experiment":"error","error_every":1}`); !strings.Contains(resp.body, `"state":"running"`) {
		t.Errorf("a PUT after the abort: %s", resp.body)
	}
	if page := app.searchFor(t, "stop-reads", "apple").body; hasRecommendation(page) {
		t.Errorf("the PUT after the abort injects nothing")
	}
}

func TestStopConditionsHoldAtTheirThresholds(t *testing.T) {
	// Every other read fails: a share of exactly 0.5, which does not exceed 0.5.
	app := startApp(t, guardEnv("CHAOS", "error", "CHAOS_ERROR_EVERY", "2", "CHAOS_STOP_WINDOW_SEARCHES", "10",
		"CHAOS_STOP_FAILED_READS_SHARE", "0.5", "CHAOS_STOP_SEARCH_P99_SECONDS", "5"))
	for range 40 {
		app.searchFor(t, "stop-hold", "apple")
	}
	if s := chaosStatusOf(t, app); s.State != "running" || s.Groups["experiment"].FailedReads != 20 {
		t.Errorf("at the threshold: state %s, abort %+v, groups %+v", s.State, s.Abort, s.Groups)
	}
	resp := putChaos(t, app, `{"experiment":"error","error_every":2,"stop_window_searches":10,"stop_failed_reads_share":0.49}`)
	if resp.status != http.StatusOK {
		t.Fatal(resp.body)
	}
	for range 10 {
		app.searchFor(t, "stop-hold", "apple")
	}
	if s := chaosStatusOf(t, app); s.State != "aborted" || s.Abort.Observed != 0.5 {
		t.Errorf("just above the threshold: state %s, abort %+v", s.State, s.Abort)
	}
}

func TestStopConditionSearchP99Aborts(t *testing.T) {
	app := startApp(t, guardEnv())
	resp := putChaos(t, app, `{"experiment":"latency","delay_seconds":0.005,"stop_window_searches":5,"stop_search_p99_seconds":0.002}`)
	if resp.status != http.StatusOK {
		t.Fatal(resp.body)
	}
	for range 5 {
		app.searchFor(t, "stop-p99", "apple")
	}
	s := chaosStatusOf(t, app)
	if s.State != "aborted" || s.Abort == nil || s.Abort.Condition != "search_p99_seconds" || s.Abort.Observed < 0.01 || s.Abort.Threshold != 0.002 {
		t.Fatalf("after a window of slow searches: state %s, abort %+v", s.State, s.Abort)
	}
	delays := s.Counters.DelaysInjected
	app.searchFor(t, "stop-p99", "apple")
	if after := chaosStatusOf(t, app).Counters.DelaysInjected; after != delays {
		t.Errorf("%d delays after the abort", after-delays)
	}
}

// TestAbortLatency counts the searches that still get a fault after the one
// whose outcome crossed the threshold, with eight clients searching at once:
// only those already past the read hook when it crossed can.
func TestAbortLatency(t *testing.T) {
	const clients, window = 8, 20
	app := startApp(t, guardEnv("CHAOS", "error", "CHAOS_ERROR_EVERY", "1",
		"CHAOS_STOP_WINDOW_SEARCHES", fmt.Sprint(window), "CHAOS_STOP_FAILED_READS_SHARE", "0.5"))
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			// Until a search reads its interests, which only happens after the abort.
			for !hasRecommendation(app.searchFor(t, fmt.Sprintf("abort-latency-%d", c), "apple").body) {
			}
		})
	}
	wg.Wait()
	// Connections the clients dialled but never used would hold up the app's
	// shutdown for five seconds.
	noRedirects.CloseIdleConnections()
	s := chaosStatusOf(t, app)
	if s.State != "aborted" {
		t.Fatalf("state %s", s.State)
	}
	// Every read failed until the abort, so the window crossed as soon as
	// the stop conditions judged it: every fault beyond the searches it
	// judged came after the crossing.
	after := s.Counters.ErrorsInjected - int64(s.Abort.Groups.Experiment.Searches)
	if after < 0 || after > clients-1 {
		t.Errorf("%d searches got a fault after the crossing, want at most %d (the others in flight)", after, clients-1)
	}
	t.Logf("searches with a fault after the crossing: %d (%d clients)", after, clients)
}

// TestGroupMetrics: the metrics count each side of the blast radius since the
// process started, across PUTs, where the status counts each run.
func TestGroupMetrics(t *testing.T) {
	app := startApp(t, guardEnv("CHAOS", "error", "CHAOS_ERROR_EVERY", "1", "CHAOS_SESSIONS_PERCENT", "50", "CHAOS_SEED", "7"))
	experiment, control := sessionsIn(t, app, 1)
	for range 2 {
		app.searchFor(t, experiment[0], "apple")
		app.searchFor(t, control[0], "apple")
	}
	putChaos(t, app, `{"experiment":"error","error_every":1,"sessions_percent":50,"seed":7}`)
	app.searchFor(t, experiment[0], "apple")
	s := scrape(t, app)
	s.expect(t, 3, "shopsession_chaos_group_searches_total", "chaos_group", "experiment", "run_id", "")
	s.expect(t, 3, "shopsession_chaos_group_failed_reads_total", "chaos_group", "experiment", "run_id", "")
	s.expect(t, 3, "shopsession_chaos_group_errors_injected_total", "chaos_group", "experiment", "run_id", "")
	s.expect(t, 3, "shopsession_chaos_group_degraded_searches_total", "chaos_group", "experiment", "run_id", "")
	s.expect(t, 0, "shopsession_chaos_group_degraded_searches_total", "chaos_group", "control", "run_id", "")
	s.expect(t, 2, "shopsession_chaos_group_searches_total", "chaos_group", "control", "run_id", "")
	s.expect(t, 0, "shopsession_chaos_group_failed_reads_total", "chaos_group", "control", "run_id", "")
	s.expect(t, 0, "shopsession_chaos_group_errors_injected_total", "chaos_group", "control", "run_id", "")
	s.expect(t, 0, "shopsession_chaos_group_delays_injected_total", "chaos_group", "control", "run_id", "")
	if v := s.value("shopsession_chaos_group_search_seconds_total", "chaos_group", "control", "run_id", ""); v <= 0 {
		t.Errorf("control group search seconds %v, want above 0", v)
	}
	if g := chaosStatusOf(t, app).Groups["experiment"]; g.Searches != 1 {
		t.Errorf("the status counts %d searches of the experiment group since the PUT, want 1", g.Searches)
	}
}
