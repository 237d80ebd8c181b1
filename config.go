package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/netip"
	"net/url"
	"slices"
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
	adminAddr := fs.String("admin-addr", envOr("ADMIN_ADDR", defaultAdminAddr), "`host:port` of the admin listener (/metrics, /debug/pprof/, and /debug/chaos in the chaos build); off or empty disables it and the metrics (env ADMIN_ADDR; an empty variable counts as unset, so write off)")
	redisURL := fs.String("redis-url", envOr("REDIS_URL", ""), "Redis `URL`: redis:// or rediss:// for one server, with ?addr=host:port&addr=… for a cluster; empty starts an embedded in-memory Redis (env REDIS_URL)")
	redisTimeout := fs.String("redis-timeout", envOr("REDIS_TIMEOUT", "2s"), "bound on each Redis operation, a Go `duration` (env REDIS_TIMEOUT)")
	sessionTTL := fs.String("session-ttl", envOr("SESSION_TTL", "24h"), "how long a session's interests are kept after its last search, a Go `duration` (env SESSION_TTL)")
	maxConns := fs.String("max-conns", envOr("MAX_CONNS", "256"), "most client `connections` held at once; more wait in the kernel's queue, and idle ones are closed to make room (env MAX_CONNS)")
	cookieSecure := fs.String("cookie-secure", envOr("COOKIE_SECURE", "false"), "mark the session cookie Secure (HTTPS only): `true or false` (env COOKIE_SECURE)")
	logFormat := fs.String("log-format", envOr("LOG_FORMAT", "text"), "log format: `text or json` (env LOG_FORMAT)")
	breakerFailures := fs.String("breaker-failures", envOr("BREAKER_FAILURES", "5"), "consecutive failed Redis operations that open the circuit breaker, a whole `number` (env BREAKER_FAILURES)")
	breakerCooldown := fs.String("breaker-cooldown", envOr("BREAKER_COOLDOWN", "500ms"), "how long the open circuit breaker serves pages without Redis before one request probes it, a Go `duration` (env BREAKER_COOLDOWN)")

	// -h shows each flag's default, which for -redis-url is REDIS_URL.
	fs.Lookup("redis-url").DefValue = redactURL(*redisURL)
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
		var err error
		if isClusterURL(*redisURL) {
			cfg.redisCluster, err = redis.ParseClusterURL(*redisURL)
		} else {
			cfg.redisOptions, err = redis.ParseURL(*redisURL)
		}
		if err != nil {
			// net/url's errors quote the whole URL; the reason is inside.
			var urlErr *url.Error
			if errors.As(err, &urlErr) {
				err = urlErr.Err
			}
			return config{}, invalid("redis-url", "REDIS_URL", redactURL(*redisURL),
				fmt.Sprintf("redis://[user:password@]host:port[/db], rediss://… for TLS, or redis://host1:port1?addr=host2:port2&addr=host3:port3 for a cluster (%s)",
					withoutPassword(err.Error(), *redisURL)))
		}
		if want := checkRedisURL(*redisURL); want != "" {
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

// defaultAdminAddr keeps the admin listener on this machine unless told
// otherwise; 6060 is where Go programs customarily serve pprof.
const defaultAdminAddr = "127.0.0.1:6060"

// redisURLOptions are the query parameters go-redis's URL parsers take, each
// with the range this service can run with. go-redis itself accepts any
// number: a negative pool_size panics in NewClient, a huge one allocates
// hundreds of megabytes, a non-positive dial_timeout makes every dial fail.
// Each in-flight request holds at most one Redis connection, so a pool of
// more than 1 000 would fill only with more than 1 000 searches waiting on
// Redis at once, which REDIS_TIMEOUT and the breaker do not let happen.
var redisURLOptions = map[string]struct {
	valid func(string) bool
	want  string
}{
	"db":                         {intIn(0, math.MaxInt32), "a database number from 0"},
	"protocol":                   {intIn(2, 3), "2 or 3"},
	"client_name":                {clientName, "1 to 64 characters of [A-Za-z0-9._:-]"},
	"max_retries":                {intIn(-1, 10), "a whole number from -1 (none) to 10"},
	"min_retry_backoff":          {durationIn(time.Millisecond, 10*time.Second), "a duration from 1ms to 10s"},
	"max_retry_backoff":          {durationIn(time.Millisecond, 10*time.Second), "a duration from 1ms to 10s"},
	"dial_timeout":               {durationIn(time.Millisecond, time.Minute), "a duration from 1ms to 1m"},
	"read_timeout":               {durationIn(time.Millisecond, time.Minute), "a duration from 1ms to 1m"},
	"write_timeout":              {durationIn(time.Millisecond, time.Minute), "a duration from 1ms to 1m"},
	"pool_fifo":                  {boolean, "true or false"},
	"pool_size":                  {intIn(1, 1000), "a whole number from 1 to 1000"},
	"pool_timeout":               {durationIn(time.Millisecond, time.Minute), "a duration from 1ms to 1m"},
	"min_idle_conns":             {intIn(0, 1000), "a whole number from 0 to 1000"},
	"max_idle_conns":             {intIn(0, 1000), "a whole number from 0 to 1000"},
	"max_active_conns":           {intIn(0, 1000), "a whole number from 0 (no limit) to 1000"},
	"max_concurrent_dials":       {intIn(1, 1000), "a whole number from 1 to 1000"},
	"pipeline_pool_size":         {intIn(-1, 100), "a whole number from -1 (no pipeline pool) to 100"},
	"pipeline_read_buffer_size":  {intIn(4<<10, 1<<20), "bytes from 4096 to 1048576"},
	"pipeline_write_buffer_size": {intIn(4<<10, 1<<20), "bytes from 4096 to 1048576"},
	"conn_max_idle_time":         {durationIn(time.Second, 24*time.Hour), "a duration from 1s to 24h"},
	"idle_timeout":               {durationIn(time.Second, 24*time.Hour), "a duration from 1s to 24h"},
	"conn_max_lifetime":          {durationIn(time.Second, 24*time.Hour), "a duration from 1s to 24h"},
	"max_conn_age":               {durationIn(time.Second, 24*time.Hour), "a duration from 1s to 24h"},
	"conn_max_lifetime_jitter":   {durationIn(time.Second, 24*time.Hour), "a duration from 1s to 24h"},
	"skip_verify":                {boolean, "true or false"},
	// Cluster URLs only; go-redis refuses them in a single server's URL.
	"addr":                       {hostPort, "host:port with a port from 1 to 65535"},
	"max_redirects":              {intIn(-1, 16), "a whole number from -1 (none) to 16"},
	"read_only":                  {boolean, "true or false"},
	"route_by_latency":           {boolean, "true or false"},
	"route_by_latency_tolerance": {durationIn(time.Millisecond, time.Minute), "a duration from 1ms to 1m"},
	"route_randomly":             {boolean, "true or false"},
	"dialer_retries":             {intIn(1, 10), "a whole number from 1 to 10"},
	"dialer_retry_timeout":       {durationIn(time.Millisecond, time.Minute), "a duration from 1ms to 1m"},
	"failing_timeout_seconds":    {intIn(1, 3600), "a whole number of seconds from 1 to 3600"},
}

// checkRedisURL returns what is wrong with a Redis URL that go-redis has
// parsed, or "": a port out of range, a negative database, or an option out
// of the range in redisURLOptions.
func checkRedisURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "a URL" // go-redis parsed it, so this does not happen
	}
	if port := u.Port(); port != "" && !hostPort("h:"+port) {
		return fmt.Sprintf("a port from 1 to 65535, not %q", port)
	}
	if db := strings.Trim(u.Path, "/"); u.Scheme != "unix" && db != "" && !intIn(0, math.MaxInt32)(db) {
		return fmt.Sprintf("a database number from 0, not %q", db)
	}
	query := u.Query()
	names := slices.Sorted(maps.Keys(query))
	for _, name := range names {
		option, known := redisURLOptions[name]
		if !known {
			continue // go-redis has refused it already
		}
		for _, value := range query[name] {
			if !option.valid(value) {
				return fmt.Sprintf("%s as %s, not %q", name, option.want, value)
			}
		}
	}
	return ""
}

