//go:build chaos && unix

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"example.com/shopsession/chaos"
	"example.com/shopsession/internal/promtest"
	"github.com/prometheus/common/model"
)

// ctl run end to end: the experiment files of experiments/ on three
// instances on a real redis-server, under a load of many sessions, each run
// a child process whose exit code, output and journal the test reads.

// TestRun runs its cases one after the other on one fleet.
func TestRun(t *testing.T) {
	bin := buildFleetBinary(t)
	server := ownRedisServer(t)
	f := startFleet(t, bin, singlePlane(server), nil)
	f.redis = server
	var targets []string
	for _, app := range f.instances {
		targets = append(targets, strings.TrimPrefix(app.admin.url, "http://"))
	}
	prom := promtest.Start(t, targets...)
	stop := f.load()
	defer stop()
	prom.WaitFor(t, 30*time.Second, pagesRate, func(v model.Vector) bool { return len(v) == 1 && v[0].Value > 0 })
	for _, tc := range []struct {
		name string
		test func(*testing.T, *fleet)
	}{
		{"Experiment1Holds", testRunExperiment1Holds},
		{"Experiment2Holds", testRunExperiment2Holds},
		{"DryRunJudgesNoDifference", testRunDryRun},
		{"RampStopsAtTheStepThatDeviates", testRunRampStops},
		{"StopConditionAborts", testRunStopCondition},
		{"InstanceAbortStopsTheRun", testRunInstanceAbort},
		{"SIGTERMRollsBack", testRunSIGTERM},
		{"KilledRunnerLeavesItsJournal", testRunKilled},
		{"PrometheusProbe", func(t *testing.T, f *fleet) { testRunPrometheusProbe(t, f, prom.URL()) }},
		{"BrokenSteadyStateRefuses", testRunBrokenSteadyState},
	} {
		if !t.Run(tc.name, func(t *testing.T) { tc.test(t, f) }) {
			return
		}
	}
}

// load searches on every instance until stop, from eight clients, each
// page a session of its own: a blast radius of 1 % still gets pages.
func (f *fleet) load() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range 8 {
		app := f.instances[i%len(f.instances)]
		wg.Go(func() {
			// Paced, so that three instances, Redis and the runner share
			// two cores without the load being all the machine does.
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			b := make([]byte, 8)
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				rand.Read(b)
				timedSearch(app, "load-"+hex.EncodeToString(b))
			}
		})
	}
	return func() { cancel(); wg.Wait() }
}

// runResult is a ctl run that ended.
type runResult struct {
	ctlResult
	journal []chaos.JournalEvent
}

func (r runResult) events(kind string) []chaos.JournalEvent {
	var out []chaos.JournalEvent
	for _, ev := range r.journal {
		if ev.Event == kind {
			out = append(out, ev)
		}
	}
	return out
}

func (r runResult) last() chaos.JournalEvent {
	if len(r.journal) == 0 {
		return chaos.JournalEvent{}
	}
	return r.journal[len(r.journal)-1]
}

// run runs ctl run on file with flags and a journal of its own.
func (f *fleet) run(t *testing.T, file string, flags ...string) runResult {
	t.Helper()
	journal := filepath.Join(t.TempDir(), "journal.jsonl")
	r := runFleetCtl(t, f.bin, ctlEnv(f.plane.url, testControlToken), append([]string{"run", file, "-journal", journal}, flags...)...)
	res := runResult{ctlResult: r, journal: journalSoFar(journal)}
	if st := f.fleetStatus(); st.Experiment != nil {
		t.Errorf("after the run the fleet still runs version %d", st.Experiment.Version)
	}
	return res
}

func readJournal(t *testing.T, path string) []chaos.JournalEvent {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []chaos.JournalEvent
	for line := range strings.Lines(string(data)) {
		var ev chaos.JournalEvent
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("journal line %q: %v", line, err)
		}
		out = append(out, ev)
	}
	return out
}

