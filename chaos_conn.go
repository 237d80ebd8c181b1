//go:build chaos

package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// The connection layer: faults injected on the net.Conn that go-redis dials,
// below its pool and its retry loop, where a real slow or broken Redis acts.
//
// The command layer (chaos_on.go's hooks, the book's experiments) runs
// around a command before it takes a pooled connection and outside go-redis's
// retries: its delay holds no connection, its error is never retried. Here a
// delayed reply keeps the connection out of the pool for the whole delay, so
// 64 clients on a pool of 20 queue and time out as they do behind a slow
// network; a failed read gets a dropped connection or a real Redis error
// reply, which go-redis handles by its own rules (closing, re-dialling,
// retrying when MaxRetries allows it).

const (
	layerCommand    = "command"
	layerConnection = "connection"
)

// redisErrorReplies are the error replies a failed read can get, byte for
// byte as a Redis server sends them. go-redis retries all three when it is
// configured to retry; READONLY also makes it close the connection.
var redisErrorReplies = map[string][]byte{
	"LOADING":     []byte("-LOADING Redis is loading the dataset in memory\r\n"),
	"READONLY":    []byte("-READONLY You can't write against a read only replica.\r\n"),
	"CLUSTERDOWN": []byte("-CLUSTERDOWN Hash slot not served\r\n"),
}

const errorReplyChoices = "LOADING, READONLY or CLUSTERDOWN (empty: CHAOS at the command layer, a dropped connection at the connection layer)"

// checkLayer validates and canonicalises the layer and error reply fields.
func (c *chaosConfig) checkLayer(invalid func(field string, value any, want string) error) error {
	switch strings.ToLower(strings.TrimSpace(c.Layer)) {
	case "", layerCommand:
		c.Layer = layerCommand
	case layerConnection:
		c.Layer = layerConnection
	default:
		return invalid("layer", c.Layer, "want command (around each go-redis command, the default) or connection (on the connections go-redis dials)")
	}
	c.ErrorReply = strings.ToUpper(strings.TrimSpace(c.ErrorReply))
	if _, ok := redisErrorReplies[c.ErrorReply]; c.ErrorReply != "" && !ok {
		return invalid("error_reply", c.ErrorReply, "want "+errorReplyChoices)
	}
	return nil
}

// commandLayerError is what a read failed at the command layer returns: the
// book's CHAOS, or the chosen reply's text as an error reply. It is returned
// from a hook, outside go-redis's retry loop, so it is never retried.
func (p *chaosPlan) commandLayerError() error {
	if p.errorReply == nil {
		return chaosError{}
	}
	return chaosReplyError(bytes.TrimSpace(p.errorReply[1:]))
}

type chaosReplyError string

func (e chaosReplyError) Error() string { return string(e) }
func (chaosReplyError) RedisError()     {}

// chaosConnCounters count what the connection layer did since the process
// started; GET /debug/chaos shows them as connection_layer.
type chaosConnCounters struct {
	dials        atomic.Int64
	dialsFailed  atomic.Int64
	delays       atomic.Int64
	drops        atomic.Int64
	errorReplies atomic.Int64
}

type chaosConnStatus struct {
	Dials                int64 `json:"dials"` // by go-redis, whether or not they connect
	DialsFailed          int64 `json:"dials_failed"`
	DelaysInjected       int64 `json:"delays_injected"`
	ConnectionsDropped   int64 `json:"connections_dropped"`
	ErrorRepliesInjected int64 `json:"error_replies_injected"`
}

func (c *chaosConnCounters) status() chaosConnStatus {
	return chaosConnStatus{c.dials.Load(), c.dialsFailed.Load(), c.delays.Load(), c.drops.Load(), c.errorReplies.Load()}
}

