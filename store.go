package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"example.com/shopsession/internal/redisclient"
	"example.com/shopsession/internal/storescript"
)

const (
	// sessionKeyPrefix namespaces every key the service writes; a session
	// id only ever fills the part after it, and so never names a canary's
	// key (nodes.go).
	sessionKeyPrefix = "shop:session:"
	maxInterests     = 3
	// maxWriteAttempts bounds the compare-and-set loop; each conflict means
	// another search of the same session succeeded, so a few are plenty.
	maxWriteAttempts = 8
)

// The script's first argument, boxed once: a string put in an any is
// otherwise an allocation per search.
var expectAbsent, expectValue any = "absent", "value"

// storeInterests is the compare-and-set script every write goes through
// (storescript's doc says what it does); the canaries (nodes.go) use it too.
var storeInterests = storescript.StoreInterests

// store keeps each session's last few distinct searches in Redis. A search
// costs two round trips when no other search of the session races it: one
// GET, one compare-and-set.
//
// Circuit breakers guard every Redis operation (breaker.go), one for the
// reads and one for the writes of each Redis server (nodes.go), so that a
// Redis that is down, slow, or answers reads and refuses writes costs a page
// nothing it can do without.
type store struct {
	rdb             redis.UniversalClient
	cluster         *redis.ClusterClient // rdb, on a cluster; nil for a single server
	timeout         time.Duration
	ttl             time.Duration
	ttlMillis       any // ttl for the script, boxed once (as expectAbsent)
	logger          *slog.Logger
	breakerSettings breakerSettings
	metrics         *metrics // nil: not counted

	single  *node    // a single server's breakers; nil on a cluster
	routing *breaker // a cluster's slot table; nil for a single server
	nodesMu sync.Mutex
	nodes   sync.Map // a cluster's masters: address → *node
}

func newStore(rdb redis.UniversalClient, timeout, ttl time.Duration, breaker breakerSettings, logger *slog.Logger, m *metrics) *store {
	s := &store{rdb: rdb, timeout: timeout, ttl: ttl, ttlMillis: ttl.Milliseconds(), logger: logger, breakerSettings: breaker, metrics: m}
	if cluster, ok := rdb.(*redis.ClusterClient); ok {
		s.cluster = cluster
		// The slot table's canary is a lookup: it succeeds once go-redis has
		// a slot table, whichever masters are up.
		s.routing = s.newBreaker(routing, "", func(ctx context.Context) error {
			_, err := cluster.MasterForKey(ctx, canaryKey)
			return err
		}, nil)
	} else {
		s.single = s.newNode("")
	}
	return s
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
// logs it and returns it, with the interests it read: none if the read
// failed (nothing is written after a failed read), those stored, without
// query, if the write failed.
func (s *store) remember(ctx context.Context, sessionID, query string) ([]string, error) {
	key := sessionKeyPrefix + sessionID
	n, err := s.nodeFor(ctx, key)
	if err != nil {
		s.logFailure(err, "route", sessionID)
		return nil, err
	}
	var raw string
	err = n.read.do(func() error {
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
	stored := s.decode(sessionID, raw, present)

	writeCtx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	for range maxWriteAttempts {
		interests := withQuery(stored, query)
		if len(interests) == 0 {
			return nil, nil // nothing to remember: no key for this visitor
		}
		encoded := encodeInterests(interests)
		expected := expectAbsent
		if present {
			expected = expectValue
		}
		var reply []any
		err := n.write.do(func() error {
			var err error
			reply, err = storeInterests.Run(writeCtx, s.rdb, []string{key},
				expected, raw, encoded, s.ttlMillis).Slice()
			return err
		})
		if err != nil {
			s.logFailure(err, "write", sessionID)
			return stored, err
		}
		if len(reply) > 0 && reply[0] == int64(1) {
			return interests, nil
		}
		s.metrics.casConflict()
		raw, present = "", false
		if len(reply) > 1 && reply[1] != nil {
			raw, present = fmt.Sprint(reply[1]), true
		}
		stored = s.decode(sessionID, raw, present)
	}
	err = fmt.Errorf("gave up after %d conflicting writes", maxWriteAttempts)
	s.logger.Warn("redis error "+err.Error(), "op", "write", "session", loggedSession(sessionID))
	return stored, err
}

// logFailure logs a failed Redis operation, except while its breaker is
// open: the state change was logged once, and a line per page would flood
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

// withQuery returns interests with query appended, unless it is empty or
// already there, keeping the last maxInterests. It never modifies interests.
func withQuery(interests []string, query string) []string {
	if query == "" || slices.Contains(interests, query) {
		return interests
	}
	next := append(append(make([]string, 0, len(interests)+1), interests...), query)
	if len(next) > maxInterests {
		next = next[len(next)-maxInterests:]
	}
	return next
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
