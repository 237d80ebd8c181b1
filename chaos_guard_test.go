//go:build chaos

package main

import (
	"encoding/json"
	"errors"
	"example.com/shopsession/chaos"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// guardEnv keeps the circuit breaker out of the guardrails' tests: an
// experiment that fails every read would open it, and an open breaker fails
// reads without reaching the hooks.
func guardEnv(kv ...string) map[string]string {
	return withEnv(map[string]string{"BREAKER_FAILURES": "1000"}, kv...)
}

func TestGuardConfig(t *testing.T) {
	c, err := chaos.FromEnv(mapGetenv(map[string]string{
		"CHAOS": "latency", "CHAOS_DURATION_SECONDS": "300", "CHAOS_SESSIONS_PERCENT": "12.5",
		"CHAOS_STOP_WINDOW_SEARCHES": "50", "CHAOS_STOP_FAILED_READS_SHARE": "0.2", "CHAOS_STOP_SEARCH_P99_SECONDS": "0.5",
	}))
	if err != nil || c.DurationSeconds != 300 || c.SessionsPercent == nil || *c.SessionsPercent != 12.5 ||
		c.StopWindowSearches != 50 || c.StopFailedReadsShare != 0.2 || c.StopSearchP99Seconds != 0.5 {
		t.Errorf("from env: %+v, %v", c.chaos.Guardrails, err)
	}
	for env, want := range map[string]string{
		"CHAOS_DURATION_SECONDS":        "-1",
		"CHAOS_SESSIONS_PERCENT":        "101",
		"CHAOS_STOP_WINDOW_SEARCHES":    "1.5",
		"CHAOS_STOP_FAILED_READS_SHARE": "1.01",
		"CHAOS_STOP_SEARCH_P99_SECONDS": "NaN",
	} {
		_, err := chaos.FromEnv(mapGetenv(map[string]string{env: want}))
		var usage usageError
		if !errors.As(err, &usage) || !strings.Contains(err.Error(), fmt.Sprintf("invalid %s %q: want", env, want)) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s=%s: error %q, want one usage line naming it", env, want, err)
		}
	}
	for body, want := range map[string]string{
		`{"duration_seconds":86401}`:       `invalid duration_seconds "86401": want seconds from 0 to 86400`,
		`{"duration_seconds":"5"}`:         `body is not a JSON experiment`,
		`{"sessions_percent":-1}`:          `invalid sessions_percent "-1": want a percentage from 0 to 100`,
		`{"stop_window_searches":100001}`:  `invalid stop_window_searches "100001"`,
		`{"stop_failed_reads_share":-0.1}`: `invalid stop_failed_reads_share "-0.1": want a share from 0 to 1`,
		`{"stop_search_p99_seconds":61}`:   `invalid stop_search_p99_seconds "61": want seconds from 0 to 60`,
	} {
		if _, err := chaos.FromJSON([]byte(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("PUT %s: %v, want %q", body, err, want)
		}
	}
}

// fakeClock fires its timers when the test says so.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at      time.Time
	f       func()
	stopped bool
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	timer := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, timer)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !timer.stopped
		timer.stopped = true
		return was
	}
}

// advance moves the clock on and runs the timers that are due.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []func()
	for _, timer := range c.timers {
		if !timer.stopped && !timer.at.After(c.now) {
			timer.stopped = true
			due = append(due, timer.f)
		}
	}
	c.mu.Unlock()
	for _, f := range due {
		f()
	}
}

// guardedApp is the shop with an experiment whose clock the test holds.
type guardedApp struct {
	e       *chaosExperiment
	handler http.Handler
	logs    *logBuffer
}

func newGuardedApp(t *testing.T, clock chaosClock, env map[string]string) *guardedApp {
	t.Helper()
	e, err := newChaosExperiment(mapGetenv(env))
	if err != nil {
		t.Fatal(err)
	}
	e.clock = clock
	logs := newLogBuffer()
	logger := slog.New(slog.NewTextHandler(logs, nil))
	rdb := testRedis.client(t)
	st := newStore(rdb, time.Second, time.Hour, breakerSettings{failures: 1000, cooldown: time.Second}, logger)
	e.attach(logger, rdb)
	mux := http.NewServeMux()
	mux.Handle("/", e.observe(newHandler(st, logger, false, nil)))
	e.mountControl(mux)
	return &guardedApp{e: e, handler: mux, logs: logs}
}

func (a *guardedApp) status(t *testing.T, query string) chaos.Status {
	t.Helper()
	rec := a.serve(http.MethodGet, "/debug/chaos"+query, "", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /debug/chaos%s = %d %s", query, rec.Code, rec.Body)
	}
	var s chaos.Status
	if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func (a *guardedApp) serve(method, target, cookie string, body io.Reader) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, body)
	req.RemoteAddr, req.Host = "127.0.0.1:40000", "localhost"
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	rec := httptest.NewRecorder()
	a.handler.ServeHTTP(rec, req)
	return rec
}

