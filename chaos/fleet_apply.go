package chaos

import (
	"fmt"
	"sync"
	"time"
)

// The instance's side of a fleet experiment, under Experiment.swap like
// every change of plan: the fleet's record applied as a run on a lease, the
// halt, and the rule between the fleet and the instance's own control. The
// rule: while a fleet experiment runs here or a halt is in force, the
// instance's own PUT and PATCH (and Use) are refused; its DELETE (Stop)
// always works, and stops the fleet's experiment here until the fleet's next
// version.

// Halt is a halt in force: no experiment runs on any instance until the
// fleet resumes.
type Halt struct {
	By      string    `json:"by"`
	Reason  string    `json:"reason"`
	At      time.Time `json:"at"`
	Version int64     `json:"version"`
}

// refusal is a change refused because of the fleet: 409 on the handler.
type refusal struct{ msg string }

func (r *refusal) Error() string { return r.msg }

// fleetOwns says why the instance's own change of experiment is refused now:
// a halt, or a fleet experiment running here; nil: it is not.
func (e *Experiment) fleetOwns() error {
	if h := e.halt.Load(); h != nil {
		return &refusal{fmt.Sprintf("chaos is halted fleet-wide by %s at %s (%s): no experiment starts until ctl resume",
			h.By, h.At.Format(time.RFC3339), h.Reason)}
	}
	if p := e.active.Load(); p.fleetVersion != 0 && p.injects() {
		return &refusal{fmt.Sprintf("fleet experiment version %d runs here: change it with ctl patch or ctl stop; DELETE stops it on this instance", p.fleetVersion)}
	}
	return nil
}

// refusesLocal is fleetOwns for a Use of cfg: stopping is never refused, and
// a stop of the fleet's experiment keeps it stopped here, also one whose
// lease lapsed (a renewed lease read later would start it again). The caller
// holds e.swap.
func (e *Experiment) refusesLocal(cfg Config) error {
	if cfg.Experiment != "none" {
		return e.fleetOwns()
	}
	if p := e.active.Load(); p.fleetVersion != 0 && (p.injects() || p.run.lapsed) {
		e.fleetDone(p.fleetVersion)
		e.logger.Warn("chaos fleet experiment stopped on this instance only, until the fleet's next version",
			"fleet_version", p.fleetVersion)
	}
	return nil
}

// fleetDone marks the fleet's versions up to v as over here: read again, as
// the same record or replayed, they do not start. The caller holds e.swap.
func (e *Experiment) fleetDone(v int64) { e.fleetFloor = max(e.fleetFloor, v) }

// applyFleet runs the fleet's record of version v (cfg, checked, ending at
// end) on a lease that lapses at leaseUntil, or extends the lease of the run
// that already runs it. A record changing only the faults of the running
// fleet experiment continues its run, as a PATCH does. It says why it does
// not run the record, for the log: ctl reports it started. The caller holds
// e.swap.
func (e *Experiment) applyFleet(v int64, cfg Config, end, leaseUntil time.Time) (why string) {
	now := time.Now()
	cur := e.active.Load()
	switch {
	case e.halt.Load() != nil:
		return "a halt is in force here: ctl resume lifts it"
	case cur.fleetVersion == v && cur.injects():
		cur.run.lease.extend(e, cur, leaseUntil)
		return ""
	case v <= e.fleetFloor && cur.fleetVersion == v:
		return "" // it ended here, its record not yet removed: no news
	case v <= e.fleetFloor:
		return "this version, or a later one, is over here (stopped, ended or replaced); the fleet's next version applies"
	case !end.After(now):
		// The end is ctl's clock's: this one is ahead of it.
		return fmt.Sprintf("its end %s is past on this instance's clock", end.Format(time.RFC3339))
	case !leaseUntil.After(now):
		return ""
	}
	var p *plan
	if cur.fleetVersion != 0 && cur.injects() && sameRun(cur.config, cfg) {
		p = e.continueRun(cfg, end, v)
	} else {
		p = e.install(cfg, end, v)
	}
	e.fleetFloor = max(e.fleetFloor, v-1)
	p.run.lease.extend(e, p, leaseUntil)
	e.logger.Warn("chaos fleet experiment applied", "fleet_version", v, "lease_until", leaseUntil)
	return ""
}

