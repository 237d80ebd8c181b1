package chaos

import (
	"context"
	"net"
	"os"
	"time"
)

// slowReply is a reply that trickles over a saturated link: small replies
// come nearly at once, big ones late, in proportion to their size, as
// through toxiproxy's bandwidth toxic. It lasts for the rest of the round
// trip: every read until the next write.
type slowReply struct {
	bytesPerSecond float64
	plan           context.Context // done: the rest of the reply comes at once
}

// slowRead reads what Redis sent, up to a tenth of a second's worth, and
// hands it over when the link would have carried it: len/rate after it
// arrived, each piece queued behind the one before, as the bandwidth toxic
// does. A read deadline go-redis set that comes first fails the read as a
// timeout; the end of the plan ends the trickle.
func (c *faultyConn) slowRead(b []byte) (int, error) {
	s := c.slow
	if s.plan.Err() != nil {
		c.slow = nil
		return c.Conn.Read(b)
	}
	piece := max(1, int(s.bytesPerSecond/10))
	n, err := c.Conn.Read(b[:min(len(b), piece)])
	if n == 0 {
		return n, err
	}
	due := time.Now().Add(time.Duration(float64(n) / s.bytesPerSecond * float64(time.Second)))
	timesOut := false
	if ns := c.readDeadline.Load(); ns != 0 && ns < due.UnixNano() {
		due, timesOut = time.Unix(0, ns), true
	}
	switch wait(context.Background(), s.plan, c.closed, due) {
	case errConnClosed:
		return 0, net.ErrClosed
	case errPlanEnded:
		c.slow = nil
		return n, err
	}
	if timesOut {
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.ErrDeadlineExceeded}
	}
	return n, err
}
