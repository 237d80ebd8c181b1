package chaos

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// The connection layer: faults injected on the net.Conn that go-redis dials,
// below its pool and its retry loop, where a real slow or broken Redis acts.
//
// The command layer (redis.go's hooks, the book's experiments) runs around
// a command before it takes a pooled connection and outside go-redis's
// retries: its delay holds no connection, its error is never retried. Here a
// delayed reply keeps the connection out of the pool for the whole delay, so
// 64 clients on a pool of 20 queue and time out as they do behind a slow
// network; a failed read gets a dropped connection or a real Redis error
// reply, which go-redis handles by its own rules (closing, re-dialling,
// retrying when MaxRetries allows it).

// connCounters count what the connection layer did.
type connCounters struct {
	dials        atomic.Int64
	dialsFailed  atomic.Int64
	delays       atomic.Int64
	drops        atomic.Int64
	errorReplies atomic.Int64
	resets       atomic.Int64
	blackholes   atomic.Int64
	slowReplies  atomic.Int64
}

func (c *connCounters) status() ConnCounters {
	return ConnCounters{Dials: c.dials.Load(), DialsFailed: c.dialsFailed.Load(), DelaysInjected: c.delays.Load(),
		ConnectionsDropped: c.drops.Load(), ErrorRepliesInjected: c.errorReplies.Load(),
		ConnectionsReset: c.resets.Load(), ReadsBlackholed: c.blackholes.Load(), SlowReplies: c.slowReplies.Load()}
}

// dialHook wraps every connection go-redis dials. The wrapper costs a
// command one atomic load on each write and read, and the round trip's
// count, while no connection-layer experiment runs
// (BenchmarkConnWithNoExperiment); wrapping every connection means an
// experiment switched on with PUT reaches the pooled connections too, not
// only those dialled after it, and that every round trip is counted where
// it happens, at either layer.
func (e *Experiment) dialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		e.conn.dials.Add(1)
		conn, err := next(ctx, network, addr)
		if err != nil {
			e.conn.dialsFailed.Add(1)
			return nil, err
		}
		wrapped := &faultyConn{Conn: conn, e: e, addr: addr}
		wrapped.closed, wrapped.closing = context.WithCancel(context.Background())
		if _, ok := conn.(syscall.Conn); ok {
			// go-redis's pool peeks at the socket of a syscall.Conn to drop
			// connections Redis closed while they were idle; keep that.
			return &faultySyscallConn{wrapped}, nil
		}
		return wrapped, nil
	}
}

// connFault is what the next Read on a connection does instead of, or
// before, reading Redis's reply.
type connFault struct {
	delay time.Duration   // hold the reply this long after it arrives
	plan  context.Context // the delay's plan's live: the reply is handed over at once when it is done
	drop  bool            // close the connection: the read sees end of file
	reply []byte          // answer with these bytes; the command never reached Redis
	reset bool            // reset the connection (conn_reset.go)
	held  []byte          // blackholed: the command, sent if the plan ends first (conn_blackhole.go)
}

// faultyConn is a connection go-redis dialled. Write decides the fault for
// the reply to what it writes; the next Read carries it out. go-redis uses a
// connection from one goroutine at a time, writing a command and then
// reading its reply.
type faultyConn struct {
	net.Conn
	e            *Experiment
	addr         string // as go-redis dialled it: the node a MOVED or ASK reply names
	pending      atomic.Pointer[connFault]
	readDeadline atomic.Int64    // unix ns; 0: none
	closed       context.Context // done once Close is called
	closing      context.CancelFunc
	// inTrip is set by the first Write after a Read: a command, or a
	// pipeline, sent and its reply not read yet. Only the goroutine that
	// holds the connection touches it.
	inTrip bool
	// slow trickles the round trip's reply (conn_slow.go); as inTrip,
	// the holding goroutine's alone.
	slow *slowReply
}

// faultySyscallConn is a faultyConn over a connection with a file descriptor.
type faultySyscallConn struct{ *faultyConn }

func (c *faultySyscallConn) SyscallConn() (syscall.RawConn, error) {
	return c.Conn.(syscall.Conn).SyscallConn()
}

func (c *faultyConn) NetConn() net.Conn { return c.Conn }

