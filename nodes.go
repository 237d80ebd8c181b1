package main

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
)

// The store's breakers, by Redis server, and their canaries.
//
// A single server gets two breakers: one for reads, one for writes, so that
// a Redis that answers reads and refuses writes (a replica, a full server
// under noeviction, writes paused for a failover) still shows each visitor
// what it remembers. A cluster gets the same two for each master, found by
// the slot table go-redis routes by, so that a dead master's sessions fail
// fast while the others' keep their recommendations; and one more breaker
// for the slot table itself, which guards the lookup while no node can be
// asked for it.

const (
	// canaryKey is a single server's canary key, and canaryKeyPrefix
	// begins a cluster's. They are under sessionKeyPrefix, where an ACL
	// for the sessions lets them be read and written, and where the chaos
	// build's experiments fail reads as they fail a session's; a brace is
	// no character of a session id, so no session can name one. On a
	// cluster the braces make the tag "canary-N" the part hashed to a slot.
	canaryKey       = sessionKeyPrefix + "{canary}"
	canaryKeyPrefix = sessionKeyPrefix + "{canary-"
	// readyKey and readyKeyPrefix are the same for /readyz's canaries,
	// which run outside the breakers: keys of their own, so that the chaos
	// build can leave them alone (chaos_on.go's Spared) while its experiments reach
	// the breakers' canaries as they reach the sessions.
	readyKey       = sessionKeyPrefix + "{ready}"
	readyKeyPrefix = sessionKeyPrefix + "{ready-"
	// canaryTTL is how long a canary's write lives: every instance writes
	// the same keys, and none needs one to outlive its check.
	canaryTTL = 10 * time.Second
	// maxCanarySearch bounds the search for a key a cluster's master
	// serves: each try is a slot-table lookup in memory, and a master with
	// even one slot of 16 384 is found within it all but e^-16 of the time.
	maxCanarySearch = 1 << 18
)

// node is one Redis server that sessions live on, and its breakers.
type node struct {
	addr        string // "" for a single server
	read, write *breaker
	canaryKeys  [2]atomic.Pointer[string] // a cluster's, by keyFamily: the last key found on this master
}

// keyFamily is which canaries a key is for: the breakers' probes, or
// /readyz's.
type keyFamily int

const (
	probeKeys keyFamily = iota
	readyKeys
)

func (f keyFamily) single() string {
	if f == readyKeys {
		return readyKey
	}
	return canaryKey
}

func (f keyFamily) prefix() string {
	if f == readyKeys {
		return readyKeyPrefix
	}
	return canaryKeyPrefix
}

func (s *store) newNode(addr string) *node {
	n := &node{addr: addr}
	read := func(f keyFamily) func(context.Context) error {
		return func(ctx context.Context) error {
			key, err := s.canaryKeyOf(ctx, n, f)
			if err != nil || key == "" {
				return err
			}
			if err := s.rdb.Get(ctx, key).Err(); !errors.Is(err, redis.Nil) {
				return err
			}
			return nil
		}
	}
	// The write canary is the sessions' own compare-and-set script, told
	// to write whatever the key holds: a Redis that fails the script (a
	// slow EVALSHA, OOM, READONLY) fails the canary as it fails sessions.
	write := func(f keyFamily) func(context.Context) error {
		return func(ctx context.Context) error {
			key, err := s.canaryKeyOf(ctx, n, f)
			if err != nil || key == "" {
				return err
			}
			return storeInterests.Run(ctx, s.rdb, []string{key}, "any", "", "1", canaryTTL.Milliseconds()).Err()
		}
	}
	n.read = s.newBreaker(reads, addr, read(probeKeys), read(readyKeys))
	n.write = s.newBreaker(writes, addr, write(probeKeys), write(readyKeys))
	return n
}

// canaryKeyOf returns the key n's canaries use. On a cluster it is a key
// that go-redis routes to n, the master whose sessions the breakers guard:
// a canary on any other master would close n's breakers while n is dead.
// "" means n serves no slot now: it has no session to guard.
func (s *store) canaryKeyOf(ctx context.Context, n *node, f keyFamily) (string, error) {
	if s.cluster == nil {
		return f.single(), nil
	}
	if k := n.canaryKeys[f].Load(); k != nil {
		// Slots move between masters: the key must still be n's.
		if master, err := s.cluster.MasterForKey(ctx, *k); err == nil && master.Options().Addr == n.addr {
			return *k, nil
		}
	}
	for i := range maxCanarySearch {
		k := f.prefix() + strconv.Itoa(i) + "}"
		master, err := s.cluster.MasterForKey(ctx, k)
		if err != nil {
			return "", err
		}
		if master.Options().Addr == n.addr {
			n.canaryKeys[f].Store(&k)
			return k, nil
		}
	}
	return "", nil
}

