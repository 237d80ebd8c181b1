package chaos

import (
	"time"
)

// The guardrails of an experiment: a duration after which it ends by
// itself (here), stop conditions that abort it when the steady state breaks
// (stop.go), and a blast radius that confines it to a share of the units,
// the rest being the control group (blast.go).

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
	endsAt      time.Time // zero: no duration
	stopTimer   func() bool

	groups [2]groupCounters // by group

	window *stopWindow // nil: no stop condition

	ended time.Time
	abort *Abort // nil: not aborted
}

func newRun(c Config) *run {
	r := &run{cfg: c.Guardrails, seed: c.Seed, allSessions: c.SessionsPercent == nil}
	if !r.allSessions {
		// 53 bits, so that every percentage maps exactly to a cut-off and
		// 100 % includes every hash.
		r.cutoff = uint64(*c.SessionsPercent / 100 * (1 << 53))
	}
	if c.StopFailedReadsShare > 0 || c.StopSearchP99Seconds > 0 {
		r.window = newStopWindow(c.stopWindow(), c.StopFailedReadsShare, c.StopSearchP99Seconds)
	}
	return r
}

func (g Guardrails) stopWindow() int {
	if g.StopWindowSearches == 0 {
		return defaultStopWindow
	}
	return g.StopWindowSearches
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
	r := p.run
	r.started = e.now()
	if !p.injects() || r.cfg.DurationSeconds == 0 {
		return
	}
	d := time.Duration(r.cfg.DurationSeconds * float64(time.Second))
	r.endsAt = r.started.Add(d)
	var c clock = realClock{}
	if e.clock != nil {
		c = e.clock
	}
	r.stopTimer = c.AfterFunc(d, func() { e.end(p, nil) })
}

// end stops p's injection, if p still runs: its duration ran out (abort
// nil) or a stop condition broke. Only a Use starts injecting again.
func (e *Experiment) end(p *plan, abort *Abort) {
	e.swap.Lock()
	defer e.swap.Unlock()
	if e.active.Load() != p {
		return // replaced, or already ended
	}
	r := p.run
	r.ended = e.now()
	if r.stopTimer != nil {
		r.stopTimer()
	}
	r.abort = abort
	e.active.Store(p.stopped())
	p.retired()
	if abort != nil {
		e.logger.Warn("chaos experiment aborted by a stop condition; no injection until the next PUT /debug/chaos",
			"experiment", p.config.Experiment, "condition", abort.Condition, "observed", abort.Observed,
			"threshold", abort.Threshold, "window_searches", abort.Window)
		return
	}
	e.logger.Warn("chaos experiment ended: its duration ran out; no injection until the next PUT /debug/chaos",
		"experiment", p.config.Experiment, "duration_seconds", r.cfg.DurationSeconds)
}