func (c *faultyConn) Write(b []byte) (int, error) {
	if !c.inTrip {
		// A round trip is counted where it happens: a command that waits in
		// vain for a pooled connection makes none, a retry makes one more.
		c.inTrip = true
		c.e.roundTrips.Add(1)
		c.slow = nil
	}
	p := c.e.active.Load()
	f := p.conn
	if f == nil {
		return c.Conn.Write(b)
	}
	cmds := parseRESPCommands(b)
	if c.e.opts.Spared != nil && slices.ContainsFunc(cmds, func(cmd respCommand) bool { return c.e.opts.spared(cmd.Command) }) {
		return c.Conn.Write(b)
	}
	if f.failure != nil && len(cmds) == 1 && f.failure.targets(&c.e.opts, cmds[0].Command) && f.failure.fails() {
		if p.dryRun {
			// As in a real run, a failed read draws no delay.
			c.e.connWouldFail(p)
			return c.Conn.Write(b)
		}
		// The read never reaches Redis, as when Redis is gone or answers
		// with an error before running it.
		c.e.connFailed(p)
		var reply []byte
		if f.failure.reply != "" {
			reply = replyFor(f.failure.reply, cmds[0].Key, c.addr)
		}
		return c.fail(p, reply, b)
	}
	n, err := c.Conn.Write(b)
	if err != nil || f.latency == nil {
		return n, err
	}
	for _, cmd := range cmds {
		if f.latency.targets(cmd.Name) {
			if d := f.latency.next(); d > 0 && p.dryRun {
				c.e.connWouldDelay(p)
			} else if d > 0 {
				c.e.connDelayed(p)
				c.pending.Store(&connFault{delay: d, plan: p.live})
			}
			break // a pipeline is one round trip, delayed once
		}
	}
	return n, err
}

func (c *faultyConn) Read(b []byte) (int, error) {
	c.inTrip = false
	if c.slow != nil {
		return c.slowRead(b)
	}
	if c.pending.Load() == nil {
		return c.Conn.Read(b)
	}
	f := c.pending.Swap(nil)
	switch {
	case f.drop:
		// What a client sees when Redis closes the connection (it is
		// stopped, or killed): end of file, which go-redis treats as a
		// broken connection, retries and re-dials.
		c.Conn.Close()
		return 0, io.EOF
	case f.reply != nil:
		n := copy(b, f.reply)
		if n < len(f.reply) {
			c.pending.Store(&connFault{reply: f.reply[n:]})
		}
		return n, nil
	case f.reset:
		return c.resetRead()
	case f.held != nil:
		return c.blackholeRead(f, b)
	}
	n, err := c.Conn.Read(b)
	if err != nil {
		return n, err
	}
	if err := c.hold(f, time.Now()); err != nil {
		return 0, err
	}
	return n, nil
}

// hold holds back a reply that arrived at arrived for f.delay, as a slow
// network does: the delay comes on top of the round trip, Redis's own time
// included, as toxiproxy's latency toxic adds it to each piece it passes
// on. It holds until the read deadline go-redis set, if that comes first,
// which then fails the read as a timeout; until the connection is closed;
// or until the plan that injected the delay ends, when the reply is handed
// over at once.
func (c *faultyConn) hold(f *connFault, arrived time.Time) error {
	t, timedOut := arrived.Add(f.delay), false
	if ns := c.readDeadline.Load(); ns != 0 && ns < t.UnixNano() {
		t, timedOut = time.Unix(0, ns), true
	}
	switch c.e.delay(context.Background(), f.plan, c.closed, arrived, t) {
	case errConnClosed:
		return net.ErrClosed
	case errPlanEnded:
		return nil
	}
	if timedOut {
		return &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.ErrDeadlineExceeded}
	}
	return nil
}

// connDelayed and connFailed count a fault of the connection layer in the
// totals and in the experiment group's counters, of p's run and since the
// experiment was made. The connection layer cannot tell one request from
// another, nor so one unit from another (it refuses a blast radius below
// 100 %): its faults are all the experiment group's.
func (e *Experiment) connDelayed(p *plan) {
	e.conn.delays.Add(1)
	e.delaysInjected.Add(1)
	p.run.groups[experimentGroup].delaysInjected.Add(1)
	e.groupTotals[experimentGroup].delaysInjected.Add(1)
}

func (e *Experiment) connFailed(p *plan) {
	e.errorsInjected.Add(1)
	p.run.groups[experimentGroup].errorsInjected.Add(1)
	e.groupTotals[experimentGroup].errorsInjected.Add(1)
}

// connWouldDelay and connWouldFail count a fault a dry run decided at the
// connection layer, and did not inject, as connDelayed and connFailed do.
func (e *Experiment) connWouldDelay(p *plan) {
	e.delaysWouldInject.Add(1)
	p.run.groups[experimentGroup].delaysWouldInject.Add(1)
	e.groupTotals[experimentGroup].delaysWouldInject.Add(1)
}

func (e *Experiment) connWouldFail(p *plan) {
	e.errorsWouldInject.Add(1)
	p.run.groups[experimentGroup].errorsWouldInject.Add(1)
	e.groupTotals[experimentGroup].errorsWouldInject.Add(1)
}

func (c *faultyConn) SetDeadline(t time.Time) error {
	c.setReadDeadline(t)
	return c.Conn.SetDeadline(t)
}

func (c *faultyConn) SetReadDeadline(t time.Time) error {
	c.setReadDeadline(t)
	return c.Conn.SetReadDeadline(t)
}

func (c *faultyConn) setReadDeadline(t time.Time) {
	if t.IsZero() {
		c.readDeadline.Store(0)
	} else {
		c.readDeadline.Store(t.UnixNano())
	}
}

func (c *faultyConn) Close() error {
	c.closing()
	err := c.Conn.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil // a dropped connection closed itself already
	}
	return err
}