// journalSoFar is what a running runner's journal has, line by line.
func journalSoFar(path string) []chaos.JournalEvent {
	data, _ := os.ReadFile(path)
	var out []chaos.JournalEvent
	for line := range strings.Lines(string(data)) {
		var ev chaos.JournalEvent
		if json.Unmarshal([]byte(line), &ev) == nil {
			out = append(out, ev)
		}
	}
	return out
}

// edited writes a copy of an experiment file with replacements made.
func edited(t *testing.T, file string, oldNew ...string) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for i := 0; i+1 < len(oldNew); i += 2 {
		if !strings.Contains(s, oldNew[i]) {
			t.Fatalf("%s has no %q", file, oldNew[i])
		}
		s = strings.ReplaceAll(s, oldNew[i], oldNew[i+1])
	}
	p := filepath.Join(t.TempDir(), filepath.Base(file))
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func judgements(r runResult) []string {
	var out []string
	for _, j := range r.events("judgement") {
		out = append(out, j.Verdict)
	}
	return out
}

func testRunExperiment1Holds(t *testing.T, f *fleet) {
	r := f.run(t, "experiments/redis-latency.yaml")
	if r.code != 0 || r.last().Verdict != chaos.RunHeld || !equal(judgements(r), "PASS") {
		t.Fatalf("%s\njudgements %v", r, judgements(r))
	}
	j := r.events("judgement")[0]
	t.Logf("experiment − control %+.2f ms (%.2f to %.2f), %d seconds", *j.Difference, *j.Low, *j.High, j.Samples)
	if len(r.last().Instances) != 3 {
		t.Errorf("the run reached instances %v, want the three", r.last().Instances)
	}
}

func testRunExperiment2Holds(t *testing.T, f *fleet) {
	r := f.run(t, "experiments/failing-reads.yaml")
	if r.code != 0 || !equal(judgements(r), "PASS") {
		t.Fatalf("%s\njudgements %v", r, judgements(r))
	}
}

func testRunDryRun(t *testing.T, f *fleet) {
	r := f.run(t, "experiments/redis-latency.yaml", "-dry-run")
	if r.code != 0 || !equal(judgements(r), "PASS") || !r.journal[0].DryRun {
		t.Fatalf("%s\njudgements %v", r, judgements(r))
	}
	var would, searches int64
	for _, s := range r.events("sample") {
		would += s.Would.Delays
		searches += s.Experiment.Searches
		if s.Experiment.Searches > 0 && s.Experiment.Value > 50 {
			t.Errorf("a dry run's experiment group took %.1f ms a search in a second", s.Experiment.Value)
		}
	}
	if would < searches || searches == 0 {
		t.Errorf("the dry run would have delayed %d round trips in %d searches of the experiment group, want two a search", would, searches)
	}
}

func testRunRampStops(t *testing.T, f *fleet) {
	// The second step's fault is 1.5 times the prediction's: it deviates
	// (within the stop condition), and the third, wider one never starts.
	file := edited(t, "experiments/redis-latency-ramp.yaml", "duration: 10s", "duration: 5s")
	data, _ := os.ReadFile(file)
	second := strings.Index(string(data), "- name: 10 %")
	s := string(data[:second]) + strings.Replace(string(data[second:]), "delay_seconds: 0.1", "delay_seconds: 0.15", 1)
	os.WriteFile(file, []byte(s), 0o644)
	r := f.run(t, file)
	if r.code != 1 || r.last().Verdict != chaos.RunDeviated || !equal(judgements(r), "PASS", "DEVIATED") {
		t.Fatalf("%s\njudgements %v", r, judgements(r))
	}
	if n := len(r.events("step_start")); n != 2 {
		t.Errorf("%d steps started, want 2: the run must not widen past a deviation", n)
	}
	if len(r.events("rollback")) != 1 {
		t.Errorf("no rollback in the journal")
	}
}

