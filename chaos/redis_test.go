package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestErrorRateIsSeeded fails reads at a rate of 0.3 with a fixed seed, from
// eight goroutines: the count is exactly the seeded sequence's.
func TestErrorRateIsSeeded(t *testing.T) {
	const reads, rate, seed = 10000, 0.3, 42
	e := testExperiment(t, map[string]string{"CHAOS": "error", "CHAOS_ERROR_RATE": "0.3", "CHAOS_SEED": "42"}, Options{})
	rdb := testClient(t, e, redis.Options{})
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 8 {
		wg.Go(func() {
			for range reads / 8 {
				switch err := rdb.Get(t.Context(), "chaos-test:seeded").Err(); {
				case errors.As(err, new(Error)):
					failed.Add(1)
				case err != redis.Nil:
					t.Errorf("GET: %v", err)
				}
			}
		})
	}
	wg.Wait()
	draws := rand.New(rand.NewPCG(seed, 1))
	want := 0
	for range reads {
		if draws.Float64() < rate {
			want++
		}
	}
	c := e.Status("").Counters
	if failed.Load() != int64(want) || c.ErrorsInjected != int64(want) || c.Reads != reads {
		t.Errorf("%d of %d reads failed (%d counted of %d reads), want the seeded %d", failed.Load(), reads, c.ErrorsInjected, c.Reads, want)
	}
	t.Logf("%d of %d reads failed at rate %.1f, seed %d", want, reads, rate, seed)
}

func TestJitterStaysInBounds(t *testing.T) {
	for _, tc := range []struct{ delay, jitter, low, high float64 }{
		{0.1, 0.03, 0.07, 0.13},
		{0.01, 0.05, 0, 0.06}, // more jitter than delay: never below zero
	} {
		l := newLatency(Config{Experiment: "latency", DelaySeconds: tc.delay, JitterSeconds: tc.jitter, ErrorEvery: 2, Seed: 3, Layer: LayerCommand})
		lowest, highest := time.Hour, time.Duration(0)
		for range 10000 {
			d := l.next()
			lowest, highest = min(lowest, d), max(highest, d)
		}
		low, high := time.Duration(tc.low*float64(time.Second)), time.Duration(tc.high*float64(time.Second))
		if lowest < low || highest > high {
			t.Errorf("delay %v ± %v: draws from %v to %v, outside [%v, %v]", tc.delay, tc.jitter, lowest, highest, low, high)
		}
		// The draws must also use the range, or the jitter is not applied.
		if lowest > low+time.Millisecond || highest < high-time.Millisecond {
			t.Errorf("delay %v ± %v: draws from %v to %v do not reach near [%v, %v]", tc.delay, tc.jitter, lowest, highest, low, high)
		}
	}
}

// TestErrorFailsEveryNthRead: the command layer fails every Nth read with
// the CHAOS error before it reaches Redis; what is not a read (the Reads
// option) is neither failed nor counted as one.
func TestErrorFailsEveryNthRead(t *testing.T) {
	e := testExperiment(t, map[string]string{"CHAOS": "error", "CHAOS_ERROR_EVERY": "3"}, Options{
		Reads: func(c Command) bool { return c.Name == "get" && c.Key == "chaos-test:read" },
	})
	rdb := testClient(t, e, redis.Options{})
	ctx := t.Context()
	if err := rdb.Set(ctx, "chaos-test:read", "v", time.Minute).Err(); err != nil { // and opens the connection
		t.Fatal(err)
	}
	before := e.Status("").Counters
	for i := 1; i <= 9; i++ {
		err := rdb.Get(ctx, "chaos-test:read").Err()
		if fails := i%3 == 0; fails != (err != nil) || fails && (!errors.As(err, new(Error)) || err.Error() != "CHAOS") {
			t.Errorf("read %d: %v, want the CHAOS error only on every 3rd", i, err)
		}
		if err := rdb.Get(ctx, "chaos-test:other").Err(); err != redis.Nil {
			t.Errorf("a GET that is not a read: %v", err)
		}
	}
	if c := e.Status("").Counters; c.Reads != 9 || c.ErrorsInjected != 3 || c.RedisRoundTrips-before.RedisRoundTrips != 6+9 {
		t.Errorf("counters = %+v, from %+v; want 9 reads, 3 errors, 15 round trips (the failed reads never left)", c, before)
	}
}

// TestErrorReplyAtTheCommandLayer: with an error reply chosen, a failed read
// gets that reply's text as a Redis error, and is still never retried.
func TestErrorReplyAtTheCommandLayer(t *testing.T) {
	e := testExperiment(t, map[string]string{"CHAOS": "error", "CHAOS_ERROR_EVERY": "1", "CHAOS_ERROR_REPLY": "loading"}, Options{})
	rdb := testClient(t, e, redis.Options{MaxRetries: 3})
	err := rdb.Get(t.Context(), "chaos-test:reply").Err()
	var redisErr redis.Error
	if !errors.As(err, &redisErr) || err.Error() != "LOADING Redis is loading the dataset in memory" {
		t.Errorf("GET = %v, want the LOADING reply as a redis.Error", err)
	}
	if c := e.Status("").Counters; c.ErrorsInjected != 1 || c.RedisRoundTrips != 0 {
		t.Errorf("counters = %+v, want one error injected and no round trip", c)
	}
}

