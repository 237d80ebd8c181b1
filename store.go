package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"

	"example.com/shopsession/internal/redisclient"
)

const (
	// sessionKeyPrefix namespaces every key the service writes; a session id
	// only ever fills the part after it.
	sessionKeyPrefix = "shop:session:"
	maxInterests     = 3
	// maxWriteAttempts bounds the compare-and-set loop; each conflict means
	// another search of the same session succeeded, so a few are plenty.
	maxWriteAttempts = 8
)

// storeInterests writes ARGV[3] with a TTL of ARGV[4] ms only if the key still
// holds what the caller read: absent when ARGV[1] is "absent", ARGV[2]
// otherwise. On a conflict it returns what the key holds now, so the caller
// can retry without another read.
var storeInterests = redis.NewScript(`
local current = redis.call('GET', KEYS[1])
local unchanged
if ARGV[1] == 'absent' then unchanged = (current == false) else unchanged = (current == ARGV[2]) end
if unchanged then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
  return {1}
end
return {0, current}
`)

// store keeps each session's last few distinct searches in Redis. A search
// costs two round trips when no other search of the session races it: one
// GET, one compare-and-set.
//
// A circuit breaker guards every Redis operation: after a run of consecutive
// failures it opens and the store answers at once with errCacheUnavailable,
// so that a Redis that is down or slow costs a page nothing; after a
// cool-down it lets one operation through, and closes when that one succeeds.
type store struct {
	rdb     redis.UniversalClient
	timeout time.Duration
	ttl     time.Duration
	logger  *slog.Logger
	breaker *gobreaker.CircuitBreaker[struct{}]
	metrics *metrics // nil: not counted
}

// breakerSettings are the circuit breaker's thresholds.
type breakerSettings struct {
	failures uint32        // consecutive failed operations that open it
	cooldown time.Duration // how long it stays open before one operation probes Redis
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
// the breaker is open.
var errCacheUnavailable = errors.New("session cache unavailable: circuit breaker open")

func newStore(rdb redis.UniversalClient, timeout, ttl time.Duration, breaker breakerSettings, logger *slog.Logger, m *metrics) *store {
	s := &store{rdb: rdb, timeout: timeout, ttl: ttl, logger: logger, metrics: m}
	s.breaker = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name: "redis",
		// Half-open: one operation probes Redis; its success closes the
		// breaker, its failure opens it for another cool-down.
		MaxRequests: 1,
		Timeout:     breaker.cooldown,
		// Interval 0: the counts are cleared only when the state changes,
		// and only a run of consecutive failures opens it (see trips), so a
		// Redis that fails every other read (experiment 2) never does.
		ReadyToTrip:   func(c gobreaker.Counts) bool { return breaker.trips(c) },
		IsSuccessful:  redisAnswered,
		IsExcluded:    func(err error) bool { return errors.Is(err, context.Canceled) },
		OnStateChange: func(_ string, from, to gobreaker.State) { s.breakerChanged(from, to) },
	})
	return s
}

// redisAnswered tells the breaker which outcomes count as Redis working:
// a reply, including "no such key". Every other error counts as a failure:
// a refused or reset connection, a timeout (REDIS_TIMEOUT or the pool's), an
// error reply such as OOM or LOADING, and the chaos build's injected CHAOS
// reply. A compare-and-set conflict is a reply, not an error. A visitor who
// goes away cancels the request's context: IsExcluded leaves that out, as it
// says nothing about Redis.
func redisAnswered(err error) bool {
	return err == nil || errors.Is(err, redis.Nil)
}

// breakerChanged logs each change of the breaker's state once; while it is
// open, pages are served without recommendations and log nothing each.
func (s *store) breakerChanged(from, to gobreaker.State) {
	s.metrics.breakerStateChanged(from.String(), to.String())
	switch to {
	case gobreaker.StateOpen:
		s.logger.Warn("redis circuit breaker open: serving pages without recommendations", "from", from.String(), "to", to.String())
	case gobreaker.StateHalfOpen:
		s.logger.Warn("redis circuit breaker half-open: one operation probes redis", "from", from.String(), "to", to.String())
	case gobreaker.StateClosed:
		s.logger.Warn("redis circuit breaker closed: redis answers again", "from", from.String(), "to", to.String())
	}
}

// cacheState is the breaker's state: closed while Redis answers, open while
// the store serves without it, half-open while one operation probes it.
func (s *store) cacheState() gobreaker.State { return s.breaker.State() }

// degraded reports whether the store serves without Redis, as /readyz says:
// the breaker is open, or half-open with one operation probing Redis.
func (s *store) degraded() bool { return s.cacheState() != gobreaker.StateClosed }

// guarded runs one Redis operation through the breaker. While the breaker
// is open (or half-open with its probe already out) it returns
// errCacheUnavailable at once.
func (s *store) guarded(op func() error) error {
	_, err := s.breaker.Execute(func() (struct{}, error) { return struct{}{}, op() })
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return errCacheUnavailable
	}
	return err
}

// loadScripts loads the compare-and-set script so that the first search does
// not pay for a NOSCRIPT reply. If Redis is down now, the first write loads it.
func (s *store) loadScripts(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := storeInterests.Load(ctx, s.rdb).Err(); err != nil {
		s.logger.Warn("redis error "+err.Error(), "op", "script load")
	}
}

