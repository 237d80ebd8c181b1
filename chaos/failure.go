package chaos

import (
	"bytes"
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// failure fails the service's reads (the Reads option): every Nth read
// under the plan, or at random at a rate from the seeded draws. At the
// command layer the read returns an error without reaching Redis; at the
// connection layer its connection is dropped, or answered with a real Redis
// error reply.
type failure struct {
	every int64
	rate  float64      // above 0: at random instead of every Nth
	reply []byte       // the RESP error reply a failed read gets; nil: CHAOS, or a dropped connection
	reads atomic.Int64 // reads while this plan fails every Nth

	mu    sync.Mutex
	draws *rand.Rand
}

// newFailure returns c's failing reads, or nil when c has none.
func newFailure(c Config) *failure {
	if !c.failsReads() {
		return nil
	}
	return &failure{every: c.ErrorEvery, rate: c.ErrorRate, reply: errorReplies[c.ErrorReply],
		draws: rand.New(rand.NewPCG(c.Seed, 1))}
}

// fails decides whether this read fails.
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
func (e *Experiment) failRead(ctx context.Context, p *plan, req *request) (context.Context, error) {
	if p.dryRun {
		e.errorsWouldInject.Add(1)
		req.errorWouldInject()
		return context.WithValue(ctx, wouldFailKey{}, true), nil
	}
	e.errorsInjected.Add(1)
	req.errorInjected()
	return ctx, p.command.failure.commandError()
}

type wouldFailKey struct{}

// wouldFail reports whether a dry run failed the read of ctx, had it been
// real.
func wouldFail(ctx context.Context) bool { return ctx.Value(wouldFailKey{}) != nil }

// errorReplies are the error replies a failed read can get, byte for byte
// as a Redis server sends them. go-redis retries all three when it is
// configured to retry; READONLY also makes it close the connection.
var errorReplies = map[string][]byte{
	"LOADING":     []byte("-LOADING Redis is loading the dataset in memory\r\n"),
	"READONLY":    []byte("-READONLY You can't write against a read only replica.\r\n"),
	"CLUSTERDOWN": []byte("-CLUSTERDOWN Hash slot not served\r\n"),
}

// commandError is what a read failed at the command layer returns: the
// book's CHAOS, or the chosen reply's text as an error reply. It is returned
// from a hook, outside go-redis's retry loop, so it is never retried.
func (f *failure) commandError() error {
	if f.reply == nil {
		return Error{}
	}
	return replyError(bytes.TrimSpace(f.reply[1:]))
}

// Error is the injected failure of the command layer. It is a redis.Error,
// so everything downstream handles it as an error reply from Redis.
type Error struct{}

func (Error) Error() string { return "CHAOS" }
func (Error) RedisError()   {}

type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}
