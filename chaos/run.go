package chaos

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"
)

// ctl run: an experiment file's steps, one after the other, each a fleet
// experiment on the runner's lease, each judged before the next and wider
// one starts; the steady state checked before the first and after the
// rollback, which always runs.

type runner struct {
	c      *Ctl
	quiet  *Ctl // c, but what start's lease prints is the runner's to say
	key    [32]byte
	f      *runFile
	j      *journal
	id     string
	seed   uint64
	dry    bool
	report *os.File
	// again ends when the caller is interrupted a second time: the
	// rollback has stopped the fault by then, and its wait for the steady
	// state is cut short.
	again context.Context

	began     time.Time
	instances map[string]string // id → build, every instance a step of the run reached
	current   *heldStep         // the run's experiment on the fleet now, if any
}

// heldStep is a fleet experiment of the run with its lease held.
type heldStep struct {
	leased
	stop func(error)
	done chan error // the hold's end
}

func (c *Ctl) runFile(ctx context.Context, key [32]byte, path string, dry bool, journalPath, reportPath string) error {
	f, err := readRunFile(path)
	if err != nil {
		return UsageError(err.Error())
	}
	// The report's file is opened first: a path it cannot write is found
	// before anything is injected, not after.
	var report *os.File
	if reportPath != "" {
		if report, err = os.Create(reportPath); err != nil {
			return UsageError(fmt.Sprintf("-report: %v", err))
		}
	}
	j, err := openJournal(journalPath)
	if err != nil {
		if report != nil {
			report.Close()
		}
		return err
	}
	quiet := *c
	quiet.Stdout = io.Discard
	r := &runner{c: c, quiet: &quiet, key: key, f: f, j: j, seed: f.Seed, dry: dry || f.DryRun, report: report,
		began: time.Now(), instances: map[string]string{}}
	var stopWatch func()
	r.again, stopWatch = secondInterrupt(ctx)
	defer stopWatch()
	if r.seed == 0 {
		var b [8]byte
		rand.Read(b[:])
		r.seed = binary.LittleEndian.Uint64(b[:]) | 1
	}
	var b [4]byte
	rand.Read(b[:])
	r.id = "run-" + r.began.UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
	verdict, exit, msg := r.run(ctx)
	r.log(JournalEvent{Event: "run_end", Verdict: verdict, Exit: &exit, Message: msg})
	// The verdict's line: on stdout when the run held, else the error's,
	// which the caller prints on stderr.
	line := verdict + ": " + msg
	if exit == 0 {
		c.printf("%s", line)
	}
	if err := r.writeReport(); err != nil {
		fmt.Fprintf(c.Stderr, "report: %v\n", err)
		if exit == 0 {
			exit, line = 1, "the run held, but its report could not be written: "+err.Error()
		}
	}
	if err := j.close(); err != nil {
		fmt.Fprintf(c.Stderr, "journal: %v\n", err)
	}
	switch exit {
	case 0:
		return nil
	case 2:
		return UsageError(line)
	default:
		return errors.New(line)
	}
}

// log writes an event with the fields every line has.
func (r *runner) log(ev JournalEvent) {
	ev.At, ev.Run, ev.Seed, ev.DryRun = time.Now(), r.id, r.seed, r.dry
	ev.Instances, ev.Builds = []string{}, []string{}
	for id, build := range r.instances {
		ev.Instances = append(ev.Instances, id)
		if !slices.Contains(ev.Builds, build) {
			ev.Builds = append(ev.Builds, build)
		}
	}
	slices.Sort(ev.Instances)
	slices.Sort(ev.Builds)
	r.j.add(ev)
}

