package chaos

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// latency delays the round trips to Redis of the commands it targets: at
// the command layer before the command takes a pooled connection, at the
// connection layer by holding the reply back on its connection.
type latency struct {
	delay    time.Duration
	jitter   time.Duration
	commands map[string]bool // nil: every command but the spared ones

	mu    sync.Mutex
	draws *rand.Rand
}

// newLatency returns c's latency, or nil when c has none.
func newLatency(c Config) *latency {
	if !c.latency() {
		return nil
	}
	l := &latency{
		delay:  time.Duration(math.Round(c.DelaySeconds * float64(time.Second))),
		jitter: time.Duration(math.Round(c.JitterSeconds * float64(time.Second))),
		draws:  rand.New(rand.NewPCG(c.Seed, 2)),
	}
	if len(c.Commands) > 0 {
		l.commands = map[string]bool{}
		for _, cmd := range c.Commands {
			l.commands[cmd] = true
		}
	}
	return l
}

// spared are the commands a latency with no commands list leaves alone.
// PING is what health checks send (the shop's /readyz): a delay there fails
// every replica's readiness probe at once, the outage the probe exists to
// prevent, while the experiment means to slow the pages. The others are the
// handshake of a new connection, which go-redis sends through the same hooks
// and on the same connection in the context of whichever command dialled,
// a health check's PING included: a dial's cost is the dial's, not a round
// trip the experiment delays. CLUSTER and COMMAND are how a cluster client
// learns the slots and the commands, which a health check's PING can be the
// first to need. Naming one in the commands list targets it.
var spared = map[string]bool{"ping": true, "hello": true, "auth": true, "select": true, "client": true, "readonly": true,
	"cluster": true, "command": true}

// targets reports whether the latency applies to a command, by its name in
// lower case.
func (l *latency) targets(name string) bool {
	if l.commands == nil {
		return !spared[name]
	}
	return l.commands[name]
}

// next is the delay, moved by a uniform draw within ± the jitter, and never
// below zero.
func (l *latency) next() time.Duration {
	if l.jitter == 0 {
		return l.delay
	}
	l.mu.Lock()
	u := l.draws.Float64()
	l.mu.Unlock()
	return max(0, l.delay+time.Duration((2*u-1)*float64(l.jitter)))
}

// delayDecided counts a delay that p decided at the command layer, and
// reports whether to wait it: not in a dry run, which counts it as one p
// would have injected.
func (e *Experiment) delayDecided(p *plan, req *request) bool {
	if p.dryRun {
		e.delaysWouldInject.Add(1)
		req.delayWouldInject()
		return false
	}
	e.delaysInjected.Add(1)
	req.delayInjected()
	return true
}

// delay waits from start until deadline (see wait), counting the delay
// while it is in progress and, once it ends, the time it actually waited
// since start, on the monotonic clock: that tells an inaccurate delay from
// the system's reaction to it. start is the caller's: the instant a
// deadline of start + d was set from, so that a delay that ends on time
// counts d, not the nanoseconds less that a later clock reading would.
func (e *Experiment) delay(ctx, plan, conn context.Context, start, deadline time.Time) error {
	e.delaysInProgress.Add(1)
	defer e.delaysInProgress.Add(-1)
	err := wait(ctx, plan, conn, deadline)
	e.delayedNanos.Add(int64(time.Since(start)))
	return err
}