// registerConnMetrics adds the connection layer's metrics to reg; the
// delays and errors metrics of chaos_metrics.go count the command layer.
func (e *chaosExperiment) registerConnMetrics(reg prometheus.Registerer) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shopsession_chaos_connection_layer",
			Help: "1 while the experiment injects on go-redis's connections (CHAOS_LAYER=connection), 0 while around its commands.",
		}, func() float64 {
			if e.active.Load().connLayer {
				return 1
			}
			return 0
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "shopsession_chaos_connection_delays_injected_total",
			Help: "Replies the connection layer held back, holding their pooled connection.",
		}, func() float64 { return float64(e.conn.delays.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "shopsession_chaos_connections_dropped_total",
			Help: "Reads the connection layer failed by closing their connection.",
		}, func() float64 { return float64(e.conn.drops.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "shopsession_chaos_error_replies_injected_total",
			Help: "Reads the connection layer answered with a Redis error reply (CHAOS_ERROR_REPLY).",
		}, func() float64 { return float64(e.conn.errorReplies.Load()) }),
	)
}

// chaosPoolStatus is go-redis's connection pool as GET /debug/chaos shows
// it: whether an experiment made commands queue for a connection (waits),
// give up waiting (timeouts), or dial anew (misses).
type chaosPoolStatus struct {
	Hits          uint32  `json:"hits"`
	Misses        uint32  `json:"misses"`
	Timeouts      uint32  `json:"timeouts"`
	Waits         uint32  `json:"waits"`
	WaitSeconds   float64 `json:"wait_seconds"`
	TotalConns    uint32  `json:"total_conns"`
	IdleConns     uint32  `json:"idle_conns"`
	StaleConns    uint32  `json:"stale_conns"`
	UnusableConns uint32  `json:"unusable_conns"`
}

func poolStatus(rdb redis.UniversalClient) chaosPoolStatus {
	s := rdb.PoolStats()
	return chaosPoolStatus{s.Hits, s.Misses, s.Timeouts, s.WaitCount, time.Duration(s.WaitDurationNs).Seconds(),
		s.TotalConns, s.IdleConns, s.StaleConns, s.Unusable}
}

// dialHook wraps every connection go-redis dials. The wrapper costs a
// command one atomic load on each write and read while no connection-layer
// experiment runs (BenchmarkConnWithNoExperiment), and wrapping every
// connection means an experiment switched on with PUT reaches the pooled
// connections too, not only those dialled after it.
func (e *chaosExperiment) dialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		e.conn.dials.Add(1)
		conn, err := next(ctx, network, addr)
		if err != nil {
			e.conn.dialsFailed.Add(1)
			return nil, err
		}
		wrapped := &chaosConn{Conn: conn, e: e, closed: make(chan struct{})}
		if _, ok := conn.(syscall.Conn); ok {
			// go-redis's pool peeks at the socket of a syscall.Conn to drop
			// connections Redis closed while they were idle; keep that.
			return &chaosSyscallConn{wrapped}, nil
		}
		return wrapped, nil
	}
}

// connFault is what the next Read on a connection does instead of, or
// before, reading Redis's reply.
type connFault struct {
	until time.Time // delay: read the reply from then on
	drop  bool      // close the connection: the read sees end of file
	reply []byte    // answer with these bytes; the command never reached Redis
}

// chaosConn is a connection go-redis dialled. Write decides the fault for
// the reply to what it writes; the next Read carries it out. go-redis uses a
// connection from one goroutine at a time, writing a command and then
// reading its reply.
type chaosConn struct {
	net.Conn
	e            *chaosExperiment
	pending      atomic.Pointer[connFault]
	readDeadline atomic.Int64 // unix ns; 0: none
	closed       chan struct{}
	closeOnce    sync.Once
}

// chaosSyscallConn is a chaosConn over a connection with a file descriptor.
type chaosSyscallConn struct{ *chaosConn }

func (c *chaosSyscallConn) SyscallConn() (syscall.RawConn, error) {
	return c.Conn.(syscall.Conn).SyscallConn()
}

func (c *chaosConn) NetConn() net.Conn { return c.Conn }

