package chaos

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestPATCHKeepsTheEndTime: a PATCH that does not name the duration keeps
// the end time to the nanosecond, on the guardrails' clock; the experiment
// still ends then, and a PATCH after the end is 409: a stopped experiment is
// not resumed.
func TestPATCHKeepsTheEndTime(t *testing.T) {
	clock := &manualClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	start := clock.now
	app := newPageService(t, clock, map[string]string{"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "0.01", "CHAOS_DURATION_SECONDS": "30", "CHAOS_SEED": "3"})
	clock.advance(10 * time.Second)
	rec := app.serve(http.MethodPatch, "/debug/chaos", "", strings.NewReader(`{"delay_seconds":0.02,"commands":["GET"]}`))
	if rec.Code != http.StatusOK {
		t.Fatalf("PATCH = %d %s", rec.Code, rec.Body)
	}
	s := app.status(t, "")
	if s.State != StateRunning || s.DelaySeconds != 0.02 || strings.Join(s.Commands, ",") != "get" || s.Seed != 3 ||
		s.DurationSeconds != 30 || s.EndsAt == nil || !s.EndsAt.Equal(start.Add(30*time.Second)) {
		t.Fatalf("after PATCH: %+v, state %s, ends %v; want delay 0.02 on get, seed 3, ending at %v", s.Config, s.State, s.EndsAt, start.Add(30*time.Second))
	}
	clock.advance(20 * time.Second)
	if s := app.status(t, ""); s.State != StateEnded || s.EndedAt == nil || !s.EndedAt.Equal(start.Add(30*time.Second)) {
		t.Fatalf("30 s after the start: state %s, ended %v", s.State, s.EndedAt)
	}
	rec = app.serve(http.MethodPatch, "/debug/chaos", "", strings.NewReader(`{"delay_seconds":0.03}`))
	if rec.Code != http.StatusConflict || strings.Count(rec.Body.String(), "\n") != 1 || !strings.Contains(rec.Body.String(), "PUT") {
		t.Errorf("PATCH of an ended experiment = %d %q, want 409 and one line saying to PUT", rec.Code, rec.Body)
	}
	if s := app.status(t, ""); s.State != StateEnded || s.DelaySeconds != 0.02 {
		t.Errorf("the refused PATCH changed the experiment: state %s, delay %v", s.State, s.DelaySeconds)
	}
}