func (a *guardedApp) search(sessionID string) string {
	return a.serve(http.MethodPost, "/search", sessionCookie+"="+sessionID, strings.NewReader("query=apple")).Body.String()
}

func TestDurationEndsTheExperiment(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	start := clock.now
	app := newGuardedApp(t, clock, guardEnv("CHAOS", "error", "CHAOS_ERROR_EVERY", "1", "CHAOS_DURATION_SECONDS", "30"))
	id := uuid.NewString()
	s := app.status(t, "")
	if s.State != "running" || s.EndsAt == nil || !s.EndsAt.Equal(start.Add(30*time.Second)) || s.EndedAt != nil {
		t.Fatalf("at start: state %s, ends %v, ended %v", s.State, s.EndsAt, s.EndedAt)
	}
	if page := app.search(id); hasRecommendation(page) {
		t.Fatalf("a read succeeded while every read fails")
	}
	clock.advance(29 * time.Second)
	if s := app.status(t, ""); s.State != "running" {
		t.Fatalf("after 29 s of 30: state %s", s.State)
	}
	clock.advance(time.Second)
	s = app.status(t, "")
	if s.State != "ended" || s.EndedAt == nil || !s.EndedAt.Equal(start.Add(30*time.Second)) || s.EndsAt != nil || s.Experiment != "error" {
		t.Fatalf("after 30 s: state %s, experiment %s, ends %v, ended %v", s.State, s.Experiment, s.EndsAt, s.EndedAt)
	}
	app.logs.waitFor(t, regexp.MustCompile(`level=WARN msg="chaos experiment ended: its duration ran out.*duration_seconds=30`))
	injected := app.e.errorsInjected.Load()
	if page := app.search(id); !hasRecommendation(page) || app.e.errorsInjected.Load() != injected {
		t.Errorf("a search after the end was injected a fault")
	}
	if g := s.Groups["experiment"]; g.Searches != 1 || g.ErrorsInjected != 1 || g.FailedReads != 1 {
		t.Errorf("experiment group while it ran: %+v", g)
	}

	// A PUT starts a new run; the old one's timer no longer ends anything.
	rec := app.serve(http.MethodPut, "/debug/chaos", "", strings.NewReader(`{"experiment":"error","error_every":1,"duration_seconds":10}`))
	if rec.Code != http.StatusOK {
		t.Fatalf("PUT = %d %s", rec.Code, rec.Body)
	}
	app.serve(http.MethodPut, "/debug/chaos", "", strings.NewReader(`{"experiment":"error","error_every":1}`))
	clock.advance(time.Hour)
	if s := app.status(t, ""); s.State != "running" || s.EndsAt != nil {
		t.Errorf("a replaced experiment's duration ended its successor: state %s, ends %v", s.State, s.EndsAt)
	}
}