// TestLatencyDelaysTargetedRoundTrips: a command the latency targets waits
// the delay before it takes a connection; one that it does not goes through
// at once; a pipeline is one round trip, delayed once if any of its commands
// is targeted.
func TestLatencyDelaysTargetedRoundTrips(t *testing.T) {
	const delay = 20 * time.Millisecond
	e := testExperiment(t, map[string]string{"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "0.02", "CHAOS_COMMANDS": "get"}, Options{})
	rdb := testClient(t, e, redis.Options{})
	ctx := t.Context()
	// Opens a connection of the pool and one of go-redis's pipeline pool:
	// each sends HELLO, which is a round trip too.
	if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error { return p.Ping(ctx).Err() }); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		run    func() error
		delays int64
	}{
		{"GET", func() error { return ignoreNil(rdb.Get(ctx, "chaos-test:latency").Err()) }, 1},
		{"SET", func() error { return rdb.Set(ctx, "chaos-test:latency", "v", time.Minute).Err() }, 0},
		{"a pipeline of SET and GET", func() error {
			_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, "chaos-test:latency", "v", time.Minute)
				p.Get(ctx, "chaos-test:latency")
				return nil
			})
			return err
		}, 1},
	} {
		before := e.Status("").Counters
		start := time.Now()
		if err := tc.run(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		took := time.Since(start)
		after := e.Status("").Counters
		trips, delays := after.RedisRoundTrips-before.RedisRoundTrips, after.DelaysInjected-before.DelaysInjected
		if trips != 1 || delays != tc.delays {
			t.Errorf("%s: %d round trips and %d delays, want 1 and %d", tc.name, trips, delays, tc.delays)
		}
		waited := time.Duration((after.DelaySecondsInjected - before.DelaySecondsInjected) * float64(time.Second))
		if tc.delays == 1 && (took < delay || waited < delay || waited > took) {
			t.Errorf("%s took %v and counted %v waited, want at least the %v delay, and no more waited than it took", tc.name, took, waited, delay)
		}
		if tc.delays == 0 && waited != 0 {
			t.Errorf("%s counted %v waited, want none", tc.name, waited)
		}
	}
}

// TestLatencyEndsWithTheContext: a delay ends with its command's context,
// with the context's error, and counts the time it waited.
func TestLatencyEndsWithTheContext(t *testing.T) {
	e := testExperiment(t, map[string]string{"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "30"}, Options{})
	rdb := testClient(t, e, redis.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := rdb.Get(ctx, "chaos-test:slow").Err()
	// Loose on purpose: the bound only shows the 30 s wait did not run out.
	if elapsed := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || elapsed > 10*time.Second {
		t.Errorf("GET = %v after %v, want the context's deadline after 100ms", err, elapsed)
	}
	if c := e.Status("").Counters; c.DelaysInjected != 1 || c.DelaySecondsInjected < 0.1 || c.DelaySecondsInjected > 5 {
		t.Errorf("counters = %+v, want one delay that waited about 0.1 s", c)
	}
}

// TestLatencyAndErrorCombined: a read that fails never waits, since it
// never makes its round trip; the others wait.
func TestLatencyAndErrorCombined(t *testing.T) {
	e := testExperiment(t, map[string]string{"CHAOS": "latency,error", "CHAOS_DELAY_SECONDS": "0.001"}, Options{})
	rdb := testClient(t, e, redis.Options{})
	if err := rdb.Ping(t.Context()).Err(); err != nil { // opens the connection
		t.Fatal(err)
	}
	before := e.Status("").Counters
	for i := 1; i <= 4; i++ {
		if err := rdb.Get(t.Context(), fmt.Sprint("chaos-test:both-", i)).Err(); (i%2 == 0) != errors.As(err, new(Error)) {
			t.Errorf("read %d: %v", i, err)
		}
	}
	c := e.Status("").Counters
	if c.ErrorsInjected != 2 || c.RedisRoundTrips-before.RedisRoundTrips != 2 || c.DelaysInjected-before.DelaysInjected != 2 {
		t.Errorf("counters = %+v, from %+v; want 2 errors, 2 round trips, 2 delays", c, before)
	}
}

// TestReplacedExperimentReachesTheHooks: Use changes what the next command
// gets, and Stop ends it, with no new client.
func TestReplacedExperimentReachesTheHooks(t *testing.T) {
	e := testExperiment(t, nil, Options{})
	rdb := testClient(t, e, redis.Options{})
	get := func() error { return ignoreNil(rdb.Get(t.Context(), "chaos-test:replaced").Err()) }
	if err := get(); err != nil {
		t.Fatalf("with no experiment: %v", err)
	}
	cfg, err := FromJSON([]byte(`{"experiment":"error","error_every":1}`))
	if err != nil {
		t.Fatal(err)
	}
	e.Use(cfg)
	if err := get(); !errors.As(err, new(Error)) {
		t.Errorf("after Use: %v, want the CHAOS error", err)
	}
	e.Stop()
	if err := get(); err != nil {
		t.Errorf("after Stop: %v", err)
	}
	if c := e.Config(); c.Experiment != "none" {
		t.Errorf("after Stop the experiment is %+v", c)
	}
}

func ignoreNil(err error) error {
	if err == redis.Nil {
		return nil
	}
	return err
}

// BenchmarkHooksWithNoExperiment measures what the command layer's hooks
// cost a Redis command while no experiment runs: the price of carrying them.
func BenchmarkHooksWithNoExperiment(b *testing.B) {
	e := testExperiment(b, nil, Options{})
	noop := func(context.Context, redis.Cmder) error { return nil }
	process := readHook{e}.ProcessHook(roundTripHook{e}.ProcessHook(noop))
	ctx := context.Background()
	cmd := redis.NewStringCmd(ctx, "get", "session:bench")
	for b.Loop() {
		if err := process(ctx, cmd); err != nil {
			b.Fatal(err)
		}
	}
}
