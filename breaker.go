package main

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
)

// The circuit breakers around Redis. Each guards one half of one Redis
// server's work: its reads, its writes or, on a cluster, finding which
// server a key lives on (nodes.go says which breakers there are). After a
// run of consecutive failures a breaker opens and its operations are
// answered at once with errCacheUnavailable, so that a Redis that is down
// or slow costs a page nothing; after a cool-down it lets one canary (a
// data command on a key of its own, never a session's) probe Redis, and
// closes when that succeeds. Pages never wait for a probe.

// breakerSettings are the circuit breakers' thresholds.
type breakerSettings struct {
	failures uint32        // consecutive failed operations that open it
	cooldown time.Duration // how long it stays open before a canary probes Redis
}

// trips reports whether the failures counted so far open the breaker: a run
// of b.failures consecutive failures, in the order the operations started. gobreaker counts them in the order they finish, and a failure that
// comes back at once (a refused dial, the chaos build's injected error)
// finishes before the operations that started before it and still wait for
// Redis, any of which may yet succeed. Counted as they finish, experiment 2
// under 16 clients made runs of 5 failures within milliseconds, although its
// failed reads alternate with good ones. So a run opens the breaker only once
// it is longer than the threshold plus every operation still in flight.
func (b breakerSettings) trips(c gobreaker.Counts) bool {
	inFlight := c.Requests - c.TotalSuccesses - c.TotalFailures - c.TotalExclusions
	return c.ConsecutiveFailures >= b.failures+inFlight
}

// errCacheUnavailable is what the store returns, without asking Redis, while
// a breaker is open.
var errCacheUnavailable = errors.New("session cache unavailable: circuit breaker open")

// errLeftToCanary is what a page's operation returns, without running, when
// gobreaker admits it as the half-open breaker's one probe: the canary
// probes instead, and the operation is left out of the counts.
var errLeftToCanary = errors.New("half-open circuit breaker: the canary probes redis")

// redisAnswered tells a breaker which outcomes count as Redis working:
// a reply, including "no such key". Every other error counts as a failure:
// a refused or reset connection, a timeout (REDIS_TIMEOUT or the pool's), an
// error reply such as OOM, READONLY, CLUSTERDOWN or LOADING, and the chaos
// build's injected CHAOS reply. A compare-and-set conflict is a reply, not an
// error. A visitor who goes away cancels the request's context: IsExcluded
// leaves that out, as it says nothing about Redis.
func redisAnswered(err error) bool {
	return err == nil || errors.Is(err, redis.Nil)
}

// half is what a breaker guards.
type half string

const (
	reads   half = "read"
	writes  half = "write"
	routing half = "routing" // a cluster's slot table: which master serves a key
)

// breaker is one circuit breaker: gobreaker's state machine, with a canary
// to probe Redis when half-open.
type breaker struct {
	half   half
	node   string // the Redis server's address; "" for a single server or the cluster's routing
	cb     *gobreaker.CircuitBreaker[struct{}]
	canary func(ctx context.Context) error
	// readiness is /readyz's canary, on keys of its own; nil: none.
	readiness func(ctx context.Context) error
	timeout   time.Duration // REDIS_TIMEOUT, the bound of each canary
	logger    *slog.Logger
	probing   atomic.Bool  // a canary goroutine is under way
	state     atomic.Int32 // gobreaker.State, kept here to be read without gobreaker's lock

	// dependency names what the breaker guards in its log lines: "" for
	// Redis, "recommender" for the recommender's (recommender.go).
	dependency string
}

// newBreaker makes a breaker for h on node, reporting its changes to s.
func (s *store) newBreaker(h half, node string, canary, readiness func(ctx context.Context) error) *breaker {
	b := &breaker{half: h, node: node, canary: canary, readiness: readiness, timeout: s.timeout, logger: s.logger}
	b.cb = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name: strings.TrimSpace(string(h) + " " + node),
		// Half-open: one operation, always a canary, probes Redis; its
		// success closes the breaker, its failure opens it for another
		// cool-down.
		MaxRequests: 1,
		Timeout:     s.breakerSettings.cooldown,
		// Interval 0: the counts are cleared only when the state changes,
		// and only a run of consecutive failures opens it (see trips), so a
		// Redis that fails every other read (experiment 2) never does.
		ReadyToTrip:  func(c gobreaker.Counts) bool { return s.breakerSettings.trips(c) },
		IsSuccessful: redisAnswered,
		IsExcluded: func(err error) bool {
			return errors.Is(err, context.Canceled) || errors.Is(err, errLeftToCanary)
		},
		// Called with gobreaker's lock held: nothing in it may ask b.cb.
		OnStateChange: func(_ string, from, to gobreaker.State) {
			b.state.Store(int32(to))
			s.breakerChanged(b, from, to)
		},
	})
	s.metrics.breakerAdded(string(h))
	return b
}