func testRunStopCondition(t *testing.T, f *fleet) {
	file := edited(t, "experiments/redis-latency.yaml", "experiment_max: 400", "experiment_max: 150")
	r := f.run(t, file)
	aborts := r.events("abort")
	if r.code != 1 || r.last().Verdict != chaos.RunAborted || len(aborts) != 1 || aborts[0].Value == nil || *aborts[0].Value < 150 {
		t.Fatalf("%s\naborts %+v", r, aborts)
	}
	if len(r.events("judgement")) != 0 || len(r.events("rollback")) != 1 {
		t.Errorf("an aborted step is not judged, and the rollback runs: %d judgements, %d rollbacks", len(r.events("judgement")), len(r.events("rollback")))
	}
	if after := r.events("steady_state"); len(after) < 2 || !*after[len(after)-1].Holds {
		t.Errorf("the steady state after the rollback: %+v", after)
	}
}

// testRunInstanceAbort: an instance's own stop condition (here the p99 of
// its experiment group's pages, 0.2 s against 0.15) ends the step there,
// and the runner aborts the run rather than judge the seconds before.
func testRunInstanceAbort(t *testing.T, f *fleet) {
	file := edited(t, "experiments/redis-latency.yaml", "stop_search_p99_seconds: 1", "stop_search_p99_seconds: 0.15")
	r := f.run(t, file)
	aborts := r.events("abort")
	if r.code != 1 || r.last().Verdict != chaos.RunAborted || len(aborts) != 1 || !strings.Contains(aborts[0].Reason, "aborted the step's experiment") {
		t.Fatalf("%s\naborts %+v", r, aborts)
	}
	if len(r.events("judgement")) != 0 {
		t.Errorf("a step an instance aborted was judged: %+v", r.events("judgement"))
	}
}

