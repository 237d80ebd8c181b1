package chaos

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// The once-a-second judge, on the guardrails' clock: the pages here hang
// inside a delay, and the test moves the clock on.

// TestStopP99FiresWhileSearchesHang: ten searches inside a delay longer than
// the p99 threshold, and none ends: the judge, once a second on the
// guardrails' clock, counts them as slow.
func TestStopP99FiresWhileSearchesHang(t *testing.T) {
	clock := &manualClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	app := newStopApp(t, clock, map[string]string{"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "30", "CHAOS_COMMANDS": "get",
		"CHAOS_STOP_SEARCH_P99_SECONDS": "0.5"}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // ends the delays the abort left running
	for range 10 {
		wg.Go(func() {
			req := httptest.NewRequest(http.MethodPost, "/search", nil).WithContext(ctx)
			req.Header.Set("Cookie", pageSessionCookie+"="+uuid.NewString())
			app.handler.ServeHTTP(httptest.NewRecorder(), req)
		})
	}
	for range 10 {
		<-app.entered
	}
	clock.advance(time.Second)
	s := app.e.Status("")
	if s.State != StateAborted || s.Abort == nil || s.Abort.Condition != "search_p99_seconds" || s.Abort.Observed != 1 {
		t.Fatalf("10 searches inside a 30 s delay, 1 s on: state %s, abort %+v", s.State, s.Abort)
	}
	if g := s.Abort.Groups.Experiment; g != (WindowFigures{InProgress: 10, P99Seconds: 1}) {
		t.Errorf("abort's experiment group: %+v, want 10 in progress, none ended", g)
	}
	// The judge ended with the run: no timer of the guardrails' clock is left.
	clock.mu.Lock()
	defer clock.mu.Unlock()
	for _, timer := range clock.timers {
		if !timer.stopped {
			t.Errorf("a timer due at %v is still set after the abort", timer.at)
		}
	}
}

// TestStopJudgeWaitsForMinSearches: the judge counts a page in progress in
// the p99 only once it is slower than the threshold, and judges once the
// window holds stop_min_searches; a PUT that replaces the run stops its judge.
func TestStopJudgeWaitsForMinSearches(t *testing.T) {
	clock := &manualClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	app := newStopApp(t, clock, map[string]string{"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "30", "CHAOS_COMMANDS": "get",
		"CHAOS_STOP_SEARCH_P99_SECONDS": "1.5", "CHAOS_STOP_MIN_SEARCHES": "3"}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	hang := func() {
		wg.Go(func() {
			req := httptest.NewRequest(http.MethodPost, "/search", nil).WithContext(ctx)
			req.Header.Set("Cookie", pageSessionCookie+"="+uuid.NewString())
			app.handler.ServeHTTP(httptest.NewRecorder(), req)
		})
		<-app.entered
	}
	hang()
	hang()
	clock.advance(time.Second)
	hang()
	clock.advance(time.Second) // two in progress for 2 s, one for 1 s: two slow, below the 3 the window needs
	if s := app.e.Status(""); s.State != StateRunning {
		t.Fatalf("two slow searches of 3: state %s, abort %+v", s.State, s.Abort)
	}
	clock.advance(time.Second) // the third is slow too
	s := app.e.Status("")
	if s.State != StateAborted || s.Abort.Observed != 3 || s.Abort.Groups.Experiment.InProgress != 3 {
		t.Fatalf("three slow searches of 3: state %s, abort %+v", s.State, s.Abort)
	}

	app.e.Use(app.e.Config()) // a fresh run, judged from now on
	if rec := app.serve(http.MethodPut, "/debug/chaos", "", strings.NewReader(`{"experiment":"latency","delay_seconds":0.001}`)); rec.Code != http.StatusOK {
		t.Fatalf("PUT = %d %s", rec.Code, rec.Body)
	}
	clock.mu.Lock()
	defer clock.mu.Unlock()
	// Only the new run's duration may be left set: no judge.
	end := clock.now.Add(defaultDurationSeconds * time.Second)
	for _, timer := range clock.timers {
		if !timer.stopped && !timer.at.Equal(end) {
			t.Errorf("a timer due at %v is still set after a PUT without stop conditions (its duration ends at %v)", timer.at, end)
		}
	}
}