func (r *runner) run(ctx context.Context) (verdict string, exit int, msg string) {
	mode := ""
	if r.dry {
		mode = ", dry run: nothing is injected"
	}
	steps := fmt.Sprintf("%d steps", len(r.f.Steps))
	if len(r.f.Steps) == 1 {
		steps = "1 step"
	}
	r.c.printf("%s: %s, seed %d, %s%s", r.id, r.f.Title, r.seed, steps, mode)
	r.log(JournalEvent{Event: "run_start", Title: r.f.Title, Hypothesis: r.f.Hypothesis, File: r.f.path, Steps: len(r.f.Steps)})
	st, err := r.status(ctx)
	switch {
	case err != nil:
		return RunFailed, 2, fmt.Sprintf("cannot read the fleet: %v", err)
	case st.Halt != nil:
		return RunFailed, 2, fmt.Sprintf("chaos is halted fleet-wide by %s (%s): ctl resume lifts it", st.Halt.By, st.Halt.Reason)
	case st.Experiment != nil:
		return RunFailed, 2, fmt.Sprintf("fleet experiment version %d runs (started by %s): a run starts on a quiet fleet", st.Experiment.Version, st.Experiment.Owner)
	case live(st) == 0:
		return RunFailed, 2, "no instance has sent a heartbeat in the last 3 s: is the fleet up, with CHAOS_FLEET on?"
	}
	holds, err := r.observe(ctx, "before")
	switch {
	case ctx.Err() != nil:
		// The observation's dry run is stopped already; nothing else ran.
		r.log(JournalEvent{Event: "rollback", Reason: "interrupted before the first step"})
		return RunInterrupted, 1, "interrupted before the first step: nothing was injected"
	case err != nil:
		return RunFailed, 2, fmt.Sprintf("the steady state could not be measured: %v", err)
	case !holds:
		return RunFailed, 2, "the steady state does not hold: nothing was injected (the journal has each probe)"
	}
	verdict, msg = RunHeld, "every prediction held"
	for i := range r.f.Steps {
		v, why := r.step(ctx, i)
		if v != RunHeld {
			verdict, msg = v, why
			break
		}
	}
	restored := r.rollback(msg)
	switch {
	case verdict != RunHeld:
		return verdict, 1, msg + restored
	case restored != "":
		return RunNotRestored, 1, "every prediction held" + restored
	}
	return RunHeld, 0, msg + " and the steady state came back"
}

func live(st FleetStatus) int {
	n := 0
	for _, is := range st.Instances {
		if !is.Quiet {
			n++
		}
	}
	return n
}

func (r *runner) status(ctx context.Context) (FleetStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, ctlTimeout)
	defer cancel()
	return r.c.Fleet.status(ctx, r.key)
}

// begin starts cfg on the fleet and holds its lease in the background.
func (r *runner) begin(ctx context.Context, body map[string]any) (*heldStep, json.RawMessage, error) {
	raw, _ := json.Marshal(body)
	cfg, err := FromJSON(raw)
	if err == nil {
		err = r.c.checked(&cfg)
	}
	if err != nil {
		return nil, raw, err
	}
	l, err := r.quiet.begin(ctx, r.key, cfg, r.f.Lease, false)
	if err != nil {
		return nil, raw, err
	}
	// The runner ends the hold itself: at the step's end, or in the
	// rollback, whatever the caller's context does meanwhile.
	hctx, stop := context.WithCancelCause(context.WithoutCancel(ctx))
	h := &heldStep{leased: l, stop: stop, done: make(chan error, 1)}
	go func() { h.done <- r.quiet.hold(hctx, r.key, l, r.f.Lease) }()
	r.current = h
	return h, raw, nil
}

// end stops the run's experiment on the fleet, if it runs, and returns its
// version (0 when none ran) and, if the stop could not be written before
// the lease ran out, why.
func (r *runner) end(why string) (int64, error) {
	h := r.current
	if h == nil {
		return 0, nil
	}
	r.current = nil
	h.stop(stopReason(why))
	err := <-h.done
	// A stop the control plane did not take leaves the fault running for
	// the lease: try again until it takes one, or the lease has lapsed.
	deadline := time.Now().Add(r.f.Lease)
	for errors.Is(err, errStopNotTaken) && time.Now().Before(deadline) {
		fmt.Fprintf(r.c.Stderr, "%v; trying again\n", err)
		pause := time.NewTimer(250 * time.Millisecond)
		<-pause.C
		err = r.quiet.stopOwn(h.id, why)
	}
	if !errors.Is(err, errStopNotTaken) {
		err = nil
	}
	return h.version, err
}

