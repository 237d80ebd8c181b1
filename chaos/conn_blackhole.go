package chaos

import (
	"context"
	"net"
	"os"
	"time"
)

// blackholeRead is a read whose reply never comes: a Redis process that is
// stopped (SIGSTOP, a paused VM, a process stuck in the kernel) or a peer
// behind a firewall that drops packets. The kernel still accepts
// connections and takes the bytes; nothing answers. The read waits for the
// deadline go-redis set, and then fails with a timeout, as a real one does;
// or for the connection's close; or for the end of the plan that injected
// it (Stop, an abort, the end of its duration), when the hole lifts at
// once, as for a process continued: the held command reaches Redis now and
// the read gets its real reply.
func (c *faultyConn) blackholeRead(f *connFault, b []byte) (int, error) {
	deadline, timesOut := time.Now().Add(blackholeWithoutDeadline), false
	if ns := c.readDeadline.Load(); ns != 0 {
		deadline, timesOut = time.Unix(0, ns), true
	}
	switch wait(context.Background(), f.plan, c.closed, deadline) {
	case errConnClosed:
		return 0, net.ErrClosed
	case errPlanEnded:
		if _, err := c.Conn.Write(f.held); err != nil {
			return 0, err
		}
		return c.Conn.Read(b)
	}
	if !timesOut {
		return 0, net.ErrClosed
	}
	return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.ErrDeadlineExceeded}
}

// blackholeWithoutDeadline bounds a blackholed read that has no deadline, a
// client configured to wait for ever: longer than any experiment runs, so
// that it is the plan's end that lifts it.
const blackholeWithoutDeadline = 25 * time.Hour
