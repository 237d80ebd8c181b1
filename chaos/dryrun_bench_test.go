package chaos

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
)

// BenchmarkHooksDecidingEachCommand measures the command layer's hooks
// while a real experiment decides on every command and injects nothing: a
// read failing every 2^62nd time. (It also had a latency of a command not
// sent; since the commands list chooses the failure's commands too, a list
// that names the GET for the failure would delay it.) It is
// the path on which a dry run's checks are read: beside
// BenchmarkHooksWithNoExperiment it shows what deciding costs, and run
// before and after the checks, what they do.
func BenchmarkHooksDecidingEachCommand(b *testing.B) {
	cfg, err := FromJSON([]byte(`{"experiment":"error","commands":["get"],"error_every":4611686018427387904}`))
	if err != nil {
		b.Fatal(err)
	}
	e := testExperiment(b, nil, Options{})
	e.Use(cfg)
	noop := func(context.Context, redis.Cmder) error { return nil }
	process := readHook{e}.ProcessHook(roundTripHook{e}.ProcessHook(noop))
	ctx := context.Background()
	cmd := redis.NewStringCmd(ctx, "get", "session:bench")
	for b.Loop() {
		process(ctx, cmd)
	}
}
