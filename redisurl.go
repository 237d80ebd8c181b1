package main

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// REDIS_URL: which URLs the service takes, the range of each option it
// runs with, and how a URL is shown without its password.

// parseRedisURL reads a Redis URL into the options of one server, or of a
// cluster when it names nodes with addr=. It returns what the URL should be
// instead, with no password in it, when it is not one this service runs
// with.
func parseRedisURL(rawURL string) (*redis.Options, *redis.ClusterOptions, string) {
	var (
		opts    *redis.Options
		cluster *redis.ClusterOptions
		err     error
	)
	if isClusterURL(rawURL) {
		cluster, err = redis.ParseClusterURL(rawURL)
	} else {
		opts, err = redis.ParseURL(rawURL)
	}
	if err != nil {
		// net/url's errors quote the whole URL; the reason is inside.
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err
		}
		return nil, nil, fmt.Sprintf("redis://[user:password@]host:port[/db], rediss://… for TLS, or redis://host1:port1?addr=host2:port2&addr=host3:port3 for a cluster (%s)",
			withoutPassword(err.Error(), rawURL))
	}
	if want := checkRedisURL(rawURL); want != "" {
		return nil, nil, want
	}
	return opts, cluster, ""
}

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