// remember adds query (if not empty) to the session's interests and returns
// them, oldest first. A session with interests is written back, which
// refreshes its TTL; one without (no query, nothing stored) is not written,
// so a visitor with nothing to remember costs no key. On a Redis error it
// logs it and returns it with no interests; nothing is written after a failed
// read.
func (s *store) remember(ctx context.Context, sessionID, query string) ([]string, error) {
	key := sessionKeyPrefix + sessionID
	var raw string
	err := s.guarded(func() error {
		readCtx, cancel := context.WithTimeout(ctx, s.timeout)
		defer cancel()
		var err error
		raw, err = s.rdb.Get(readCtx, key).Result()
		return err
	})
	present := err == nil
	if err != nil && !errors.Is(err, redis.Nil) {
		s.logFailure(err, "read", sessionID)
		return nil, err
	}

	writeCtx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	for range maxWriteAttempts {
		interests := withQuery(s.decode(sessionID, raw, present), query)
		if len(interests) == 0 {
			return nil, nil // nothing to remember: no key for this visitor
		}
		encoded := encodeInterests(interests)
		expected := "absent"
		if present {
			expected = "value"
		}
		var reply []any
		err := s.guarded(func() error {
			var err error
			reply, err = storeInterests.Run(writeCtx, s.rdb, []string{key},
				expected, raw, encoded, s.ttl.Milliseconds()).Slice()
			return err
		})
		if err != nil {
			s.logFailure(err, "write", sessionID)
			return nil, err
		}
		if len(reply) > 0 && reply[0] == int64(1) {
			return interests, nil
		}
		s.metrics.casConflict()
		raw, present = "", false
		if len(reply) > 1 && reply[1] != nil {
			raw, present = fmt.Sprint(reply[1]), true
		}
	}
	err = fmt.Errorf("gave up after %d conflicting writes", maxWriteAttempts)
	s.logger.Warn("redis error "+err.Error(), "op", "write", "session", loggedSession(sessionID))
	return nil, err
}

// logFailure logs a failed Redis operation, except while the breaker is
// open: its state change was logged once, and a line per page would flood
// the log during an outage.
func (s *store) logFailure(err error, op, sessionID string) {
	if errors.Is(err, errCacheUnavailable) {
		return
	}
	s.logger.Warn("redis error "+err.Error(), "op", op, "session", loggedSession(sessionID))
}

// decode reads a stored list of interests. A value that is not a JSON array
// of strings is logged and treated as empty, so the next write replaces it.
func (s *store) decode(sessionID, raw string, present bool) []string {
	if !present {
		return nil
	}
	interests, ok := decodeInterests(raw)
	if !ok {
		s.logger.Warn("stored interests are not a JSON array of strings; replacing them",
			"session", loggedSession(sessionID), "bytes", len(raw))
	}
	return interests
}

// encodeInterests stores interests as the JSON array that decodeInterests
// reads, without encoding/json's HTML-safe escapes, which would store each
// "<", ">" or "&" a visitor types as six bytes.
func encodeInterests(interests []string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(interests) // a []string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}

func decodeInterests(raw string) ([]string, bool) {
	var interests []string
	if err := json.Unmarshal([]byte(raw), &interests); err != nil || interests == nil {
		return nil, false
	}
	if len(interests) > maxInterests {
		interests = interests[len(interests)-maxInterests:]
	}
	return interests, true
}

// withQuery returns interests with query appended, unless it is empty or
// already there, keeping the last maxInterests. It never modifies interests.
func withQuery(interests []string, query string) []string {
	if query == "" || slices.Contains(interests, query) {
		return interests
	}
	next := append(slices.Clone(interests), query)
	if len(next) > maxInterests {
		next = next[len(next)-maxInterests:]
	}
	return next
}

// ping answers whether Redis responds within REDIS_TIMEOUT, the bound pages
// use, so a probe fails only when a page would. It goes through the
// breaker, so that readiness probes notice an outage when no visitor does,
// and answer at once while the breaker is open.
func (s *store) ping(ctx context.Context) error {
	return s.guarded(func() error {
		ctx, cancel := context.WithTimeout(ctx, s.timeout)
		defer cancel()
		return s.rdb.Ping(ctx).Err()
	})
}

// openRedis connects to cfg's Redis server or cluster, or starts an embedded
// Redis when none is configured. The returned func closes what it opened.
func openRedis(cfg config, logger *slog.Logger) (redis.UniversalClient, func(), error) {
	// go-redis logs through a process-wide logger; send it to ours so that
	// LOG_FORMAT=json stays JSON.
	redis.SetLogger(redisLogger{logger})
	var rdb redis.UniversalClient
	stopEmbedded := func() {}
	// Both kinds of client get the same settings: redisclient says which and
	// why.
	switch {
	case cfg.redisCluster != nil:
		opts := cfg.redisCluster
		redisclient.ClusterDefaults(opts)
		rdb = redis.NewClusterClient(opts)
	default:
		opts := cfg.redisOptions
		if opts == nil {
			embedded := miniredis.NewMiniRedis()
			if err := embedded.StartAddr("127.0.0.1:0"); err != nil {
				return nil, nil, fmt.Errorf("start embedded redis: %w", err)
			}
			logger.Warn("no REDIS_URL: using an embedded in-memory Redis; sessions live in this process only and vanish when it stops. Set REDIS_URL=redis://host:6379/0 (or -redis-url) to use a real Redis",
				"addr", embedded.Addr())
			opts = &redis.Options{Addr: embedded.Addr()}
			stopEmbedded = embedded.Close
		}
		redisclient.Defaults(opts)
		rdb = redis.NewClient(opts)
	}
	return rdb, func() {
		if err := rdb.Close(); err != nil {
			logger.Warn("close redis client", "err", err)
		}
		stopEmbedded()
	}, nil
}

type redisLogger struct{ logger *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.logger.WarnContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}
