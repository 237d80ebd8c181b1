package chaos

import (
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
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

// TestPATCHLeavesTheRunningConfigAlone: a PATCH decodes onto a copy, so
// the Config the running plan's hooks read never changes under them; the
// patched one is checked whole, and a refused PATCH changes nothing.
func TestPATCHLeavesTheRunningConfigAlone(t *testing.T) {
	e := testExperiment(t, map[string]string{"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "0.01", "CHAOS_COMMANDS": "get,evalsha", "CHAOS_SESSIONS_PERCENT": "50"}, Options{})
	handler := e.Handler()
	running := e.Config()
	rec := serve(handler, http.MethodPatch, "127.0.0.1", "127.0.0.1:1", `{"commands":["ping","script"],"sessions_percent":20}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("PATCH = %d %s", rec.Code, rec.Body)
	}
	if strings.Join(running.Commands, ",") != "get,evalsha" || *running.SessionsPercent != 50 {
		t.Errorf("PATCH wrote into the Config it replaced: commands %v, sessions_percent %v", running.Commands, *running.SessionsPercent)
	}
	if c := e.Config(); strings.Join(c.Commands, ",") != "ping,script" || *c.SessionsPercent != 20 || c.DelaySeconds != 0.01 {
		t.Errorf("after PATCH: %+v", c)
	}
	patched := e.Config()
	for body, want := range map[string]string{
		`{"layer":"connection"}`:             `invalid layer "connection": want command with sessions_percent below 100`,
		`{"error_every":2,"error_rate":0.1}`: `error_every and error_rate are both set`,
		`{"delay_seconds":61}`:               `invalid delay_seconds "61"`,
		`{"duration_seconds":0}`:             `invalid duration_seconds "0": want seconds from 1 to 86400`,
		`{"delay":1}`:                        `body is not a JSON experiment: json: unknown field "delay"`,
		`null`:                               `body is not a JSON object`,
		`{"commands":["ping"]} {}`:           `body has more than one JSON value`,
	} {
		rec := serve(handler, http.MethodPatch, "127.0.0.1", "127.0.0.1:1", body)
		if rec.Code != http.StatusBadRequest || !strings.HasPrefix(rec.Body.String(), want) || strings.Count(rec.Body.String(), "\n") != 1 {
			t.Errorf("PATCH %s = %d %q, want 400 and one line starting %q", body, rec.Code, rec.Body, want)
		}
		if c := e.Config(); !reflect.DeepEqual(c, patched) {
			t.Fatalf("the refused PATCH %s changed the experiment to %+v", body, c)
		}
	}
}

// TestPATCHPicksTheFailureMode: naming error_every makes every Nth read fail
// again (the rate is set to 0, which would otherwise win); naming
// error_rate sets the rate and keeps error_every as it was.
func TestPATCHPicksTheFailureMode(t *testing.T) {
	e := testExperiment(t, map[string]string{"CHAOS": "error", "CHAOS_ERROR_RATE": "0.5"}, Options{})
	handler := e.Handler()
	if rec := serve(handler, http.MethodPatch, "127.0.0.1", "127.0.0.1:1", `{"error_every":3}`); rec.Code != http.StatusOK {
		t.Fatalf("PATCH = %d %s", rec.Code, rec.Body)
	}
	if c := e.Config(); c.ErrorEvery != 3 || c.ErrorRate != 0 {
		t.Errorf("PATCH error_every: every %d, rate %v; want 3 and 0", c.ErrorEvery, c.ErrorRate)
	}
	serve(handler, http.MethodPatch, "127.0.0.1", "127.0.0.1:1", `{"Error_Rate":0.25}`) // JSON's fields match in any case
	if c := e.Config(); c.ErrorEvery != 3 || c.ErrorRate != 0.25 {
		t.Errorf("PATCH error_rate: every %d, rate %v; want 3 and 0.25", c.ErrorEvery, c.ErrorRate)
	}
	if rec := serve(handler, http.MethodPut, "127.0.0.1", "127.0.0.1:1", `{"experiment":"error","ERROR_EVERY":3,"error_rate":0.5}`); rec.Code != http.StatusBadRequest {
		t.Errorf("PUT of error_every and error_rate, one in upper case = %d %s, want 400", rec.Code, rec.Body)
	}
}

// TestPATCHKeepsTheStopConditionsCount: a PATCH of the faults alone
// continues the run, so its pages stay in the stop conditions' window. Every
// page degraded, a window of 10 and a PATCH after every 9th: before, each
// PATCH began a new run and 45 degraded pages never aborted it.
func TestPATCHKeepsTheStopConditionsCount(t *testing.T) {
	app := newPageService(t, nil, map[string]string{"CHAOS": "error", "CHAOS_ERROR_EVERY": "1",
		"CHAOS_STOP_WINDOW_SEARCHES": "10", "CHAOS_STOP_DEGRADED_SHARE": "0.5"})
	id := uuid.NewString()
	for range 5 {
		for range 9 {
			app.search(id)
		}
		if rec := app.serve(http.MethodPatch, "/debug/chaos", "", strings.NewReader(`{"error_every":1}`)); rec.Code != http.StatusOK && rec.Code != http.StatusConflict {
			t.Fatalf("PATCH = %d %s", rec.Code, rec.Body)
		}
	}
	s := app.status(t, "")
	if s.State != StateAborted || s.Abort.Condition != ConditionDegraded {
		t.Fatalf("45 degraded pages, a PATCH every 9, stop_degraded_share 0.5: state %s, abort %+v, experiment group %+v",
			s.State, s.Abort, s.Groups["experiment"])
	}
	if got := s.Groups["experiment"].Searches; got != 10 {
		t.Errorf("the run counted %d searches up to the abort, want the 10 of its window", got)
	}

	// Naming a stop condition is a new run: its window starts empty.
	if rec := app.serve(http.MethodPut, "/debug/chaos", "", strings.NewReader(`{"experiment":"error","error_every":1,"stop_window_searches":10,"stop_degraded_share":0.5}`)); rec.Code != http.StatusOK {
		t.Fatalf("PUT = %d %s", rec.Code, rec.Body)
	}
	for range 9 {
		app.search(id)
	}
	if rec := app.serve(http.MethodPatch, "/debug/chaos", "", strings.NewReader(`{"stop_degraded_share":0.9}`)); rec.Code != http.StatusOK {
		t.Fatalf("PATCH = %d %s", rec.Code, rec.Body)
	}
	if s := app.status(t, ""); s.State != StateRunning || s.Groups["experiment"].Searches != 0 {
		t.Errorf("a PATCH of a stop condition: state %s, %d searches in the new run, want running and 0", s.State, s.Groups["experiment"].Searches)
	}
}

// TestPATCHOfTheDurationRacesNoGET: a PATCH that moves the end of a run
// that GET is reading (run under -race; before, the end was a plain field
// of the shared run).
func TestPATCHOfTheDurationRacesNoGET(t *testing.T) {
	app := newPageService(t, nil, map[string]string{"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "0.001"})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 50 {
			app.serve(http.MethodGet, "/debug/chaos", "", nil)
		}
	}()
	for i := range 50 {
		body := strings.NewReader(`{"duration_seconds":` + strconv.Itoa(100+i) + `}`)
		if rec := app.serve(http.MethodPatch, "/debug/chaos", "", body); rec.Code != http.StatusOK {
			t.Fatalf("PATCH = %d %s", rec.Code, rec.Body)
		}
	}
	<-done
}
