package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestPagesWithTheSessionIDAreNotStored: the session id is a bearer token
// for the visitor's interests, so no cache, shared or the browser's, may keep
// a page that shows it or a response that sets it: /search shows it, / and
// /reset set it.
func TestPagesWithTheSessionIDAreNotStored(t *testing.T) {
	app := startApp(t, nil)
	id := uuid.NewString()
	for _, r := range []struct {
		method, path, cookie, body string
	}{
		{"GET", "/", "", ""},
		{"GET", "/", sessionCookie + "=" + id, ""},
		{"GET", "/search", "", ""},
		{"GET", "/search?query=lamp", sessionCookie + "=" + id, ""},
		{"POST", "/search", sessionCookie + "=" + id, "query=desk"},
		{"GET", "/reset", sessionCookie + "=" + id, ""},
	} {
		contentType := ""
		if r.body != "" {
			contentType = "application/x-www-form-urlencoded"
		}
		resp := app.do(t, r.method, r.path, r.cookie, contentType, strings.NewReader(r.body))
		if got := resp.header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("%s %s (cookie %q): Cache-Control %q, want no-store", r.method, r.path, r.cookie, got)
		}
	}
	if got := app.get(t, "/style.css", "").header.Get("Cache-Control"); !strings.HasPrefix(got, "public") {
		t.Errorf("the stylesheet is Cache-Control %q, want it cacheable", got)
	}
	if resp := app.get(t, "/healthz", ""); resp.status != http.StatusOK {
		t.Errorf("/healthz = %d", resp.status)
	}
}

// TestConnectionCap runs with MAX_CONNS=2. Two connections in the middle of
// a request hold both slots: a third waits until one is done. Idle
// keep-alive connections do not hold slots against new visitors: an idle one
// is closed to make room, never one in the middle of a request.
func TestConnectionCap(t *testing.T) {
	app := startApp(t, map[string]string{"MAX_CONNS": "2"})
	addr := strings.TrimPrefix(app.url, "http://")
	dial := func() (net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}
	const request = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
	answered := func(name string, r *bufio.Reader) {
		t.Helper()
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("connection %s: %v", name, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("connection %s: status %d", name, resp.StatusCode)
		}
	}
	closedByServer := func(name string, c net.Conn, r *bufio.Reader) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(5 * time.Second)) // bounds a failure; a pass is at once
		if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
			t.Errorf("connection %s: read %v, want EOF: the server kept it open", name, err)
		}
	}

	// a and b are in the middle of their requests: their headers are not done.
	a, ra := dial()
	b, rb := dial()
	io.WriteString(a, strings.TrimSuffix(request, "\r\n"))
	io.WriteString(b, strings.TrimSuffix(request, "\r\n"))
	// c waits: no slot is free and none is idle. Its request is sent now, and
	// answered only after a's request is done and a, now idle, is closed.
	c, rc := dial()
	io.WriteString(c, request)
	io.WriteString(a, "\r\n")
	answered("a", ra)
	answered("c", rc)
	closedByServer("a", a, ra)

	// c is idle, b still in the middle of its request: a new connection
	// closes c, not b, and is answered; b's request is still answered.
	d, rd := dial()
	io.WriteString(d, request)
	answered("d", rd)
	closedByServer("c", c, rc)
	io.WriteString(b, "\r\n")
	answered("b", rb)
	io.WriteString(b, request)
	answered("b, still open", rb)
}

// TestConnLimitClosesTheLongestIdle: of several idle connections, the one
// idle longest is closed to make room.
func TestConnLimitClosesTheLongestIdle(t *testing.T) {
	l := newConnLimit(nil, 3)
	conns := make([]net.Conn, 3)
	peers := make([]net.Conn, 3)
	for i := range conns {
		conns[i], peers[i] = net.Pipe()
		t.Cleanup(func() { conns[i].Close(); peers[i].Close() })
	}
	l.trackState(conns[0], http.StateIdle)
	l.trackState(conns[1], http.StateIdle)
	l.trackState(conns[2], http.StateActive)
	l.trackState(conns[0], http.StateActive) // used again: now 1 is the longest idle
	l.trackState(conns[0], http.StateIdle)
	if !l.closeLongestIdle() {
		t.Fatal("no idle connection closed")
	}
	for i, want := range []bool{false, true, false} {
		conns[i].SetWriteDeadline(time.Now()) // an open pipe times out at once; a closed one says so
		_, err := conns[i].Write([]byte("x"))
		if closed := errors.Is(err, io.ErrClosedPipe); closed != want {
			t.Errorf("connection %d closed: %v, want %v", i, closed, want)
		}
	}
	l.trackState(conns[0], http.StateClosed)
	if l.closeLongestIdle() {
		t.Error("closed a connection with none idle")
	}
}
