//go:build chaos

package main

import (
	"context"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Everything that injects faults lives in the files built only with
// -tags chaos: this one, with the identifiers that chaos_off.go declares
// empty; chaos_config.go, what an experiment is; chaos_control.go, its HTTP
// control; chaos_metrics.go, its metrics; chaos_conn.go, the connection layer.

const chaosBuild = true

// chaosExperiment is the running experiment, which PUT /debug/chaos replaces,
// and what the experiments have done since the process started.
type chaosExperiment struct {
	active atomic.Pointer[chaosPlan]
	swap   sync.Mutex // serialises replacements, which read the plan they replace
	logger *slog.Logger
	rdb    redis.UniversalClient

	roundTrips     atomic.Int64
	interestReads  atomic.Int64
	delaysInjected atomic.Int64
	errorsInjected atomic.Int64
	// delayedNanos is the time the delays actually waited, cut short or not,
	// each measured on the monotonic clock: the bench compares it with what
	// was asked for, to tell an inaccurate delay from the system's reaction.
	delayedNanos atomic.Int64
	conn         chaosConnCounters // the connection layer's, in chaos_conn.go

	chaosGuards
}

// newChaosExperiment reads the experiment the environment asks for.
func newChaosExperiment(getenv func(string) string) (*chaosExperiment, error) {
	cfg, err := chaosConfigFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	e := &chaosExperiment{}
	plan := newChaosPlan(cfg)
	plan.succeeded(nil, time.Now())
	e.active.Store(plan)
	return e, nil
}

// attach hooks the experiment into the Redis client.
func (e *chaosExperiment) attach(logger *slog.Logger, rdb redis.UniversalClient) {
	e.logger, e.rdb = logger, rdb
	e.swap.Lock()
	e.started(e.active.Load(), nil)
	e.swap.Unlock()
	e.logPlan("CHAOS BUILD: fault injection is compiled in; never run this binary in production", e.active.Load().config)
	if readAs := e.active.Load().config.readAs; readAs != "" {
		logger.Warn(readAs)
	}
	// Reads are counted, and failed, once per command as the store issues it:
	// on a cluster a redirected read is still one read.
	rdb.AddHook(&chaosReadHook{e})
	// Round trips happen where commands reach Redis: on a cluster, in the
	// client go-redis makes for each node.
	trips := &chaosRoundTripHook{e}
	if cluster, ok := rdb.(*redis.ClusterClient); ok {
		cluster.OnNewNode(func(node *redis.Client) { node.AddHook(trips) })
	} else {
		rdb.AddHook(trips)
	}
}

// mountControl serves /debug/chaos on the admin listener, behind
// chaosControlGuard: the listener is loopback by default, but it may be
// bound wider to let Prometheus scrape it.
func (e *chaosExperiment) mountControl(admin *http.ServeMux) {
	admin.Handle("/debug/chaos", e.controlHandler())
}

func (e *chaosExperiment) logPlan(msg string, c chaosConfig) {
	attrs := []any{"experiment", c.Experiment, "delay_seconds", c.DelaySeconds,
		"delay_jitter_seconds", c.JitterSeconds, "commands", strings.Join(c.Commands, ","),
		"error_every", c.ErrorEvery, "error_rate", c.ErrorRate, "seed", c.Seed,
		"layer", c.Layer, "error_reply", c.ErrorReply}
	e.logger.Warn(msg, append(attrs, c.logAttrs()...)...)
}

// use makes c the running experiment, in one step.
func (e *chaosExperiment) use(c chaosConfig) {
	plan := newChaosPlan(c)
	e.swap.Lock()
	defer e.swap.Unlock()
	old := e.active.Load()
	plan.succeeded(old, time.Now())
	e.started(plan, old)
	e.active.Store(plan)
	e.logPlan("chaos experiment replaced", c)
}

// chaosReadHook counts the reads of a session's interests and fails some in
// the error experiment, before they reach Redis.
type chaosReadHook struct{ e *chaosExperiment }

var _ redis.Hook = (*chaosReadHook)(nil)

func (h *chaosReadHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *chaosReadHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !isInterestRead(cmd) {
			return next(ctx, cmd)
		}
		h.e.interestReads.Add(1)
		if plan := h.e.active.Load(); !plan.connLayer && plan.reaches(cmd) && plan.failRead() {
			h.e.errorsInjected.Add(1)
			noteError(ctx)
			return plan.commandLayerError()
		}
		err := next(ctx, cmd)
		noteRead(ctx, err)
		return err
	}
}

func (h *chaosReadHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// chaosRoundTripHook counts every command and pipeline sent to Redis and, in
// the latency experiment at the command layer, delays the ones it targets.
type chaosRoundTripHook struct{ e *chaosExperiment }

var _ redis.Hook = (*chaosRoundTripHook)(nil)

// DialHook wraps the connections of every node for the connection layer.
func (h *chaosRoundTripHook) DialHook(next redis.DialHook) redis.DialHook { return h.e.dialHook(next) }

func (h *chaosRoundTripHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if err := h.e.roundTrip(ctx, cmd); err != nil {
			return err
		}
		return next(ctx, cmd)
	}
}

func (h *chaosRoundTripHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		// A pipeline is one round trip, delayed if any of its commands is targeted.
		if err := h.e.roundTrip(ctx, cmds...); err != nil {
			return err
		}
		return next(ctx, cmds)
	}
}

// roundTrip counts a trip to Redis and, if the latency experiment targets
// any of its commands, delays it. The delay ends early with the context's
// error.
func (e *chaosExperiment) roundTrip(ctx context.Context, cmds ...redis.Cmder) error {
	e.roundTrips.Add(1)
	plan := e.active.Load()
	if plan.connLayer || !slices.ContainsFunc(cmds, plan.delays) {
		return nil
	}
	d := plan.nextDelay()
	if d == 0 {
		return nil
	}
	e.delaysInjected.Add(1)
	noteDelay(ctx)
	start := time.Now()
	err := sleepUntil(ctx, start.Add(d))
	e.delayedNanos.Add(int64(time.Since(start)))
	return err
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

// isInterestRead reports whether cmd is the store's read of a session's
// interests.
func isInterestRead(cmd redis.Cmder) bool {
	args := cmd.Args()
	if cmd.Name() != "get" || len(args) != 2 {
		return false
	}
	key, _ := args[1].(string)
	return strings.HasPrefix(key, sessionKeyPrefix)
}

// chaosError is the injected failure. It is a redis.Error, so everything
// downstream handles it as an error reply from Redis.
type chaosError struct{}

func (chaosError) Error() string { return "CHAOS" }
func (chaosError) RedisError()   {}