// observe measures the steady state for the file's window: a dry run of
// the first step's fault, which counts the pages and injects nothing.
func (r *runner) observe(ctx context.Context, phase string) (bool, error) {
	body := r.f.Steps[0].faultBody(r.seed, r.f.Steady.Window+r.f.Lease, true, r.id)
	body["sessions_percent"] = 100.0
	h, _, err := r.begin(ctx, body)
	if err != nil {
		return false, err
	}
	m := newMeter(h.version)
	from := time.Now()
	tick := time.NewTicker(runTick)
	defer tick.Stop()
	window := time.NewTimer(r.f.Steady.Window)
	defer window.Stop()
	var stopped error
wait:
	for {
		select {
		case <-ctx.Done():
			stopped = errors.New("interrupted")
			break wait
		case err := <-h.done:
			r.current = nil
			stopped = fmt.Errorf("the observation's fleet experiment ended early: %v", orGone(err))
			break wait
		case <-tick.C:
			r.read(ctx, m)
		case <-window.C:
			break wait
		}
	}
	if stopped == nil {
		r.read(ctx, m)
	}
	if _, err := r.end("the steady state's observation ended"); err != nil && stopped == nil {
		stopped = err
	}
	if stopped != nil {
		return false, stopped
	}
	probes, holds := r.steadyHolds(ctx, m.since(from.Add(-time.Second)))
	r.log(JournalEvent{Event: "steady_state", Phase: phase, Holds: &holds, Probes: probes, Version: h.version})
	word := "holds"
	if !holds {
		word = "does not hold"
	}
	r.c.printf("steady state %s: %s (%s)", phase, word, describeProbes(probes))
	return holds, nil
}

func orGone(err error) error {
	if err == nil {
		return errors.New("stopped by another ctl, or its lease expired")
	}
	return err
}

// read takes a reading of the fleet into m, noting the instances.
func (r *runner) read(ctx context.Context, m *meter) (tick, FleetStatus, bool) {
	st, err := r.status(ctx)
	if err != nil {
		fmt.Fprintf(r.c.Stderr, "cannot read the fleet: %v\n", err)
		return tick{}, st, false
	}
	for _, is := range st.Instances {
		if is.Version == m.version {
			r.instances[is.Instance] = is.Build
		}
	}
	return m.read(st, time.Now()), st, true
}

// endedHere says which instance ended the step's version by itself: its
// own stop condition aborted it, or its lease lapsed.
func endedHere(st FleetStatus, version int64) string {
	for _, is := range st.Instances {
		if is.Version == version && (is.State == StateAborted || is.State == StateLapsed) {
			return fmt.Sprintf("instance %s %s the step's experiment", is.Instance, is.State)
		}
	}
	return ""
}

// step runs step i and judges it: RunHeld, or why the run goes no further.
func (r *runner) step(ctx context.Context, i int) (verdict, why string) {
	st := r.f.Steps[i]
	n := i + 1
	h, raw, err := r.begin(ctx, st.faultBody(r.seed, st.Duration+r.f.Lease, r.dry, r.id))
	switch {
	case err != nil && ctx.Err() != nil:
		return RunInterrupted, fmt.Sprintf("interrupted as step %d started", n)
	case err != nil:
		return RunFailed, fmt.Sprintf("step %d could not start: %v", n, err)
	}
	r.c.printf("step %d/%d %q: version %d, %g %% of sessions for %s", n, len(r.f.Steps), st.Name, h.version, st.SessionsPercent, st.Duration)
	want := st.Prediction.Difference
	if r.dry {
		want = 0
	}
	r.log(JournalEvent{Event: "step_start", Step: n, Name: st.Name, Version: h.version, SessionsPercent: st.SessionsPercent,
		DurationSeconds: st.Duration.Seconds(), Config: raw, Metric: st.Prediction.Metric, Predicted: &want, Tolerance: &st.Prediction.Tolerance})
	m := newMeter(h.version)
	var wouldSum WouldInject
	began := time.Now()
	tick := time.NewTicker(runTick)
	defer tick.Stop()
	ends := time.NewTimer(st.Duration)
	defer ends.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			return RunInterrupted, fmt.Sprintf("interrupted in step %d", n)
		case err := <-h.done:
			r.current = nil
			why := fmt.Sprintf("step %d's fleet experiment ended before the step: %v", n, orGone(err))
			r.log(JournalEvent{Event: "abort", Step: n, Reason: why})
			return RunAborted, why
		case <-ends.C:
			done = true
		case <-tick.C:
		}
		t, fleet, ok := r.read(ctx, m)
		if !ok {
			continue
		}
		if why := endedHere(fleet, h.version); why != "" {
			why = fmt.Sprintf("stop condition in step %d: %s", n, why)
			r.log(JournalEvent{Event: "abort", Step: n, Reason: why})
			return RunAborted, why
		}
		exp, ctl := sample(t, st.Prediction.Metric)
		ev := JournalEvent{Event: "sample", Step: n, Version: h.version, Metric: st.Prediction.Metric, Experiment: exp, Control: ctl}
		if r.dry {
			ev.Would = would(t)
			wouldSum.Delays += ev.Would.Delays
			wouldSum.Errors += ev.Would.Errors
		}
		r.log(ev)
		window := m.since(time.Now().Add(-r.f.Steady.Window))
		if time.Since(began) >= r.f.Steady.Window+runTick && window[groupAll].Searches < r.f.Steady.MinSearches {
			// Pages that hang, or instances that died, complete none: a
			// stop condition judged on completed pages alone would never
			// fire.
			why := fmt.Sprintf("stop condition in step %d: the step's instances completed %d pages in the last %s, fewer than the %d the steady state had",
				n, window[groupAll].Searches, r.f.Steady.Window, r.f.Steady.MinSearches)
			r.log(JournalEvent{Event: "abort", Step: n, Reason: why})
			return RunAborted, why
		}
		if p := r.stopCondition(ctx, window); p != nil && ctx.Err() == nil {
			why := fmt.Sprintf("stop condition in step %d: %s", n, describeProbe(*p))
			r.log(JournalEvent{Event: "abort", Step: n, Probe: p.Name, Group: p.Group, Value: p.Value, Bound: bound(*p), Reason: why})
			return RunAborted, why
		}
	}
	j := judge(m.ticks, st.Prediction, r.dry, int(st.Duration/runTick))
	j.Step, j.Name, j.Version = n, st.Name, h.version
	r.log(j)
	r.c.printf("step %d: %s", n, describeJudgement(j, r.dry))
	if r.dry {
		r.c.printf("step %d: the experiment group would have got %d delays and %d errors", n, wouldSum.Delays, wouldSum.Errors)
	}
	if !*j.Held {
		return RunDeviated, fmt.Sprintf("step %d's prediction did not hold (%s): the run goes no further", n, j.Verdict)
	}
	if n < len(r.f.Steps) {
		r.end(fmt.Sprintf("step %d ended", n))
		r.log(JournalEvent{Event: "step_end", Step: n, Version: h.version, Reason: "held"})
	}
	return RunHeld, ""
}