func intIn(lo, hi int) func(string) bool {
	return func(s string) bool {
		n, err := strconv.Atoi(s)
		return err == nil && n >= lo && n <= hi
	}
}

// durationIn reads a duration as go-redis does (a bare number is seconds).
func durationIn(lo, hi time.Duration) func(string) bool {
	return func(s string) bool {
		d, err := time.ParseDuration(s)
		if n, nErr := strconv.Atoi(s); nErr == nil {
			if n < 0 || n > int(hi/time.Second) {
				return false // before the multiplication overflows
			}
			d, err = time.Duration(n)*time.Second, nil
		}
		return err == nil && d >= lo && d <= hi
	}
}

func boolean(s string) bool { return s == "true" || s == "false" || s == "1" || s == "0" }

func clientName(s string) bool {
	return len(s) >= 1 && len(s) <= 64 && strings.IndexFunc(s, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("._:-", r))
	}) < 0
}

func hostPort(s string) bool {
	host, port, err := net.SplitHostPort(s)
	n, portErr := strconv.Atoi(port)
	return err == nil && host != "" && portErr == nil && n >= 1 && n <= 65535
}

// isClusterURL reports whether a Redis URL names cluster nodes with addr=,
// go-redis's cluster URL syntax. go-redis parses either kind; this only picks
// the parser.
func isClusterURL(rawURL string) bool {
	u, err := url.Parse(rawURL)
	return err == nil && u.Query().Has("addr")
}

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