// stopFleet stops the fleet's experiment v here, if it runs: its record is
// gone (why says how). The caller holds e.swap.
func (e *Experiment) stopFleet(v int64, why string) {
	cur := e.active.Load()
	if v == 0 || cur.fleetVersion != v || !cur.injects() {
		return // not the fleet's: the instance's own experiment goes on
	}
	e.fleetDone(v)
	e.install(Off(), time.Time{}, 0)
	e.logger.Warn("chaos fleet experiment stopped: "+why, "fleet_version", v)
}

// setHalt puts h in force, unless a later halt is, and stops whatever
// experiment runs here, the fleet's or the instance's own. A halt below a
// resume read here is put in force too: it is the halt the control plane
// holds (its write came last, or the version counter was lost), and a halt
// replayed only stops what a signed resume lets start again. The caller
// holds e.swap.
func (e *Experiment) setHalt(h *Halt) {
	if cur := e.halt.Load(); cur != nil && cur.Version >= h.Version {
		return
	}
	e.halt.Store(h)
	if cur := e.active.Load(); cur.injects() {
		e.fleetDone(cur.fleetVersion)
		e.install(Off(), time.Time{}, 0)
	}
	e.changed()
	e.logger.Warn("chaos halted fleet-wide: every experiment stopped, none starts until ctl resume",
		"by", h.By, "reason", h.Reason, "at", h.At, "halt_version", h.Version)
}

// resume lifts the halt in force, if the resume of version v came after it.
// The caller holds e.swap.
func (e *Experiment) resume(v int64, by string) {
	if h := e.halt.Load(); h != nil && v > h.Version {
		e.halt.Store(nil)
		e.changed()
		e.logger.Warn("chaos halt lifted: experiments may start again", "by", by, "halted_by", h.By)
	}
}

// sameRun reports whether b changes only a's faults: a run goes on.
func sameRun(a, b Config) bool {
	ga, gb := a.Guardrails, b.Guardrails
	ga.DurationSeconds, gb.DurationSeconds = 0, 0
	sa, sb := ga.SessionsPercent, gb.SessionsPercent
	ga.SessionsPercent, gb.SessionsPercent = nil, nil
	samePercent := (sa == nil) == (sb == nil) && (sa == nil || *sa == *sb)
	return ga == gb && samePercent && a.Seed == b.Seed && a.DryRun == b.DryRun && a.RunID == b.RunID
}

// lease is the time a fleet experiment's run may inject until, as last read
// from the control plane: when no later reading extends it, the run ends
// there by itself, whatever became of the controller or the control plane.
type lease struct {
	mu        sync.Mutex
	until     time.Time
	stopTimer func() bool
}

// extend moves the lease of p's run to until, if later.
func (l *lease) extend(e *Experiment, p *plan, until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !until.After(l.until) {
		return
	}
	l.until = until
	if l.stopTimer != nil {
		l.stopTimer()
	}
	// The real clock: the lease was read on it.
	l.stopTimer = time.AfterFunc(time.Until(until), func() { e.lapse(p, l) }).Stop
}

// lapse ends p's run if l was not extended meanwhile.
func (e *Experiment) lapse(p *plan, l *lease) {
	e.swap.Lock()
	defer e.swap.Unlock()
	if time.Now().Before(l.expiry()) {
		return
	}
	e.endLocked(p, nil, true)
}

// expiry is when the lease lapses; zero: no lease.
func (l *lease) expiry() time.Time {
	if l == nil {
		return time.Time{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.until
}

func (l *lease) stop() {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopTimer != nil {
		l.stopTimer()
	}
}