func would(t tick) *WouldInject {
	f := t.groups[experimentGroup.String()]
	return &WouldInject{Delays: f.DelaysWouldInject, Errors: f.ErrorsWouldInject}
}

func bound(p ProbeResult) *float64 {
	if p.Max != nil && p.Value != nil && *p.Value > *p.Max {
		return p.Max
	}
	return p.Min
}

func describeJudgement(j JournalEvent, dry bool) string {
	s := fmt.Sprintf("%s experiment − control", j.Metric)
	if j.Difference != nil {
		s += fmt.Sprintf(" %+.4g", *j.Difference)
	}
	if j.Low != nil {
		s += fmt.Sprintf(" (95 %% CI %+.4g to %+.4g, %d seconds)", *j.Low, *j.High, j.Samples)
	} else {
		s += fmt.Sprintf(" (%d seconds: too few for an interval)", j.Samples)
	}
	what := "predicted"
	if dry {
		what = "a dry run: no difference,"
	}
	return s + fmt.Sprintf(", %s %+.4g ± %.4g: %s", what, *j.Predicted, *j.Tolerance, j.Verdict)
}

// rollback stops the run's experiment fleet-wide and waits for the steady
// state to come back, on r.again, which only a second interrupt ends; ""
// when it did, else why not.
func (r *runner) rollback(why string) string {
	ctx := r.again
	v, err := r.end("rollback: " + why)
	if err != nil {
		r.log(JournalEvent{Event: "rollback", Reason: why, Message: err.Error()})
		r.c.printf("rollback: could not stop fleet experiment version %d: it stops by its lease", v)
		return fmt.Sprintf("; the rollback could not stop version %d (%v): every instance stops it by its lease", v, err)
	}
	r.log(JournalEvent{Event: "rollback", Reason: why, StoppedVersion: v})
	if v != 0 {
		r.c.printf("rollback: stopped fleet experiment version %d", v)
	}
	deadline := time.Now().Add(r.f.Rollback)
	for {
		holds, err := r.observe(ctx, "after")
		switch {
		case holds:
			return ""
		case ctx.Err() != nil:
			return "; interrupted again after the rollback: the steady state was not checked"
		case err != nil:
			return fmt.Sprintf("; the steady state could not be measured after the rollback: %v", err)
		case time.Now().After(deadline):
			return fmt.Sprintf("; the steady state did not come back within %s of the rollback", r.f.Rollback)
		}
	}
}

func (r *runner) writeReport() error {
	f := r.report
	if f == nil {
		return nil
	}
	r.j.mu.Lock()
	events := slices.Clone(r.j.events)
	r.j.mu.Unlock()
	if err := writeReport(f, events); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
