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
// keep-alive connections do not hold slots against new visitors: the longest
// idle one is closed to make room.
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

	// b finishes and goes idle; c is idle too. A new connection closes the
	// longer idle of the two, b, and is answered.
	io.WriteString(b, "\r\n")
	answered("b", rb)
	io.WriteString(c, request)
	answered("c again", rc)
	d, rd := dial()
	io.WriteString(d, request)
	answered("d", rd)
	closedByServer("b", b, rb)
	io.WriteString(c, request)
	answered("c, still open", rc)
}