// testRunSIGTERM: the runner's SIGTERM mid-step ends the experiment on
// every instance within a second, and the journal has the rollback.
func testRunSIGTERM(t *testing.T, f *fleet) {
	journal := filepath.Join(t.TempDir(), "journal.jsonl")
	// A window of 10 s: the rollback's wait for the steady state is long
	// enough to tell a second SIGTERM cutting it short.
	file := edited(t, "experiments/redis-latency.yaml", "window: 3s", "window: 10s")
	cmd := exec.Command(f.bin, "ctl", "run", file, "-journal", journal)
	cmd.Env = ctlEnv(f.plane.url, testControlToken)
	out := newLogBuffer()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var version int64
	if !pollUntil(20*time.Second, func() bool {
		for _, ev := range journalSoFar(journal) {
			if ev.Event == "step_start" {
				version = ev.Version
			}
		}
		return version != 0
	}) {
		cmd.Process.Kill()
		t.Fatalf("no step started in 20 s:\n%s", out)
	}
	f.waitRunning(version)
	// Stopped, and the last delayed page's delays over.
	wait := f.watchEach(5*time.Second, func(s chaos.Status) bool {
		return (s.Fleet.Version != version || !running(s)) && s.Counters.DelaysInProgress == 0
	})
	sent := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	stopped := f.within(wait(), sent, time.Second, "the step's experiment to stop and its last delay to end after the runner's SIGTERM")
	t.Logf("SIGTERM → stopped, no delay left, on each instance: %v", roundAll(stopped))
	if !pollUntil(5*time.Second, func() bool {
		for _, ev := range journalSoFar(journal) {
			if ev.Event == "rollback" {
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no rollback in the journal 5 s after the SIGTERM:\n%s", out)
	}
	again := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	if took := time.Since(again); took > 2*time.Second {
		t.Errorf("the runner took %v to exit after a second SIGTERM in the rollback's 10 s wait", took)
	}
	code := cmd.ProcessState.ExitCode()
	j := readJournal(t, journal)
	if code != 1 || err == nil || j[len(j)-1].Verdict != chaos.RunInterrupted || !strings.Contains(j[len(j)-1].Message, "interrupted again") {
		t.Fatalf("exit %d, last event %+v:\n%s", code, j[len(j)-1], out)
	}
	rolled := false
	for _, ev := range j {
		rolled = rolled || ev.Event == "rollback" && ev.StoppedVersion == version
	}
	if !rolled {
		t.Errorf("the journal has no rollback of version %d", version)
	}
}

// testRunKilled: a runner killed mid-step leaves a journal whose every
// line is whole, ending where it died, and the fleet stops by the lease.
func testRunKilled(t *testing.T, f *fleet) {
	journal := filepath.Join(t.TempDir(), "journal.jsonl")
	file := edited(t, "experiments/redis-latency.yaml", "lease: 10s", "lease: 2s")
	cmd := exec.Command(f.bin, "ctl", "run", file, "-journal", journal)
	cmd.Env = ctlEnv(f.plane.url, testControlToken)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var version int64
	samples := 0
	if !pollUntil(20*time.Second, func() bool {
		samples = 0
		for _, ev := range journalSoFar(journal) {
			if ev.Event == "step_start" {
				version = ev.Version
			}
			if ev.Event == "sample" {
				samples++
			}
		}
		return samples >= 2
	}) {
		cmd.Process.Kill()
		t.Fatal("no samples of a step in 20 s")
	}
	wait := f.watchEach(4*time.Second, func(s chaos.Status) bool { return s.Fleet.Version != version || !running(s) })
	killed := time.Now()
	cmd.Process.Kill()
	cmd.Wait()
	lapsed := f.within(wait(), killed, 3*time.Second, "the step's experiment to stop by its 2 s lease after the runner's kill -9")
	t.Logf("kill -9 → stopped by the lease on each instance: %v", roundAll(lapsed))
	data, _ := os.ReadFile(journal)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	j := readJournal(t, journal) // fails on a torn line
	if len(j) != len(lines) || j[len(j)-1].Event == "run_end" || j[len(j)-1].Event == "rollback" {
		t.Fatalf("%d lines, %d events, the last %+v: want every line whole and the journal ending mid-step", len(lines), len(j), j[len(j)-1])
	}
}

const pagesRate = "sum(rate(" + metricsNamespace + "_search_pages_total[5s]))"

// testRunPrometheusProbe: a probe read from a real Prometheus scraping the
// instances judges the steady state, and refuses a run when out of bounds.
func testRunPrometheusProbe(t *testing.T, f *fleet, promURL string) {
	probe := func(min string) string {
		return "    - name: Prometheus sees pages\n      prometheus: {url: '" + promURL + "', query: '" + pagesRate + "'}\n      min: " + min + "\nsteps:"
	}
	file := edited(t, "experiments/redis-latency.yaml", "steps:", probe("5"), "duration: 10s", "duration: 5s")
	r := f.run(t, file)
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	for _, ss := range r.events("steady_state") {
		p := ss.Probes[len(ss.Probes)-1]
		if p.Group != "prometheus" || p.Value == nil || *p.Value < 5 || !p.Holds {
			t.Errorf("%s: the Prometheus probe %+v", ss.Phase, p)
		}
	}
	file = edited(t, "experiments/redis-latency.yaml", "steps:", probe("1e9"))
	if r := f.run(t, file); r.code != 2 || len(r.events("step_start")) != 0 {
		t.Fatalf("a Prometheus probe out of bounds: %s", r)
	}
}

func testRunBrokenSteadyState(t *testing.T, f *fleet) {
	file := edited(t, "experiments/redis-latency.yaml", "max: 50", "max: 0.001")
	r := f.run(t, file)
	if r.code != 2 || len(r.events("step_start")) != 0 || r.last().Verdict != chaos.RunFailed {
		t.Fatalf("steady state broken: %s", r)
	}
	// Redis stopped: the steady state cannot even be read.
	f.redis.stop()
	r2 := runFleetCtl(t, f.bin, ctlEnv(f.plane.url, testControlToken), "run", "experiments/redis-latency.yaml")
	if r2.code != 2 || !strings.Contains(r2.stdout+r2.stderr, "cannot read the fleet") {
		t.Fatalf("Redis stopped: %s", r2)
	}
}

func equal(got []string, want ...string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}
