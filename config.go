package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
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
	adminAddr    string                // "" disables the admin listener, and with it the metrics
	redisOptions *redis.Options        // one Redis server; nil with redisCluster nil: start the embedded Redis
	redisCluster *redis.ClusterOptions // a Redis Cluster, from a URL that names nodes with addr=
	redisTimeout time.Duration
	sessionTTL   time.Duration
	maxConns     int
	adminConns   int // the admin listener's cap, apart from maxConns
	cookieSecure bool
	logFormat    string
	breaker      breakerSettings
	// recommenderEndpoint is RECOMMENDER_URL's POST /recommendations; ""
	// keeps the built-in recommendation (recommender.go).
	recommenderEndpoint string
	recommenderTimeout  time.Duration
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
	adminAddr := fs.String("admin-addr", envOr("ADMIN_ADDR", defaultAdminAddr), "`host:port` of the admin listener (/metrics, /debug/pprof/, and /debug/chaos in the chaos build); off or empty disables it and the metrics (env ADMIN_ADDR; an empty variable counts as unset, so write off)")
	redisURL := fs.String("redis-url", envOr("REDIS_URL", ""), "Redis `URL`: redis:// or rediss:// for one server, with ?addr=host:port&addr=… for a cluster; empty starts an embedded in-memory Redis (env REDIS_URL)")
	redisTimeout := fs.String("redis-timeout", envOr("REDIS_TIMEOUT", "2s"), "bound on each Redis operation, a Go `duration` (env REDIS_TIMEOUT)")
	sessionTTL := fs.String("session-ttl", envOr("SESSION_TTL", "24h"), "how long a session's interests are kept after its last search, a Go `duration` (env SESSION_TTL)")
	maxConns := fs.String("max-conns", envOr("MAX_CONNS", "256"), "most client `connections` held at once; more wait in the kernel's queue, and idle ones are closed to make room (env MAX_CONNS)")
	adminConns := fs.String("admin-max-conns", envOr("ADMIN_MAX_CONNS", "16"), "most `connections` the admin listener holds at once, apart from the shop's; more wait in the kernel's queue, and idle ones are closed to make room (env ADMIN_MAX_CONNS)")
	cookieSecure := fs.String("cookie-secure", envOr("COOKIE_SECURE", "false"), "mark the session cookie Secure (HTTPS only): `true or false` (env COOKIE_SECURE)")
	logFormat := fs.String("log-format", envOr("LOG_FORMAT", "text"), "log format: `text or json` (env LOG_FORMAT)")
	breakerFailures := fs.String("breaker-failures", envOr("BREAKER_FAILURES", "5"), "consecutive failed Redis operations that open the circuit breaker, a whole `number` (env BREAKER_FAILURES)")
	breakerCooldown := fs.String("breaker-cooldown", envOr("BREAKER_COOLDOWN", "500ms"), "how long an open circuit breaker serves pages without Redis before a canary probes it, a Go `duration` (env BREAKER_COOLDOWN)")
	recommenderURL := fs.String("recommender-url", envOr("RECOMMENDER_URL", ""), "recommender `URL`, http:// or https://host:port[/path]: /search asks its /recommendations; empty recommends from the built-in answer (env RECOMMENDER_URL)")
	recommenderTimeout := fs.String("recommender-timeout", envOr("RECOMMENDER_TIMEOUT", "500ms"), "bound on each call to the recommender, a Go `duration` (env RECOMMENDER_TIMEOUT)")

	// -h shows each flag's default, which for -redis-url is REDIS_URL.
	fs.Lookup("redis-url").DefValue = redactURL(*redisURL)
	fs.Lookup("recommender-url").DefValue = redactURL(*recommenderURL)
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

	cfg := config{addr: *addr, adminAddr: *adminAddr, logFormat: *logFormat}
	if cfg.adminAddr == "off" {
		cfg.adminAddr = ""
	}
	if host, port, err := net.SplitHostPort(*addr); err != nil || !validPort(port) || !validListenHost(host) {
		return config{}, invalid("addr", "ADDR", *addr, "host:port such as 127.0.0.1:5000 or :8080, the host an IP address or a DNS name")
	}
	if cfg.adminAddr != "" {
		host, port, err := net.SplitHostPort(cfg.adminAddr)
		if err != nil || !validPort(port) || !validListenHost(host) {
			return config{}, invalid("admin-addr", "ADMIN_ADDR", *adminAddr, "host:port such as "+defaultAdminAddr+", the host an IP address or a DNS name, or off to disable the admin listener")
		}
		if cfg.adminAddr == cfg.addr && port != "0" {
			return config{}, invalid("admin-addr", "ADMIN_ADDR", *adminAddr, "an address other than the shop's (-addr): the admin listener must not share it")
		}
	}
	if *redisURL != "" {
		var want string
		if cfg.redisOptions, cfg.redisCluster, want = parseRedisURL(*redisURL); want != "" {
			return config{}, invalid("redis-url", "REDIS_URL", redactURL(*redisURL), want)
		}
	}
	var err error
	if cfg.redisTimeout, err = time.ParseDuration(*redisTimeout); err != nil || cfg.redisTimeout < time.Millisecond || cfg.redisTimeout > time.Minute {
		return config{}, invalid("redis-timeout", "REDIS_TIMEOUT", *redisTimeout, "a duration from 1ms to 1m, such as 2s or 500ms")
	}
	if cfg.sessionTTL, err = time.ParseDuration(*sessionTTL); err != nil || cfg.sessionTTL < time.Second || cfg.sessionTTL > 10*365*24*time.Hour {
		return config{}, invalid("session-ttl", "SESSION_TTL", *sessionTTL, "a duration from 1s to 87600h, such as 24h")
	}
	if cfg.maxConns, err = strconv.Atoi(*maxConns); err != nil || cfg.maxConns < 1 || cfg.maxConns > 65536 {
		return config{}, invalid("max-conns", "MAX_CONNS", *maxConns, "a whole number from 1 to 65536, such as 256")
	}
	// The admin listener's few clients (a scraper, an operator, a profiler)
	// need few connections; its own cap keeps it from taking the file
	// descriptors the shop's listener needs.
	if cfg.adminConns, err = strconv.Atoi(*adminConns); err != nil || cfg.adminConns < 1 || cfg.adminConns > 1024 {
		return config{}, invalid("admin-max-conns", "ADMIN_MAX_CONNS", *adminConns, "a whole number from 1 to 1024, such as 16")
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
	if *recommenderURL != "" {
		var want string
		if cfg.recommenderEndpoint, want = parseRecommenderURL(*recommenderURL); want != "" {
			return config{}, invalid("recommender-url", "RECOMMENDER_URL", redactURL(*recommenderURL), want)
		}
	}
	if cfg.recommenderTimeout, err = time.ParseDuration(*recommenderTimeout); err != nil || cfg.recommenderTimeout < time.Millisecond || cfg.recommenderTimeout > time.Minute {
		return config{}, invalid("recommender-timeout", "RECOMMENDER_TIMEOUT", *recommenderTimeout, "a duration from 1ms to 1m, such as 500ms")
	}
	return cfg, nil
}

// defaultAdminAddr keeps the admin listener on this machine unless told
// otherwise; 6060 is where Go programs customarily serve pprof.
const defaultAdminAddr = "127.0.0.1:6060"

// validListenHost reports whether host can name an address to listen on:
// empty (every interface), an IP address, or a DNS name. A name whose last
// label is all digits, such as 999.1.1.1, is neither an IP address nor a name
// (RFC 3696, section 2).
func validListenHost(host string) bool {
	if host == "" {
		return true
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	host = strings.TrimSuffix(host, ".")
	if len(host) > 253 {
		return false
	}
	labels := strings.Split(host, ".")
	for _, label := range labels {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' ||
			strings.IndexFunc(label, func(r rune) bool {
				return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-')
			}) >= 0 {
			return false
		}
	}
	return strings.Trim(labels[len(labels)-1], "0123456789") != ""
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && n <= 65535
}

func newLogger(format string, w io.Writer) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}
