package chaos

import (
	"bytes"
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// failure fails the commands it targets (the service's reads, the Reads
// option, unless the commands list names others): every Nth under the
// plan, or at random at a rate from the seeded draws. At the command layer
// the command returns an error without reaching Redis; at the connection
// layer its connection is dropped, or answered with a real Redis error
// reply.
type failure struct {
	every    int64
	rate     float64         // above 0: at random instead of every Nth
	reply    string          // the error reply a failed command gets (errorReplies, redirects); "": CHAOS, or a dropped connection
	commands map[string]bool // nil: the service's reads
	reads    atomic.Int64    // targeted commands while this plan fails every Nth

	mu    sync.Mutex
	draws *rand.Rand
}

// newFailure returns c's failing reads, or nil when c has none.
func newFailure(c Config) *failure {
	if !c.failsReads() {
		return nil
	}
	f := &failure{every: c.ErrorEvery, rate: c.ErrorRate, reply: c.ErrorReply,
		draws: rand.New(rand.NewPCG(c.Seed, 1))}
	if len(c.Commands) > 0 {
		f.commands = map[string]bool{}
		for _, cmd := range c.Commands {
			f.commands[cmd] = true
		}
	}
	return f
}

// targets reports whether the failure applies to c: one of the commands
// listed, or with none listed one of the service's reads.
func (f *failure) targets(o *Options, c Command) bool {
	if f.commands == nil {
		return o.isRead(c)
	}
	return f.commands[c.Name]
}

// fails decides whether this targeted command fails.
func (f *failure) fails() bool {
	if f.rate > 0 {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.draws.Float64() < f.rate
	}
	return f.reads.Add(1)%f.every == 0
}

// failRead counts a read that p fails at the command layer and returns its
// error. In a dry run it counts it as one p would have failed and returns
// nil, and the read goes on to Redis in the context it returns, which
// tells the latency that a real run's read would not have reached it: the
// dry run draws no delay for it either, so that its draws stay a real
// run's.
func (e *Experiment) failRead(ctx context.Context, p *plan, req *request, c Command) (context.Context, error) {
	if p.dryRun {
		e.errorsWouldInject.Add(1)
		req.errorWouldInject()
		return context.WithValue(ctx, wouldFailKey{}, true), nil
	}
	e.errorsInjected.Add(1)
	req.errorInjected()
	f, addr := p.command.failure, ""
	if redirects[f.reply] {
		addr = e.nodeAddr(ctx, c.Key)
	}
	return ctx, f.commandError(c, addr)
}

type wouldFailKey struct{}

// wouldFail reports whether a dry run failed the read of ctx, had it been
// real.
func wouldFail(ctx context.Context) bool { return ctx.Value(wouldFailKey{}) != nil }

// commandError is what a command failed at the command layer returns: the
// book's CHAOS, or the chosen reply's text as an error reply; a redirect
// names the node that serves key (addr). It is returned from a hook,
// outside go-redis's retry and redirect loops, so it is never retried nor
// followed.
func (f *failure) commandError(c Command, addr string) error {
	if f.reply == "" {
		return Error{}
	}
	return replyError(bytes.TrimSpace(replyFor(f.reply, c.Key, addr)[1:]))
}

// Error is the injected failure of the command layer. It is a redis.Error,
// so everything downstream handles it as an error reply from Redis.
type Error struct{}

func (Error) Error() string { return "CHAOS" }
func (Error) RedisError()   {}

type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}
