package chaos

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"

	"example.com/shopsession/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// testRedis is a real redis-server shared by the package's tests.
var testRedis *redistest.Server

func TestMain(m *testing.M) {
	var err error
	if testRedis, err = redistest.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
	code := m.Run()
	testRedis.Stop()
	os.Exit(code)
}

// mapGetenv reads a test's environment from env.
func mapGetenv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

// testToken is the control token of the tests' experiments, unless a test
// gives its own: none writes a token file.
const testToken = "test-control-token-0123456789abcdef"

// testExperiment is the experiment env asks for, with opts, logging nowhere.
func testExperiment(t testing.TB, env map[string]string, opts Options) *Experiment {
	t.Helper()
	cfg, err := FromEnv(mapGetenv(env))
	if err != nil {
		t.Fatal(err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Token == "" {
		opts.Token = testToken
	}
	e, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// testClient is a go-redis client of the shared redis-server (or of
// opts.Addr) with e instrumented, and opts' other settings.
func testClient(t testing.TB, e *Experiment, opts redis.Options) *redis.Client {
	t.Helper()
	if opts.Addr == "" {
		opts.Addr = testRedis.Addr()
	}
	opts.Protocol, opts.DisableIdentity = 2, true
	rdb := redis.NewClient(&opts)
	t.Cleanup(func() { rdb.Close() })
	e.Instrument(rdb)
	return rdb
}
