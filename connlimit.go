package main

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// connLimit caps the connections the server holds at once, as
// golang.org/x/net/netutil.LimitListener does, and adds what that one
// lacks: when every slot is taken and one of the holders is an idle
// keep-alive connection, it closes the longest idle one to make room (nginx
// does the same with its keep-alive connections). Without that, clients that
// keep connections open and send nothing would hold every slot until the idle
// timeout and shut new visitors out. Connections over the cap wait in the
// kernel's accept queue, where they cost the process nothing, but for the one
// accepted connection that waits for a slot. Each listener has its own:
// MAX_CONNS for the shop's, ADMIN_MAX_CONNS for the admin listener's, so
// that neither can take the file descriptors the other needs.
type connLimit struct {
	net.Listener
	slots     chan struct{} // a token per open connection
	wentIdle  chan struct{} // signalled when a connection goes idle
	done      chan struct{} // closed by Close
	closeOnce sync.Once

	mu   sync.Mutex
	idle map[net.Conn]time.Time // idle connections, since when
}

func newConnLimit(ln net.Listener, n int) *connLimit {
	return &connLimit{
		Listener: ln,
		slots:    make(chan struct{}, n),
		wentIdle: make(chan struct{}, 1),
		done:     make(chan struct{}),
		idle:     map[net.Conn]time.Time{},
	}
}

// Accept accepts a connection and waits for a slot for it, closing the
// longest idle connection if no slot is free. Only then does it accept the
// next: the rest wait in the kernel. A slot is not taken before a connection
// needs it, so no idle connection is closed for one that may never come.
func (l *connLimit) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	for {
		select {
		case l.slots <- struct{}{}:
			return &limitedConn{Conn: c, release: func() { <-l.slots }}, nil
		default:
		}
		if l.closeLongestIdle() {
			continue
		}
		select {
		case l.slots <- struct{}{}:
			return &limitedConn{Conn: c, release: func() { <-l.slots }}, nil
		case <-l.wentIdle:
		case <-l.done:
			c.Close()
			return nil, net.ErrClosed
		}
	}
}

func (l *connLimit) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// trackState is the server's ConnState hook: it keeps the set of idle
// connections.
func (l *connLimit) trackState(c net.Conn, state http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if state != http.StateIdle {
		delete(l.idle, c)
		return
	}
	l.idle[c] = time.Now()
	select {
	case l.wentIdle <- struct{}{}:
	default:
	}
}

// closeLongestIdle closes the connection that has been idle longest and
// reports whether there was one. Its slot is free when it returns.
func (l *connLimit) closeLongestIdle() bool {
	l.mu.Lock()
	var oldest net.Conn
	var since time.Time
	for c, t := range l.idle {
		if oldest == nil || t.Before(since) {
			oldest, since = c, t
		}
	}
	delete(l.idle, oldest)
	l.mu.Unlock()
	if oldest == nil {
		return false
	}
	oldest.Close()
	return true
}

// limitedConn gives its slot back when it is first closed, by the server or
// by closeLongestIdle.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite passes the server's half-close through to the TCP connection.
// After an error reply (431, 400) the server half-closes and waits for the
// client before it closes; without this it would close at once, and the
// client, still sending, would get a reset instead of the reply.
func (c *limitedConn) CloseWrite() error {
	if tcp, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return tcp.CloseWrite()
	}
	return nil
}

// bodyReadTimeout bounds the reading of a request's body, counted from the
// end of its headers, as readHeaderTimeout bounds the headers. The server's
// ReadTimeout counts the whole request, so a client that sent its headers at
// once and then its body at a byte a second held a connection slot for 10 s:
// eight such clients kept every visitor of a MAX_CONNS=8 server waiting
// that long. The search form's body is a few hundred bytes and at most
// 64 KiB, which 2 s carries at 256 kbit/s.
const bodyReadTimeout = 2 * time.Second

// boundBodyRead sets a request's read deadline to bodyReadTimeout from now,
// if the request has a body. Its handler may not read it: the server drains
// up to 256 KiB of an unread body before it reuses the connection, under the
// same deadline. The server clears the deadline once the body is read, so
// the rest of the request is not bounded by it. A request without a body
// gets none: the server is already reading the connection, to notice a
// client that goes away, and a deadline would end that read and cancel the
// request's context.
func boundBodyRead(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 {
			// The server's own writer always supports it.
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyReadTimeout))
		}
		next.ServeHTTP(w, r)
	})
}
