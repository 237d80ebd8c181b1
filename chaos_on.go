//go:build chaos

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Everything that injects faults lives in this file, built only with
// -tags chaos. chaos_off.go declares the same identifiers, empty.

const chaosBuild = true

// The environment variables that pick and tune the experiment.
const (
	chaosEnv           = "CHAOS"
	chaosDelayEnv      = "CHAOS_DELAY_SECONDS"
	chaosErrorEveryEnv = "CHAOS_ERROR_EVERY"
)

const chaosChoices = "latency, error or latency,error (unset or empty: no experiment)"

type chaosConfig struct {
	latency    bool
	failReads  bool
	delay      time.Duration
	errorEvery int64
}

func (c chaosConfig) name() string {
	switch {
	case c.latency && c.failReads:
		return "latency,error"
	case c.latency:
		return "latency"
	case c.failReads:
		return "error"
	}
	return "none"
}

func parseChaosConfig(getenv func(string) string) (chaosConfig, error) {
	cfg := chaosConfig{delay: 750 * time.Millisecond, errorEvery: 2}
	invalid := func(env, value, want string) error {
		return usageError(fmt.Sprintf("invalid %s %q: %s", env, value, want))
	}
	if raw := getenv(chaosEnv); strings.TrimSpace(raw) != "" {
		for part := range strings.SplitSeq(raw, ",") {
			switch strings.ToLower(strings.TrimSpace(part)) {
			case "latency":
				cfg.latency = true
			case "error":
				cfg.failReads = true
			case "true", "1", "yes", "on":
				return chaosConfig{}, invalid(chaosEnv, raw, "ambiguous, it does not say which experiment; want "+chaosChoices)
			default:
				return chaosConfig{}, invalid(chaosEnv, raw, "want "+chaosChoices)
			}
		}
	}
	if raw := getenv(chaosDelayEnv); raw != "" {
		seconds, err := strconv.ParseFloat(raw, 64)
		if err != nil || math.IsNaN(seconds) || seconds < 0 || seconds > 60 {
			return chaosConfig{}, invalid(chaosDelayEnv, raw, "want seconds from 0 to 60, such as 0.75")
		}
		cfg.delay = time.Duration(math.Round(seconds * float64(time.Second)))
	}
	if raw := getenv(chaosErrorEveryEnv); raw != "" {
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || n < 1 {
			return chaosConfig{}, invalid(chaosErrorEveryEnv, raw, "want a whole number from 1 up, such as 2 (every 2nd read fails)")
		}
		cfg.errorEvery = n
	}
	return cfg, nil
}

// chaosExperiment is the running experiment and what it has done so far.
type chaosExperiment struct {
	config         chaosConfig
	since          time.Time
	roundTrips     atomic.Int64
	interestReads  atomic.Int64
	delaysInjected atomic.Int64
	errorsInjected atomic.Int64
}

// newChaosExperiment reads the experiment the environment asks for.
func newChaosExperiment(getenv func(string) string) (*chaosExperiment, error) {
	cfg, err := parseChaosConfig(getenv)
	if err != nil {
		return nil, err
	}
	return &chaosExperiment{config: cfg}, nil
}

// attach starts the experiment: it hooks the Redis client and serves
// GET /debug/chaos in front of next.
func (e *chaosExperiment) attach(logger *slog.Logger, rdb redis.UniversalClient, next http.Handler) http.Handler {
	e.since = time.Now()
	logger.Warn("CHAOS BUILD: fault injection is compiled in; never run this binary in production",
		"experiment", e.config.name(), "delay_seconds", e.config.delay.Seconds(), "error_every", e.config.errorEvery)
	if e.config.latency || e.config.failReads {
		// Reads are counted, and failed, once per command as the store issues
		// it: on a cluster a redirected read is still one read.
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
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/chaos", e.serveStatus)
	mux.Handle("/", next)
	return mux
}

// chaosReadHook counts the reads of a session's interests and fails every
// Nth one in the error experiment, before it reaches Redis.
type chaosReadHook struct{ e *chaosExperiment }

var _ redis.Hook = (*chaosReadHook)(nil)

func (h *chaosReadHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *chaosReadHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if isInterestRead(cmd) && h.e.failThisRead() {
			return chaosError{}
		}
		return next(ctx, cmd)
	}
}

func (h *chaosReadHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// chaosRoundTripHook counts every command and pipeline sent to Redis and, in
// the latency experiment, delays it.
type chaosRoundTripHook struct{ e *chaosExperiment }

var _ redis.Hook = (*chaosRoundTripHook)(nil)

func (h *chaosRoundTripHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *chaosRoundTripHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if err := h.e.roundTrip(ctx); err != nil {
			return err
		}
		return next(ctx, cmd)
	}
}

func (h *chaosRoundTripHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if err := h.e.roundTrip(ctx); err != nil {
			return err
		}
		return next(ctx, cmds)
	}
}

// roundTrip counts a trip to Redis and, in the latency experiment, delays it.
// The delay ends early with the context's error.
func (e *chaosExperiment) roundTrip(ctx context.Context) error {
	e.roundTrips.Add(1)
	if !e.config.latency || e.config.delay == 0 {
		return nil
	}
	e.delaysInjected.Add(1)
	return sleepUntil(ctx, time.Now().Add(e.config.delay))
}

// timerSlack is how late a Go timer may fire: the runtime's poller sleeps in
// whole milliseconds, so a 100 ms timer ends 0.4 ms late on average, which
// would overstate a two-delay request by 0.4 %.
const timerSlack = time.Millisecond

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

// failThisRead counts a read of a session's interests and says whether the
// error experiment fails it: reads N, 2N, 3N… across the whole process.
func (e *chaosExperiment) failThisRead() bool {
	n := e.interestReads.Add(1)
	if !e.config.failReads || n%e.config.errorEvery != 0 {
		return false
	}
	e.errorsInjected.Add(1)
	return true
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

type chaosStatus struct {
	Build        string        `json:"build"`
	Warning      string        `json:"warning"`
	Experiment   string        `json:"experiment"`
	DelaySeconds float64       `json:"delay_seconds"`
	ErrorEvery   int64         `json:"error_every"`
	Since        time.Time     `json:"since"`
	Counters     chaosCounters `json:"counters"`
}

type chaosCounters struct {
	RedisRoundTrips int64 `json:"redis_round_trips"`
	InterestReads   int64 `json:"interest_reads"`
	DelaysInjected  int64 `json:"delays_injected"`
	ErrorsInjected  int64 `json:"errors_injected"`
}

func (e *chaosExperiment) serveStatus(w http.ResponseWriter, r *http.Request) {
	status := chaosStatus{
		Build:        "chaos",
		Warning:      "fault-injection build: not for production",
		Experiment:   e.config.name(),
		DelaySeconds: e.config.delay.Seconds(),
		ErrorEvery:   e.config.errorEvery,
		Since:        e.since,
		Counters: chaosCounters{
			RedisRoundTrips: e.roundTrips.Load(),
			InterestReads:   e.interestReads.Load(),
			DelaysInjected:  e.delaysInjected.Load(),
			ErrorsInjected:  e.errorsInjected.Load(),
		},
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(status)
}