// nodeFor returns the node key lives on. On a cluster the lookup goes
// through the routing breaker: while go-redis has no slot table and no node
// answers for one, each lookup would wait for a node that is not there.
func (s *store) nodeFor(ctx context.Context, key string) (*node, error) {
	if s.cluster == nil {
		return s.single, nil
	}
	var addr string
	err := s.routing.do(func() error {
		ctx, cancel := context.WithTimeout(ctx, s.timeout)
		defer cancel()
		master, err := s.cluster.MasterForKey(ctx, key)
		if err == nil {
			addr = master.Options().Addr
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.nodeAt(addr), nil
}

// nodeAt returns the node for a master's address, making it the first time.
// The addresses come from the cluster's own slot table, never from a
// request, so there are as many as the cluster has had masters.
func (s *store) nodeAt(addr string) *node {
	if n, ok := s.nodes.Load(addr); ok {
		return n.(*node)
	}
	s.nodesMu.Lock()
	defer s.nodesMu.Unlock()
	if n, ok := s.nodes.Load(addr); ok {
		return n.(*node)
	}
	n := s.newNode(addr)
	s.nodes.Store(addr, n)
	return n
}

// masters returns the nodes sessions live on now: the single server, or
// each master in the cluster's slot table, which it loads afresh.
func (s *store) masters(ctx context.Context) ([]*node, error) {
	if s.cluster == nil {
		return []*node{s.single}, nil
	}
	var mu sync.Mutex
	var addrs []string
	err := s.routing.run(func() error {
		ctx, cancel := context.WithTimeout(ctx, s.timeout)
		defer cancel()
		return s.cluster.ForEachMaster(ctx, func(_ context.Context, master *redis.Client) error {
			mu.Lock()
			addrs = append(addrs, master.Options().Addr)
			mu.Unlock()
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	nodes := make([]*node, len(addrs))
	for i, addr := range addrs {
		nodes[i] = s.nodeAt(addr)
	}
	return nodes, nil
}

// readiness is what /readyz reports of the session cache.
type readiness int

const (
	cacheReady        readiness = iota
	writesRefused               // every node reads; some refuse to write
	partlyUnavailable           // some nodes, not all, fail reads
	cacheUnavailable            // no node reads
)

// check runs every node's canaries through their breakers: the read, then,
// if it answered, the write. A node whose breaker is open fails at once.
func (s *store) check(ctx context.Context) readiness {
	nodes, err := s.masters(ctx)
	if err != nil {
		if !errors.Is(err, errCacheUnavailable) {
			s.logger.Warn("redis error "+err.Error(), "op", "canary routing")
		}
		return cacheUnavailable
	}
	var readFailed, writeFailed atomic.Int32
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() {
			if n.read.ready(ctx) != nil {
				readFailed.Add(1)
			} else if n.write.ready(ctx) != nil {
				writeFailed.Add(1)
			}
		})
	}
	wg.Wait()
	switch {
	case int(readFailed.Load()) == len(nodes):
		return cacheUnavailable
	case readFailed.Load() > 0:
		return partlyUnavailable
	case writeFailed.Load() > 0:
		return writesRefused
	}
	return cacheReady
}

// breakers calls yield with each of the store's breakers.
func (s *store) breakers(yield func(*breaker) bool) {
	if s.cluster == nil {
		if yield(s.single.read) {
			yield(s.single.write)
		}
		return
	}
	if !yield(s.routing) {
		return
	}
	s.nodes.Range(func(_, n any) bool { return yield(n.(*node).read) && yield(n.(*node).write) })
}

// cacheState is the worst state of the store's breakers: open if any is,
// else half-open if any is, else closed.
func (s *store) cacheState() gobreaker.State {
	worst := gobreaker.StateClosed
	for b := range s.breakers {
		switch b.currentState() {
		case gobreaker.StateOpen:
			return gobreaker.StateOpen
		case gobreaker.StateHalfOpen:
			worst = gobreaker.StateHalfOpen
		}
	}
	return worst
}

// degraded reports whether some pages are served without some of Redis, as
// /readyz says: a breaker is open, or half-open with its canary probing.
func (s *store) degraded() bool { return s.cacheState() != gobreaker.StateClosed }
