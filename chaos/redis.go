package chaos

import (
	"context"
	"slices"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"
)

// Instrument hooks the experiment into a go-redis client: a *redis.Client,
// a *redis.ClusterClient (every node client, as go-redis makes it) or a
// *redis.Ring. Call it once, before the client's first command.
func (e *Experiment) Instrument(rdb redis.UniversalClient) {
	e.rdb = rdb
	// Reads are counted, and failed, once per command as the service issues
	// it: on a cluster a redirected read is still one read.
	rdb.AddHook(readHook{e})
	// Round trips happen where commands reach Redis: on a cluster, in the
	// client go-redis makes for each node; dials too.
	trips := roundTripHook{e}
	if cluster, ok := rdb.(*redis.ClusterClient); ok {
		cluster.OnNewNode(func(node *redis.Client) { node.AddHook(trips) })
	} else {
		rdb.AddHook(trips)
	}
}

// commandOf is what the hooks know of cmd.
func commandOf(cmd redis.Cmder) Command {
	c := Command{Name: cmd.Name()}
	if args, at := cmd.Args(), keyAt(c.Name); len(args) > at && (at == 1 || !noKeys(args[2])) {
		c.Key, _ = args[at].(string)
	}
	return c
}

// noKeys reports whether a script's number of keys, as go-redis holds it,
// is 0: its next argument is then not a key.
func noKeys(n any) bool {
	switch n := n.(type) {
	case int:
		return n == 0
	case int64:
		return n == 0
	case string:
		return n == "0"
	}
	return false
}

// nodeAddr is the node a redirect that the command layer returns names:
// the master a cluster client would send key to, a single server, or a
// ring's first shard in the order of their names. go-redis never follows
// it (the hook returns outside its redirect loop); it is there for the
// reply to read as a real one does.
func (e *Experiment) nodeAddr(ctx context.Context, key string) string {
	switch rdb := e.rdb.(type) {
	case *redis.Client:
		return rdb.Options().Addr
	case *redis.ClusterClient:
		if node, err := rdb.MasterForKey(ctx, key); err == nil {
			return node.Options().Addr
		}
		if addrs := rdb.Options().Addrs; len(addrs) > 0 {
			return addrs[0]
		}
	case *redis.Ring:
		shards := rdb.Options().Addrs
		names := make([]string, 0, len(shards))
		for name := range shards {
			names = append(names, name)
		}
		if sort.Strings(names); len(names) > 0 {
			return shards[names[0]]
		}
	}
	return "127.0.0.1:6379" // no node known: Redis's own default
}

// readHook counts the service's reads and, at the command layer, fails
// the commands its failure targets (the reads, unless the commands list
// names others) before they reach Redis. It records the outcome of every command in
// its request, for the stop conditions, as the service sees it: after
// go-redis's retries and whichever layer injected.
type readHook struct{ e *Experiment }

func (h readHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h readHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		req := requestOf(ctx)
		c := commandOf(cmd)
		if h.e.opts.spared(c) {
			return next(ctx, cmd)
		}
		read := h.e.opts.isRead(c)
		if read {
			h.e.reads.Add(1)
		}
		p := h.e.active.Load()
		if f := p.command; f != nil && f.failure != nil && f.failure.targets(&h.e.opts, c) && p.run.reaches(ctx) && f.failure.fails() {
			var err error
			if ctx, err = h.e.failRead(ctx, p, req, c); err != nil {
				req.done(err)
				return err
			}
		}
		err := next(ctx, cmd)
		if read {
			req.read(err)
		}
		req.done(err)
		return err
	}
}

func (h readHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if req := requestOf(ctx); req != nil {
			req.done(err)
			for _, cmd := range cmds {
				req.done(cmd.Err())
			}
		}
		return err
	}
}

// roundTripHook delays, at the command layer, the commands and pipelines
// the latency targets; it wraps every connection, where the round trips are
// counted and the connection layer injects.
type roundTripHook struct{ e *Experiment }

func (h roundTripHook) DialHook(next redis.DialHook) redis.DialHook { return h.e.dialHook(next) }

func (h roundTripHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if err := h.e.roundTrip(ctx, cmd); err != nil {
			return err
		}
		return next(ctx, cmd)
	}
}

func (h roundTripHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		// A pipeline is one round trip, delayed if any of its commands is targeted.
		if err := h.e.roundTrip(ctx, cmds...); err != nil {
			return err
		}
		return next(ctx, cmds)
	}
}

// roundTrip delays a trip to Redis if the command layer's latency targets
// any of its commands. The delay ends early with the context's error, or
// with nil when its plan stops being the active one: the command then goes
// on to Redis as if it had never been delayed. The trip itself is counted
// on the connection (faultyConn.Write), where it happens.
func (e *Experiment) roundTrip(ctx context.Context, cmds ...redis.Cmder) error {
	p := e.active.Load()
	f := p.command
	if f == nil || f.latency == nil || p.dryRun && wouldFail(ctx) {
		return nil
	}
	if !slices.ContainsFunc(cmds, func(c redis.Cmder) bool { return f.latency.targets(c.Name()) }) || !p.run.reaches(ctx) {
		return nil
	}
	if e.opts.Spared != nil && slices.ContainsFunc(cmds, func(c redis.Cmder) bool { return e.opts.spared(commandOf(c)) }) {
		return nil
	}
	d := f.latency.next()
	if d == 0 || !e.delayDecided(p, requestOf(ctx)) {
		return nil
	}
	start := time.Now()
	if err := e.delay(ctx, p.live, context.Background(), start, start.Add(d)); err != errPlanEnded {
		return err
	}
	return nil
}
