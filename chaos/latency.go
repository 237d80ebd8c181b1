package chaos

import (
	"context"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"
)

// latency delays the round trips to Redis of the commands it targets: at
// the command layer before the command takes a pooled connection, at the
// connection layer by holding the reply back on its connection.
type latency struct {
	delay    time.Duration
	jitter   time.Duration
	commands map[string]bool // nil: every command

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

// targets reports whether the latency applies to a command, by its name in
// lower case.
func (l *latency) targets(name string) bool { return l.commands == nil || l.commands[name] }

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

// timerSlack is how late a Go timer may fire: the runtime's poller sleeps in
// whole milliseconds, so a 100 ms timer ends 0.4 ms late on average, which
// would overstate a two-delay request by 0.4 %. One millisecond of slack left
// 10 ms delays up to 113 µs late when the timer's wake-up came after a full
// millisecond; two kept the worst of 100 under 30 µs on the build machine.
const timerSlack = 2 * time.Millisecond

// sleepUntil waits for deadline on a timer, except for the last timerSlack,
// which it spends yielding the processor. It ends early with ctx's error.
func sleepUntil(ctx context.Context, deadline time.Time) error {
	if coarse := time.Until(deadline) - timerSlack; coarse > 0 {
		timer := time.NewTimer(coarse)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for time.Now().Before(deadline) {
		if err := ctx.Err(); err != nil {
			return err
		}
		runtime.Gosched()
	}
	return nil
}
