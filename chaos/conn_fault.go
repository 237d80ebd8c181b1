package chaos

import (
	"bytes"
	"fmt"
	"math"
	"strings"
)

// What a read the connection layer fails gets, when it gets no error reply:
// the ways a real Redis, or the network to it, lets a client down. Each is
// decided once, by Write, for the round trip it writes; the next Read
// carries it out (conn_reset.go, conn_blackhole.go, conn_slow.go; the
// dropped connection is conn.go's).

// Connection faults (conn_fault).
const (
	ConnFaultEOF       = "eof"
	ConnFaultReset     = "reset"
	ConnFaultBlackhole = "blackhole"
	ConnFaultSlowReply = "slow_reply"
)

const (
	connFaultChoices  = "eof (the connection dropped, the default), reset (a TCP RST), blackhole (no reply until the read's deadline) or slow_reply (the reply trickles at slow_reply_bytes_per_second)"
	maxSlowReplyRate  = 1e9
	wantSlowReplyRate = "want bytes per second above 0, up to 1e9, such as 1000, with conn_fault slow_reply (0 or unset otherwise)"
)

// fail carries out the failure of the read b writes, counted already: an
// error reply, or conn_fault's. It returns what Write returns.
func (c *faultyConn) fail(p *plan, reply, b []byte) (int, error) {
	switch {
	case reply != nil:
		c.e.conn.errorReplies.Add(1)
		c.pending.Store(&connFault{reply: reply})
		return len(b), nil
	case p.config.ConnFault == ConnFaultReset:
		c.e.conn.resets.Add(1)
		c.pending.Store(&connFault{reset: true})
		return len(b), nil
	case p.config.ConnFault == ConnFaultBlackhole:
		// Held, not sent: a stopped server reads nothing, and the read
		// gets the real reply if the plan ends before its deadline.
		c.e.conn.blackholes.Add(1)
		c.pending.Store(&connFault{held: bytes.Clone(b), plan: p.live})
		return len(b), nil
	case p.config.ConnFault == ConnFaultSlowReply:
		// A saturated link delivers the command and slows the reply.
		c.e.conn.slowReplies.Add(1)
		c.slow = &slowReply{bytesPerSecond: p.config.SlowReplyBytesPerSecond, plan: p.live}
		return c.Conn.Write(b)
	}
	c.e.conn.drops.Add(1)
	c.pending.Store(&connFault{drop: true})
	return len(b), nil
}

// checkConnFault validates conn_fault after the layer, the experiment and
// error_reply are checked: a fault other than eof needs the connection
// layer and a failing experiment, and excludes an error reply, which would
// take its place unseen.
func checkConnFault(c *Config) (any, string) {
	c.ConnFault = strings.ToLower(strings.TrimSpace(c.ConnFault))
	switch c.ConnFault {
	case "", ConnFaultEOF:
		return nil, ""
	case ConnFaultReset, ConnFaultBlackhole, ConnFaultSlowReply:
	default:
		return c.ConnFault, "want " + connFaultChoices
	}
	switch {
	case c.Layer != LayerConnection:
		return c.ConnFault, fmt.Sprintf("conn_fault %s needs layer connection: it is done on the connections go-redis dials", c.ConnFault)
	case c.ErrorReply != "":
		return c.ConnFault, fmt.Sprintf("set one or the other: error_reply %s answers the failed read, conn_fault %s breaks it (unset error_reply, or conn_fault)", c.ErrorReply, c.ConnFault)
	case c.Experiment != "none" && !c.failsReads():
		return c.ConnFault, fmt.Sprintf("conn_fault %s needs experiment error or latency,error: it is what a failed read gets", c.ConnFault)
	}
	return nil, ""
}

func checkSlowReplyRate(c *Config) (any, string) {
	rate := c.SlowReplyBytesPerSecond
	switch {
	case math.IsNaN(rate) || rate < 0 || rate > maxSlowReplyRate:
		return rate, wantSlowReplyRate
	case c.ConnFault == ConnFaultSlowReply && rate == 0:
		return rate, "want bytes per second above 0 with conn_fault slow_reply, such as 1000"
	case c.ConnFault != ConnFaultSlowReply && rate != 0:
		return rate, "want it unset, or conn_fault slow_reply: it is the rate a slow reply trickles at"
	}
	return nil, ""
}
