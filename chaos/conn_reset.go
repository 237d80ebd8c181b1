package chaos

import (
	"net"
	"os"
	"syscall"
)

// resetRead is a read whose connection the peer reset: a Redis killed with
// unread data in its socket, a load balancer or a firewall dropping the
// flow, a middlebox that answers with RST. The socket is closed with
// SO_LINGER 0, so that Redis's end gets the RST too and the connection is
// gone for both, and the read fails as the kernel fails it:
// "read: connection reset by peer", ECONNRESET. go-redis treats it as a
// broken connection, as it does end of file: it closes it, and retries on a
// new one when MaxRetries allows it.
func (c *faultyConn) resetRead() (int, error) {
	local, remote := c.LocalAddr(), c.RemoteAddr()
	if tcp, ok := c.Conn.(*net.TCPConn); ok {
		tcp.SetLinger(0)
	}
	c.Conn.Close()
	return 0, &net.OpError{Op: "read", Net: "tcp", Source: local, Addr: remote, Err: os.NewSyscallError("read", syscall.ECONNRESET)}
}