// redactURL returns a Redis URL with its password replaced by xxxxx, as
// url.URL.Redacted does, also for a URL that net/url cannot parse: it is
// shown in errors and in -h.
func redactURL(rawURL string) string {
	start, end, ok := passwordSpan(rawURL)
	if !ok {
		return rawURL
	}
	return rawURL[:start] + "xxxxx" + rawURL[end:]
}

// passwordSpan finds the password in a URL's userinfo (scheme://user:password@host…)
// without parsing the rest, which may be what is wrong with it.
func passwordSpan(rawURL string) (start, end int, ok bool) {
	_, rest, found := strings.Cut(rawURL, "://")
	if !found {
		return 0, 0, false
	}
	authorityStart := len(rawURL) - len(rest)
	// The userinfo ends at the last "@", not at the first "/", "?" or "#":
	// a password typed unescaped may hold any of them, and redacting too much
	// of a URL that has "@" elsewhere is the safe mistake.
	authority := rest
	at := strings.LastIndex(authority, "@")
	if at < 0 {
		return 0, 0, false
	}
	colon := strings.Index(authority[:at], ":")
	if colon < 0 {
		return 0, 0, false
	}
	return authorityStart + colon + 1, authorityStart + at, true
}

// withoutPassword removes rawURL's password, as typed and percent-decoded,
// from a message about it.
func withoutPassword(msg, rawURL string) string {
	start, end, ok := passwordSpan(rawURL)
	if !ok || start == end {
		return msg
	}
	password := rawURL[start:end]
	// An unescaped "/", "?" or "#" ends the authority for net/url, whose
	// message then quotes a piece of the password: say only what to do.
	if strings.ContainsAny(password, "/?#") {
		return "the password holds /, ? or #, which must be percent-encoded as %2F, %3F, %23"
	}
	msg = strings.ReplaceAll(msg, password, "xxxxx")
	if decoded, err := url.PathUnescape(password); err == nil && decoded != "" {
		msg = strings.ReplaceAll(msg, decoded, "xxxxx")
	}
	return msg
}

func newLogger(format string, w io.Writer) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}
