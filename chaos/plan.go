package chaos

import (
	"context"
	"time"
)

// plan is a checked Config in the form the hooks use. The hooks load the
// active plan once per command, so a replaced plan never shows half. Which
// layer injects is decided here, once: at most one of command and conn is
// set, and a hook of the other layer finds nil and hands the call on.
type plan struct {
	config  Config
	command *faults // injected around go-redis's commands
	conn    *faults // injected on the connections go-redis dials
	run     *run    // the guardrails' state, which the plan that ends it shares
	// fleetVersion is the version of the fleet's record this plan runs; 0:
	// the instance's own experiment (New, Use, PUT, PATCH).
	fleetVersion int64
	// dryRun: each fault decided is counted as one the plan would have
	// injected, and not injected. A field of the plan, not a look at the
	// Config, so that a decision reads it with the plan it already loaded.
	dryRun bool
	// runID is the run id while the plan injects (or would, in a dry run);
	// "" once it is stopped, or when it has none: the log handler and the
	// metrics read it with one load of the active plan.
	runID string
	// live is done when the plan stops being the active one, however it
	// stops (Use, Stop, an abort, the end of the duration), always under
	// Experiment.swap: every delay it injected that is still waiting ends
	// there and then. A context rather than a bare channel, so that a delay
	// waits on it with a callback instead of a goroutine.
	live   context.Context
	retire context.CancelFunc

	latencySince time.Time
	errorSince   time.Time

	// http are the faults of each HTTP dependency the Config names, which
	// Transport's calls inject; nil: none.
	http map[string]*httpFaults
}

// faults are what one layer injects; a nil kind injects nothing.
type faults struct {
	latency *latency
	failure *failure
}

func newPlan(c Config) *plan { return planOn(c, newRun(c)) }

// planOn is c's plan on run r: a new one, or the running one that a PATCH
// of the faults alone continues.
func planOn(c Config, r *run) *plan {
	p := &plan{config: c, run: r}
	p.live, p.retire = context.WithCancel(context.Background())
	f := &faults{latency: newLatency(c), failure: newFailure(c)}
	p.http = newHTTPFaults(c)
	switch {
	case f.latency == nil && f.failure == nil, !c.faultsRedis():
	case c.Layer == LayerConnection:
		p.conn = f
	default:
		p.command = f
	}
	if p.injects() {
		p.dryRun, p.runID = c.DryRun, c.RunID
	}
	return p
}

// stopped is p with nothing injected, sharing its run, so the status still
// shows what it did.
func (p *plan) stopped() *plan {
	s := &plan{config: p.config, run: p.run, fleetVersion: p.fleetVersion}
	s.live, s.retire = context.WithCancel(context.Background())
	return s
}

// retired ends the delays p injected: p is no longer the active plan. The
// caller holds Experiment.swap.
func (p *plan) retired() { p.retire() }

// faults is whichever layer injects; nil: none does.
func (p *plan) faults() *faults { return cmpOr(p.command, p.conn) }

// injects reports whether the plan injects any fault, or in a dry run
// decides as if it did: the guardrails run alike for both.
func (p *plan) injects() bool { return p.faults() != nil || p.http != nil }

func (p *plan) latency() bool {
	f := p.faults()
	return f != nil && f.latency != nil || p.http != nil && p.httpKind().latency != nil
}

func (p *plan) failure() bool {
	f := p.faults()
	return f != nil && f.failure != nil || p.http != nil && p.httpKind().failure != nil
}

// succeeded carries over the time each fault kind became active: a kind that
// stays on keeps its time.
func (p *plan) succeeded(old *plan, now time.Time) {
	if p.latency() {
		p.latencySince = now
		if old != nil && old.latency() {
			p.latencySince = old.latencySince
		}
	}
	if p.failure() {
		p.errorSince = now
		if old != nil && old.failure() {
			p.errorSince = old.errorSince
		}
	}
}

func cmpOr[T any](a, b *T) *T {
	if a != nil {
		return a
	}
	return b
}