func (c *chaosConn) Write(b []byte) (int, error) {
	plan := c.e.active.Load()
	if !plan.connLayer || !(plan.latency || plan.failReads) {
		return c.Conn.Write(b)
	}
	cmds := parseRESPCommands(b)
	if plan.failReads && len(cmds) == 1 && cmds[0].isInterestRead() && plan.failRead() {
		// The read never reaches Redis, as when Redis is gone or answers
		// with an error before running it.
		if plan.errorReply != nil {
			c.e.conn.errorReplies.Add(1)
			c.pending.Store(&connFault{reply: plan.errorReply})
		} else {
			c.e.conn.drops.Add(1)
			c.pending.Store(&connFault{drop: true})
		}
		return len(b), nil
	}
	written := time.Now()
	n, err := c.Conn.Write(b)
	if err != nil || !plan.latency {
		return n, err
	}
	for _, cmd := range cmds {
		if plan.delays(cmd.name) {
			if d := plan.nextDelay(); d > 0 {
				c.e.conn.delays.Add(1)
				c.pending.Store(&connFault{until: written.Add(d)})
			}
			break // a pipeline is one round trip, delayed once
		}
	}
	return n, err
}

func (c *chaosConn) Read(b []byte) (int, error) {
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
	}
	if err := c.waitUntil(f.until); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

// waitUntil holds the reply back until t, as a slow network does: until the
// read deadline go-redis set, if that comes first, which then fails the read
// as a timeout; or until the connection is closed.
func (c *chaosConn) waitUntil(t time.Time) error {
	timedOut := false
	if ns := c.readDeadline.Load(); ns != 0 && ns < t.UnixNano() {
		t, timedOut = time.Unix(0, ns), true
	}
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-c.closed:
		return net.ErrClosed
	}
	if timedOut {
		return &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.ErrDeadlineExceeded}
	}
	return nil
}

func (c *chaosConn) SetDeadline(t time.Time) error {
	c.setReadDeadline(t)
	return c.Conn.SetDeadline(t)
}

func (c *chaosConn) SetReadDeadline(t time.Time) error {
	c.setReadDeadline(t)
	return c.Conn.SetReadDeadline(t)
}

func (c *chaosConn) setReadDeadline(t time.Time) {
	if t.IsZero() {
		c.readDeadline.Store(0)
	} else {
		c.readDeadline.Store(t.UnixNano())
	}
}

func (c *chaosConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	err := c.Conn.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil // a dropped connection closed itself already
	}
	return err
}

// respCommand is a command as go-redis writes it: its name, lower case, and
// its first argument.
type respCommand struct {
	name string
	key  string
	args int
}

func (c respCommand) isInterestRead() bool {
	return c.name == "get" && c.args == 2 && strings.HasPrefix(c.key, sessionKeyPrefix)
}

// parseRESPCommands reads the commands in one write: each an array of bulk
// strings. It stops at anything else, such as a command split across writes.
func parseRESPCommands(b []byte) []respCommand {
	var cmds []respCommand
	for len(b) > 0 {
		n, rest, ok := respLength(b, '*')
		if !ok {
			return cmds
		}
		b = rest
		cmd := respCommand{args: n}
		for i := range n {
			size, rest, ok := respLength(b, '$')
			if !ok || len(rest) < size+2 {
				return cmds
			}
			switch i {
			case 0:
				cmd.name = strings.ToLower(string(rest[:size]))
			case 1:
				cmd.key = string(rest[:size])
			}
			b = rest[size+2:]
		}
		cmds = append(cmds, cmd)
	}
	return cmds
}

// respLength reads a line such as "*2\r\n" or "$3\r\n" that starts with
// kind, and returns its number and what follows it.
func respLength(b []byte, kind byte) (int, []byte, bool) {
	end := bytes.Index(b, []byte("\r\n"))
	if len(b) == 0 || b[0] != kind || end < 0 {
		return 0, nil, false
	}
	n, err := strconv.Atoi(string(b[1:end]))
	if err != nil || n < 0 {
		return 0, nil, false
	}
	return n, b[end+2:], true
}
