package chaos

import (
	"sync/atomic"
	"time"
)

// The guardrails of an experiment: a duration after which it ends by
// itself (here), stop conditions that abort it when the steady state breaks
// (stop.go, judged here once a second too), and a blast radius that
// confines it to a share of the units, the rest being the control group
// (blast.go).

// clock is the guardrails' time, which tests replace.
type clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

func (e *Experiment) now() time.Time {
	if e.clock == nil {
		return time.Now()
	}
	return e.clock.Now()
}

// run is what the guardrails keep for one experiment, from the Use (or New)
// that began it, through its end: the plan that ends it shares it, so the
// status still shows what it did.
type run struct {
	cfg         Guardrails
	allSessions bool
	cutoff      uint64 // a unit whose hash is below it is in the experiment group
	seed        uint64
	started     time.Time
	// endsAt is when the duration ends it: a PATCH that names the duration
	// moves it while GET reads it.
	endsAt    atomic.Pointer[time.Time]
	stopTimer func() bool

	groups [2]groupCounters // by group

	window *stopWindow // nil: no stop condition

	ended time.Time
	abort *Abort // nil: not aborted
	// lease is the fleet's lease on a fleet experiment's run (fleet_apply.go);
	// nil: the instance's own experiment.
	lease  *lease
	lapsed bool // its lease lapsed
}

// end is when the run's duration ends it; zero: not set yet.
func (r *run) end() time.Time {
	if t := r.endsAt.Load(); t != nil {
		return *t
	}
	return time.Time{}
}

func (r *run) setEnd(t time.Time) { r.endsAt.Store(&t) }

func newRun(c Config) *run {
	r := &run{cfg: c.Guardrails, seed: c.Seed, allSessions: c.SessionsPercent == nil}
	if !r.allSessions {
		// 53 bits, so that every percentage maps exactly to a cut-off and
		// 100 % includes every hash.
		r.cutoff = uint64(*c.SessionsPercent / 100 * (1 << 53))
	}
	if c.stops() {
		r.window = newStopWindow(c.Guardrails, r.groupOf)
	}
	return r
}

// stops reports whether g has a stop condition.
func (g Guardrails) stops() bool {
	return g.StopFailedReadsShare > 0 || g.StopDegradedShare > 0 || g.StopSearchP99Seconds > 0
}

func (g Guardrails) stopWindow() int {
	if g.StopWindowSearches == 0 {
		return defaultStopWindow
	}
	return g.StopWindowSearches
}

// stopMinSearches is how many pages of the window the conditions wait for:
// by default 10, or the whole window when it is smaller.
func (g Guardrails) stopMinSearches() int {
	if g.StopMinSearches == 0 {
		return min(defaultStopMinSearches, g.stopWindow())
	}
	return g.StopMinSearches
}

// judgeEvery is how often the stop conditions are judged however slow the
// traffic: a page is judged as it ends, and one that hangs does not end.
const judgeEvery = time.Second

// judge judges p's stop conditions every judgeEvery on the guardrails'
// clock until p's run ends, and stops old's judge: the caller holds e.swap.
func (e *Experiment) judge(p, old *plan) {
	if old != nil {
		old.run.window.stopJudging()
	}
	w := p.run.window
	if w == nil || !p.injects() {
		return
	}
	var tick func()
	arm := func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if !w.judgeStopped {
			w.stopJudge = e.guardClock().AfterFunc(judgeEvery, tick)
		}
	}
	tick = func() {
		if e.active.Load().run != p.run {
			return
		}
		if abort := w.judge(e.now()); abort != nil {
			e.end(p, abort)
			return
		}
		arm()
	}
	arm()
}

// stopJudging stops w's judge for good; nil: no stop condition.
func (w *stopWindow) stopJudging() {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.judgeStopped = true
	if w.stopJudge != nil {
		w.stopJudge()
	}
}

func (e *Experiment) guardClock() clock {
	if e.clock == nil {
		return realClock{}
	}
	return e.clock
}

// started begins a plan's run: its duration, if it has one. The caller holds
// e.swap and makes p active after it.
func (e *Experiment) started(p, old *plan) {
	if old != nil {
		old.retired()
	}
	if old != nil && old.run.stopTimer != nil {
		old.run.stopTimer()
	}
	if old != nil && old.run != p.run {
		old.run.lease.stop()
	}
	r := p.run
	r.started = e.now()
	e.judge(p, old)
	if !p.injects() || r.cfg.DurationSeconds == 0 {
		return
	}
	d := time.Duration(r.cfg.DurationSeconds * float64(time.Second))
	if r.end().IsZero() { // else a PATCH kept its predecessor's end
		r.setEnd(r.started.Add(d))
	}
	d = r.end().Sub(r.started)
	var c clock = realClock{}
	if e.clock != nil {
		c = e.clock
	}
	r.stopTimer = c.AfterFunc(d, func() { e.end(p, nil) })
}

// end stops the injection of p's run, if it still runs: its duration ran
// out (abort nil) or a stop condition broke. The active plan may be a later
// one than p on the same run (a PATCH of the faults): it ends too. Only a
// Use starts injecting again.
func (e *Experiment) end(p *plan, abort *Abort) {
	e.swap.Lock()
	defer e.swap.Unlock()
	e.endLocked(p, abort, false)
}

// endLocked is end, and a fleet lease's lapse (lapsed); the caller holds
// e.swap.
func (e *Experiment) endLocked(p *plan, abort *Abort, lapsed bool) {
	cur := e.active.Load()
	if cur.run != p.run || !cur.injects() {
		return // replaced, or already ended
	}
	if abort == nil && !lapsed && e.now().Before(cur.run.end()) {
		return // a timer that fired as a PATCH moved the end later
	}
	p = cur
	r := p.run
	r.ended = e.now()
	if r.stopTimer != nil {
		r.stopTimer()
	}
	r.abort, r.lapsed = abort, lapsed
	r.lease.stop()
	if !lapsed {
		// A fleet experiment that ended here is over here: the same version
		// read again does not start it again. One whose lease lapsed is
		// applied again when a renewed lease is read.
		e.fleetDone(p.fleetVersion)
	}
	r.window.stopJudging()
	e.active.Store(p.stopped())
	p.retired()
	e.changed()
	// The run is no longer active, so the log handler adds its id no more.
	log := e.logger
	if p.runID != "" {
		log = log.With("run_id", p.runID)
	}
	switch {
	case lapsed:
		log.Warn("chaos fleet experiment stopped: its lease lapsed (its controller stopped renewing it, or the control plane is unreachable); no injection until a lease is read again",
			"fleet_version", p.fleetVersion, "experiment", p.config.Experiment)
	case abort != nil:
		log.Warn("chaos experiment aborted by a stop condition; no injection until the next PUT /debug/chaos",
			"experiment", p.config.Experiment, "condition", abort.Condition, "observed", abort.Observed,
			"threshold", abort.Threshold, "window_searches", abort.Window)
	default:
		log.Warn("chaos experiment ended: its duration ran out; no injection until the next PUT /debug/chaos",
			"experiment", p.config.Experiment, "duration_seconds", r.cfg.DurationSeconds)
	}
}