// TestDurationOverHTTP runs the real timer: the log says when it ended.
func TestDurationOverHTTP(t *testing.T) {
	app := startApp(t, guardEnv())
	resp := putChaos(t, app, `{"experiment":"latency","delay_seconds":0.01,"duration_seconds":0.05}`)
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

// sessionsIn finds n session ids in each group of a run.
func sessionsIn(run *chaosRun, n int) (experiment, control []string) {
	for i := 0; len(experiment) < n || len(control) < n; i++ {
		id := fmt.Sprintf("session-%d", i)
		if run.groupOf(id) == experimentGroup {
			experiment = append(experiment, id)
		} else {
			control = append(control, id)
		}
	}
	return experiment[:n], control[:n]
}

func TestBlastRadiusSplitsSessions(t *testing.T) {
	percent := 30.0
	cfg := chaos.Config{Seed: 42, chaos.Guardrails: chaos.Guardrails{SessionsPercent: &percent}}
	one, other := newChaosRun(cfg), newChaosRun(cfg) // two instances, same seed
	reseeded := cfg
	reseeded.Seed = 43
	moved, inExperiment := 0, 0
	const sessions = 20000
	for range sessions {
		id := uuid.NewString()
		g := one.groupOf(id)
		if g != other.groupOf(id) || g != one.groupOf(id) {
			t.Fatalf("session %s changes group", id)
		}
		if g == experimentGroup {
			inExperiment++
		}
		if g != newChaosRun(reseeded).groupOf(id) {
			moved++
		}
	}
	if share := float64(inExperiment) / sessions; share < 0.28 || share > 0.32 {
		t.Errorf("%.3f of the sessions are in the experiment group, want 0.30", share)
	}
	if moved == 0 {
		t.Errorf("another seed puts every session in the same group")
	}
	for _, p := range []float64{0, 100} {
		run := newChaosRun(chaos.Config{Seed: 42, chaos.Guardrails: chaos.Guardrails{SessionsPercent: &p}})
		for range 1000 {
			if g := run.groupOf(uuid.NewString()); (g == experimentGroup) != (p == 100) {
				t.Fatalf("sessions_percent %v put a session in the %s group", p, g)
			}
		}
	}
}

// TestBlastRadiusSparesTheControlGroup fails every read of the experiment
// group's sessions: the control group's never fail, and the counters say so.
func TestBlastRadiusSparesTheControlGroup(t *testing.T) {
	app := startApp(t, guardEnv("CHAOS", "error", "CHAOS_ERROR_EVERY", "1", "CHAOS_SESSIONS_PERCENT", "50", "CHAOS_SEED", "7"))
	experiment, control := sessionsIn(newChaosRun(chaosStatusOf(t, app).Config), 3)
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
	experiment, control := sessionsIn(newChaosRun(chaosStatusOf(t, app).Config), 2)
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
	if s.State != "aborted" || s.EndedAt == nil || s.Abort == nil ||
		*s.Abort != (chaos.Abort{Condition: "failed_reads_share", Observed: 1, Threshold: 0.5, Window: 10}) {
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
	// Every read failed until the abort, so the window crossed at its first
	// full count: every fault beyond it came after the crossing.
	after := s.Counters.ErrorsInjected - window
	if after < 0 || after > clients-1 {
		t.Errorf("%d searches got a fault after the crossing, want at most %d (the others in flight)", after, clients-1)
	}
	t.Logf("searches with a fault after the crossing: %d (%d clients)", after, clients)
}

// TestStopWindowP99 checks the nearest-rank p99 of a full window of 100: one
// slow search is the 100th value and leaves it below the threshold, a second
// one makes it the 99th.
func TestStopWindowP99(t *testing.T) {
	w := newStopWindow(100, 0, 0.1)
	for i := range 99 {
		took := 10 * time.Millisecond
		if i == 50 {
			took = time.Second
		}
		if abort := w.add(false, took); abort != nil {
			t.Fatalf("search %d: %+v", i, abort)
		}
	}
	if abort := w.add(false, 20*time.Millisecond); abort != nil {
		t.Fatalf("one slow search of 100 aborted: %+v", abort)
	}
	// The window slides: the oldest search leaves as the second slow one comes.
	abort := w.add(false, 500*time.Millisecond)
	if abort == nil || *abort != (chaos.Abort{Condition: "search_p99_seconds", Observed: 0.5, Threshold: 0.1, Window: 100}) {
		t.Fatalf("two slow searches of 100: %+v", abort)
	}
}

// TestGroupMetrics: the metrics count each side of the blast radius since the
// process started, across PUTs, where the status counts each run.
func TestGroupMetrics(t *testing.T) {
	app := startApp(t, guardEnv("CHAOS", "error", "CHAOS_ERROR_EVERY", "1", "CHAOS_SESSIONS_PERCENT", "50", "CHAOS_SEED", "7"))
	experiment, control := sessionsIn(newChaosRun(chaosStatusOf(t, app).Config), 1)
	for range 2 {
		app.searchFor(t, experiment[0], "apple")
		app.searchFor(t, control[0], "apple")
	}
	putChaos(t, app, `{"experiment":"error","error_every":1,"sessions_percent":50,"seed":7}`)
	app.searchFor(t, experiment[0], "apple")
	s := scrape(t, app)
	s.expect(t, 3, "shopsession_chaos_group_searches_total", "chaos_group", "experiment")
	s.expect(t, 3, "shopsession_chaos_group_failed_reads_total", "chaos_group", "experiment")
	s.expect(t, 3, "shopsession_chaos_group_errors_injected_total", "chaos_group", "experiment")
	s.expect(t, 2, "shopsession_chaos_group_searches_total", "chaos_group", "control")
	s.expect(t, 0, "shopsession_chaos_group_failed_reads_total", "chaos_group", "control")
	s.expect(t, 0, "shopsession_chaos_group_errors_injected_total", "chaos_group", "control")
	s.expect(t, 0, "shopsession_chaos_group_delays_injected_total", "chaos_group", "control")
	if v := s.value("shopsession_chaos_group_search_seconds_total", "chaos_group", "control"); v <= 0 {
		t.Errorf("control group search seconds %v, want above 0", v)
	}
	if g := chaosStatusOf(t, app).Groups["experiment"]; g.Searches != 1 {
		t.Errorf("the status counts %d searches of the experiment group since the PUT, want 1", g.Searches)
	}
}
