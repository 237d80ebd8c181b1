package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// usageError is a configuration mistake; main exits with status 2 on it, as the
// flag package does.
type usageError string

func (e usageError) Error() string { return string(e) }

// errHelpShown reports that -h printed the usage and the program should stop.
var errHelpShown = errors.New("help shown")

type config struct {
	addr         string
	redisOptions *redis.Options        // one Redis server; nil with redisCluster nil: start the embedded Redis
	redisCluster *redis.ClusterOptions // a Redis Cluster, from a URL that names nodes with addr=
	redisTimeout time.Duration
	sessionTTL   time.Duration
	cookieSecure bool
	logFormat    string
	breaker      breakerSettings
}

// parseConfig reads flags, falling back to environment variables, then to
// defaults. Every invalid value is a usageError naming the setting, the value
// and what is allowed.
func parseConfig(args []string, getenv func(string) string, stdout io.Writer) (config, error) {
	fs := flag.NewFlagSet("shopsession", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	envOr := func(env, def string) string {
		if v := getenv(env); v != "" {
			return v
		}
		return def
	}
	addr := fs.String("addr", envOr("ADDR", "127.0.0.1:5000"), "`host:port` to listen on (env ADDR)")
	redisURL := fs.String("redis-url", envOr("REDIS_URL", ""), "Redis `URL`: redis:// or rediss:// for one server, with ?addr=host:port&addr=… for a cluster; empty starts an embedded in-memory Redis (env REDIS_URL)")
	redisTimeout := fs.String("redis-timeout", envOr("REDIS_TIMEOUT", "2s"), "bound on each Redis operation, a Go `duration` (env REDIS_TIMEOUT)")
	sessionTTL := fs.String("session-ttl", envOr("SESSION_TTL", "720h"), "how long a session's interests are kept after its last search, a Go `duration` (env SESSION_TTL)")
	cookieSecure := fs.String("cookie-secure", envOr("COOKIE_SECURE", "false"), "mark the session cookie Secure (HTTPS only): `true or false` (env COOKIE_SECURE)")
	logFormat := fs.String("log-format", envOr("LOG_FORMAT", "text"), "log format: `text or json` (env LOG_FORMAT)")
	breakerFailures := fs.String("breaker-failures", envOr("BREAKER_FAILURES", "5"), "consecutive failed Redis operations that open the circuit breaker, a whole `number` (env BREAKER_FAILURES)")
	breakerCooldown := fs.String("breaker-cooldown", envOr("BREAKER_COOLDOWN", "500ms"), "how long the open circuit breaker serves pages without Redis before one request probes it, a Go `duration` (env BREAKER_COOLDOWN)")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, "Usage: shopsession [flags]\nEach flag falls back to the environment variable named in its help, then to its default.")
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return config{}, errHelpShown
		}
		return config{}, usageError(err.Error() + " (see -h)")
	}
	if fs.NArg() > 0 {
		return config{}, usageError(fmt.Sprintf("unexpected argument %q: shopsession takes only flags (see -h)", fs.Arg(0)))
	}
	fromFlag := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { fromFlag[f.Name] = true })
	invalid := func(flagName, env, value, want string) error {
		name := env
		if fromFlag[flagName] {
			name = "-" + flagName
		}
		return usageError(fmt.Sprintf("invalid %s %q: want %s", name, value, want))
	}

	cfg := config{addr: *addr, logFormat: *logFormat}
	if _, port, err := net.SplitHostPort(*addr); err != nil || !validPort(port) {
		return config{}, invalid("addr", "ADDR", *addr, "host:port such as 127.0.0.1:5000 or :8080")
	}
	if *redisURL != "" {
		var err error
		if isClusterURL(*redisURL) {
			cfg.redisCluster, err = redis.ParseClusterURL(*redisURL)
		} else {
			cfg.redisOptions, err = redis.ParseURL(*redisURL)
		}
		if err != nil {
			return config{}, invalid("redis-url", "REDIS_URL", redacted(*redisURL),
				fmt.Sprintf("redis://[user:password@]host:port[/db], rediss://… for TLS, or redis://host1:port1?addr=host2:port2&addr=host3:port3 for a cluster (%v)", err))
		}
	}
	var err error
	if cfg.redisTimeout, err = time.ParseDuration(*redisTimeout); err != nil || cfg.redisTimeout < time.Millisecond || cfg.redisTimeout > time.Minute {
		return config{}, invalid("redis-timeout", "REDIS_TIMEOUT", *redisTimeout, "a duration from 1ms to 1m, such as 2s or 500ms")
	}
	if cfg.sessionTTL, err = time.ParseDuration(*sessionTTL); err != nil || cfg.sessionTTL < time.Second || cfg.sessionTTL > 10*365*24*time.Hour {
		return config{}, invalid("session-ttl", "SESSION_TTL", *sessionTTL, "a duration from 1s to 87600h, such as 720h")
	}
	if cfg.cookieSecure, err = strconv.ParseBool(*cookieSecure); err != nil {
		return config{}, invalid("cookie-secure", "COOKIE_SECURE", *cookieSecure, "true or false")
	}
	if cfg.logFormat != "text" && cfg.logFormat != "json" {
		return config{}, invalid("log-format", "LOG_FORMAT", cfg.logFormat, "text or json")
	}
	// Below 3, experiment 2 (every other read failing) can open the breaker:
	// with 2, 32 clients under the race detector did in 1 run of 6, when a
	// failed read was descheduled long enough for the good read after it to
	// finish first. With 3, none did in 80 runs.
	failures, err := strconv.ParseUint(*breakerFailures, 10, 32)
	if err != nil || failures < 3 || failures > 1000 {
		return config{}, invalid("breaker-failures", "BREAKER_FAILURES", *breakerFailures, "a whole number from 3 to 1000, such as 5")
	}
	cfg.breaker.failures = uint32(failures)
	if cfg.breaker.cooldown, err = time.ParseDuration(*breakerCooldown); err != nil || cfg.breaker.cooldown < 10*time.Millisecond || cfg.breaker.cooldown > 10*time.Minute {
		return config{}, invalid("breaker-cooldown", "BREAKER_COOLDOWN", *breakerCooldown, "a duration from 10ms to 10m, such as 500ms or 2s")
	}
	return cfg, nil
}

// isClusterURL reports whether a Redis URL names cluster nodes with addr=,
// go-redis's cluster URL syntax. go-redis parses either kind; this only picks
// the parser.
func isClusterURL(rawURL string) bool {
	u, err := url.Parse(rawURL)
	return err == nil && u.Query().Has("addr")
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && n <= 65535
}

// redacted hides a password in a Redis URL before it is echoed in an error.
func redacted(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

func newLogger(format string, w io.Writer) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}
