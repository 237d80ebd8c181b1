package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSlowBodyFreesItsSlot runs with MAX_CONNS=8: eight clients send their
// headers at once and then their bodies at 1 byte/s, four to POST /search
// (one of them chunked) and four to GET /, whose handler does not read the
// body but whose connection the server drains before reusing it. They hold
// every slot. A new visitor must be answered once the body's time is up, not
// after the 10 s the whole request may take; each POST gets 408 with one
// line, and each GET's connection is closed.
func TestSlowBodyFreesItsSlot(t *testing.T) {
	app := startApp(t, map[string]string{"MAX_CONNS": "8"})
	addr := strings.TrimPrefix(app.url, "http://")
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })

	type outcome struct {
		name   string
		status int
		body   string
		err    error
		after  time.Duration // from the headers to the connection's end
	}
	outcomes := make(chan outcome, 8)
	slowClient := func(name, head, body string) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := io.WriteString(c, head); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		// One byte a second, half a second off the whole seconds at which
		// the server's deadline falls, so that no byte arrives just as the
		// server closes and turns its reply into a reset.
		go func() {
			for i := 0; i < len(body); i++ {
				select {
				case <-time.After(time.Until(start.Add(time.Duration(i)*time.Second + time.Second/2))):
				case <-done:
					return
				}
				if _, err := c.Write([]byte{body[i]}); err != nil {
					return // the server has closed the connection
				}
			}
		}()
		go func() {
			o := outcome{name: name}
			r := bufio.NewReader(c)
			resp, err := http.ReadResponse(r, nil)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				o.status, o.body = resp.StatusCode, string(b)
				_, err = r.ReadByte() // the server closes the connection
				if err == io.EOF {
					err = nil
				} else if err == nil {
					err = fmt.Errorf("the server kept the connection open")
				}
			}
			o.err, o.after = err, time.Since(start)
			outcomes <- o
		}()
	}
	const body = "query=lamp&pad=" + "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	for i := range 3 {
		slowClient(fmt.Sprintf("POST %d", i), fmt.Sprintf("POST /search HTTP/1.1\r\nHost: x\r\nCookie: sessionID=slow-%d\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", i, formMediaType, len(body)), body)
	}
	chunk := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(body), body)
	slowClient("POST chunked", "POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: "+formMediaType+"\r\nTransfer-Encoding: chunked\r\n\r\n", chunk)
	for i := range 4 {
		slowClient(fmt.Sprintf("GET %d", i), fmt.Sprintf("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", len(body)), body)
	}

	// The kernel hands connections to the server in the order they came, so
	// the visitor's waits behind the eight.
	visitor, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer visitor.Close()
	asked := time.Now()
	io.WriteString(visitor, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(visitor), nil)
	waited := time.Since(asked)
	if err != nil {
		t.Fatalf("the visitor got no answer after %v: %v", waited, err)
	}
	resp.Body.Close()
	t.Logf("with eight bodies at 1 byte/s holding every slot, a new visitor waited %.2f s for /healthz", waited.Seconds())
	if resp.StatusCode != http.StatusOK || waited > 2*bodyReadTimeout {
		t.Errorf("the visitor got %d after %.2f s, want 200 within %v", resp.StatusCode, waited.Seconds(), 2*bodyReadTimeout)
	}

	for range 8 {
		o := <-outcomes
		t.Logf("%s: %d %q after %.2f s, %v", o.name, o.status, truncate(o.body), o.after.Seconds(), o.err)
		if o.err != nil {
			t.Errorf("%s: %v after %.2f s", o.name, o.err, o.after.Seconds())
		}
		want := http.StatusOK
		if strings.HasPrefix(o.name, "POST") {
			want = http.StatusRequestTimeout
			if strings.Count(o.body, "\n") != 1 {
				t.Errorf("%s: body %q, want one line", o.name, o.body)
			}
		}
		if o.status != want || o.after > 2*bodyReadTimeout {
			t.Errorf("%s: %d, connection closed after %.2f s; want %d, closed within %v", o.name, o.status, o.after.Seconds(), want, 2*bodyReadTimeout)
		}
	}
}