// currentState is the breaker's state as of its last change. An open
// breaker whose cool-down has passed reads open until an operation or a
// check finds it half-open.
func (b *breaker) currentState() gobreaker.State { return gobreaker.State(b.state.Load()) }

// do runs op, one operation of a page, through the breaker. While the
// breaker is open, or half-open, it returns errCacheUnavailable at once: a
// half-open breaker is probed by its canary, on a goroutine of its own, so
// that no page waits for a Redis that may still be failing, and no page's
// own command decides whether Redis is back.
func (b *breaker) do(op func() error) error {
	_, err := b.cb.Execute(func() (struct{}, error) {
		// Admitted half-open: the change of state was stored on the way in.
		if b.currentState() == gobreaker.StateHalfOpen {
			return struct{}{}, errLeftToCanary
		}
		return struct{}{}, op()
	})
	switch {
	case errors.Is(err, errLeftToCanary):
		b.probeInBackground()
		return errCacheUnavailable
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		return errCacheUnavailable
	}
	return err
}

// probeInBackground starts the canary unless one is under way. It runs on
// a context of its own: it belongs to no page, and must not be cut short by
// the visitor who happened to find the breaker half-open going away.
func (b *breaker) probeInBackground() {
	if !b.probing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer b.probing.Store(false)
		b.check(context.Background())
	}()
}

// ready is /readyz's answer for b's half: errCacheUnavailable at once while
// b is open, else its readiness canary, bounded by REDIS_TIMEOUT, which so
// notices an outage that no visitor has yet. It runs outside the breaker: a
// probe that any client can call as often as it likes must neither close a
// breaker nor, by its successes, keep one from opening; and its keys are
// ones the chaos build's experiments leave alone (a delay there would fail
// every replica's readiness probe at once).
func (b *breaker) ready(ctx context.Context) error {
	if gobreaker.State(b.state.Load()) == gobreaker.StateOpen || b.readiness == nil {
		return errCacheUnavailable
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	err := b.readiness(ctx)
	if err != nil && !errors.Is(err, context.Canceled) {
		b.logger.Warn(b.errorLine(err), b.attrs("op", "readiness "+string(b.half))...)
	}
	return err
}

// check runs the canary through the breaker, bounded by REDIS_TIMEOUT: the
// half-open probe. It returns errCacheUnavailable at once while the breaker
// is open or another probe is under way, and logs a failure of its own.
func (b *breaker) check(ctx context.Context) error {
	err := b.run(func() error {
		ctx, cancel := context.WithTimeout(ctx, b.timeout)
		defer cancel()
		return b.canary(ctx)
	})
	if err != nil && !errors.Is(err, errCacheUnavailable) && !errors.Is(err, context.Canceled) {
		b.logger.Warn(b.errorLine(err), b.attrs("op", "canary "+string(b.half))...)
	}
	return err
}

// run runs op through the breaker as it is: op may be the half-open probe.
func (b *breaker) run(op func() error) error {
	_, err := b.cb.Execute(func() (struct{}, error) { return struct{}{}, op() })
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return errCacheUnavailable
	}
	return err
}

// errorLine is the message of a log line about a failed probe.
func (b *breaker) errorLine(err error) string {
	if b.dependency != "" {
		return b.dependency + " error " + err.Error()
	}
	return "redis error " + err.Error()
}

// attrs are a log line's attributes about b, after those given.
func (b *breaker) attrs(kv ...any) []any {
	kv = append(kv, "operation", string(b.half))
	if b.node != "" {
		kv = append(kv, "node", b.node)
	}
	return kv
}

// breakerChanged logs each change of a breaker's state once; while it is
// open, pages log nothing each. It runs under b's lock.
func (s *store) breakerChanged(b *breaker, from, to gobreaker.State) {
	s.metrics.breakerStateChanged(string(b.half), from.String(), to.String(), s.cacheState().String())
	attrs := b.attrs("from", from.String(), "to", to.String())
	switch to {
	case gobreaker.StateOpen:
		msg := "redis circuit breaker open: serving pages without recommendations"
		if b.half == writes {
			msg = "redis circuit breaker open: pages show the interests read, and new searches are not remembered"
		}
		s.logger.Warn(msg, attrs...)
	case gobreaker.StateHalfOpen:
		s.logger.Warn("redis circuit breaker half-open: a canary probes redis", attrs...)
	case gobreaker.StateClosed:
		s.logger.Warn("redis circuit breaker closed: redis answers again", attrs...)
	}
}
