package chaos

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestStopWindowP99 checks the nearest-rank p99 of a full window of 100: one
// slow search is the 100th value and leaves it below the threshold, a second
// one makes it the 99th.
func TestStopWindowP99(t *testing.T) {
	w := newStopWindow(Guardrails{StopWindowSearches: 100, StopMinSearches: 100, StopSearchP99Seconds: 0.1},
		func(string) group { return experimentGroup })
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	add := func(took time.Duration) *Abort {
		r := &request{}
		w.begin(r, now)
		return w.add(r, experimentGroup, outcome{took: took}, now)
	}
	for i := range 99 {
		took := 10 * time.Millisecond
		if i == 50 {
			took = time.Second
		}
		if abort := add(took); abort != nil {
			t.Fatalf("search %d: %+v", i, abort)
		}
	}
	if abort := add(20 * time.Millisecond); abort != nil {
		t.Fatalf("one slow search of 100 aborted: %+v", abort)
	}
	// The window slides: the oldest search leaves as the second slow one comes.
	abort := add(500 * time.Millisecond)
	if abort == nil || abort.Condition != "search_p99_seconds" || abort.Observed != 0.5 || abort.Threshold != 0.1 || abort.Window != 100 ||
		abort.Groups.Experiment != (WindowFigures{Searches: 100, P99Seconds: 0.5}) {
		t.Fatalf("two slow searches of 100: %+v", abort)
	}
}

// TestDegradedCountsWhatTheServiceSays: a page that the service marks
// degraded with Degraded, with no Redis command failing (its breaker
// skipped the command), counts toward stop_degraded_share.
func TestDegradedCountsWhatTheServiceSays(t *testing.T) {
	e := testExperiment(t, map[string]string{"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "0.001", "CHAOS_STOP_DEGRADED_SHARE": "0.5"}, Options{})
	page := e.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { Degraded(r.Context()) }))
	for range 10 {
		page.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/search", nil))
	}
	if s := e.Status(""); s.State != StateAborted || s.Abort.Condition != ConditionDegraded {
		t.Fatalf("10 pages marked degraded: state %s, abort %+v, groups %+v", s.State, s.Abort, s.Groups)
	}
}
