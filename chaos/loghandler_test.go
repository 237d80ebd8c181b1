package chaos

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// linesWith are the lines of log that contain msg.
func linesWith(log *syncLog, msg string) []string {
	var out []string
	for line := range strings.Lines(log.String()) {
		if strings.Contains(line, msg) {
			out = append(out, line)
		}
	}
	return out
}

// expectRunID checks that the one line of log with msg carries run_id=id
// once ("" : none at all).
func expectRunID(t *testing.T, log *syncLog, msg, id string) {
	t.Helper()
	lines := linesWith(log, msg)
	if len(lines) != 1 {
		t.Fatalf("%d lines with %q, want 1:\n%s", len(lines), msg, log.String())
	}
	n, want := strings.Count(lines[0], " run_id="), 1
	if id == "" {
		want = 0
	}
	if n != want || id != "" && !strings.Contains(lines[0], " run_id="+id) {
		t.Errorf("line %q has run_id %d times, want run_id=%s %d times", lines[0], n, id, want)
	}
}

// TestRunIDWhileTheRunRuns: while an experiment with a run id runs, the
// status, the experiment's log lines, the lines of a logger wrapped with
// LogHandler (wrapped twice: still once) and every metric carry it; after
// it stops, none does, and the line that stopped it names the run it ended.
func TestRunIDWhileTheRunRuns(t *testing.T) {
	log := &syncLog{}
	e := testExperiment(t, nil, Options{Namespace: "shop", Logger: slog.New(slog.NewTextHandler(log, nil))})
	reg := prometheus.NewRegistry()
	if err := e.Register(reg); err != nil {
		t.Fatal(err)
	}
	service := slog.New(e.LogHandler(e.LogHandler(slog.NewTextHandler(log, nil)))).With("component", "shop")
	service.Info("before the run")
	expectRunID(t, log, "before the run", "")

	cfg, err := FromJSON([]byte(`{"experiment":"latency","delay_seconds":0.01,"run_id":"weekly-1"}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Use(cfg); err != nil {
		t.Fatal(err)
	}
	expectRunID(t, log, `chaos experiment replaced" experiment=latency`, "weekly-1")
	service.Warn("redis error during the run", "op", "read")
	expectRunID(t, log, "redis error during the run", "weekly-1")
	s := e.Status("")
	body, _ := json.Marshal(s)
	if s.RunID != "weekly-1" || strings.Count(string(body), `"run_id":"weekly-1"`) != 1 {
		t.Errorf("status while running: run_id %q, JSON %s; want weekly-1 once", s.RunID, body)
	}
	series := func(want string) {
		t.Helper()
		g := gather(t, reg)
		if len(g) < 30 {
			t.Fatalf("only %d series", len(g))
		}
		for key := range g {
			if !strings.HasSuffix(key, " run_id="+want) || strings.Count(key, "run_id=") != 1 {
				t.Errorf("series %q, want run_id=%s", key, want)
			}
		}
	}
	series("weekly-1")

	e.Stop()
	expectRunID(t, log, `chaos experiment replaced" experiment=none`, "")
	if lines := linesWith(log, `chaos experiment replaced" experiment=none`); len(lines) != 1 || !strings.Contains(lines[0], " ended_run_id=weekly-1") {
		t.Errorf("the line that stopped the run: %q, want ended_run_id=weekly-1", lines)
	}
	service.Info("after the run")
	expectRunID(t, log, "after the run", "")
	s = e.Status("")
	body, _ = json.Marshal(s)
	if s.RunID != "" || strings.Contains(string(body), `"run_id"`) {
		t.Errorf("status after DELETE: run_id %q, JSON %s; want none", s.RunID, body)
	}
	series("")
}

// TestRunIDOnTheLineThatEndsTheRun: a run that a stop condition aborts is
// no longer active when its end is logged, and that line names it still.
func TestRunIDOnTheLineThatEndsTheRun(t *testing.T) {
	log := &syncLog{}
	e := testExperiment(t, nil, Options{Logger: slog.New(slog.NewTextHandler(log, nil))})
	cfg, err := FromJSON([]byte(`{"experiment":"error","run_id":"ramp-3","stop_min_searches":2,"stop_failed_reads_share":0.5}`))
	if err != nil {
		t.Fatal(err)
	}
	e.Use(cfg)
	page := e.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})) // never reads
	for range 2 {
		page.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/search", nil))
	}
	if s := e.Status(""); s.State != StateAborted || s.RunID != "" {
		t.Fatalf("state %s, run id %q: want aborted, and no run id", s.State, s.RunID)
	}
	expectRunID(t, log, "chaos experiment aborted", "ramp-3")
}

// TestHeartbeatCarriesTheRunID: a fleet record's run id (and dry run) is
// the instance's while it runs the record, in its heartbeat too; stopped
// on the instance, its heartbeat carries none.
func TestHeartbeatCarriesTheRunID(t *testing.T) {
	f := testFleet(t)
	e, _ := joined(t, f, testToken, nil)
	v, _, _ := writeRecord(t, f, tokenDigest(testToken),
		`{"experiment":"latency","delay_seconds":5,"commands":["get"],"run_id":"fleet-run-1","dry_run":true}`, time.Minute)
	waitCondition(t, "the record applied", func() bool { return fleetVersion(e) == v })
	if s := e.Status(""); s.RunID != "fleet-run-1" || !s.DryRun {
		t.Fatalf("status: run id %q, dry run %v", s.RunID, s.DryRun)
	}
	// The instance's latest heartbeat; none before its first.
	beat := func() Heartbeat {
		st, err := f.status(context.Background(), tokenDigest(testToken))
		if err != nil || len(st.Instances) > 1 {
			t.Fatalf("fleet status %+v, %v", st, err)
		}
		if len(st.Instances) == 0 {
			return Heartbeat{}
		}
		return st.Instances[0].Heartbeat
	}
	waitCondition(t, "a heartbeat with the run id", func() bool { return beat().RunID == "fleet-run-1" })
	e.Stop()
	waitCondition(t, "a heartbeat without it", func() bool { hb := beat(); return hb.State == StateOff && hb.RunID == "" })
}
