package main

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// servePool serves h through a worker pool on a loopback test server whose
// error log the test reads.
func servePool(t *testing.T, h http.HandlerFunc) (*workerPool, *httptest.Server, *logBuffer) {
	t.Helper()
	pool := newWorkerPool(h)
	logs := newLogBuffer()
	srv := httptest.NewUnstartedServer(pool)
	srv.Config.ErrorLog = log.New(logs, "", 0)
	srv.Start()
	t.Cleanup(func() { srv.Close(); pool.Close() })
	return pool, srv, logs
}

// One request after another, each on a new connection as ab sends them, is
// served by the same worker: the point of the pool is that its stack stays.
func TestWorkerPoolReusesAWaitingWorker(t *testing.T) {
	pool, srv, _ := servePool(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for range 20 {
		resp, err := client.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "ok" {
			t.Fatalf("body %q, want ok", body)
		}
	}
	// The worker that served one request may not be waiting yet when the
	// next comes; a pool that did not reuse its workers would start 20.
	if n := pool.started.Load(); n > 4 {
		t.Errorf("%d workers started for 20 requests one after another, want 1 or a few", n)
	}
}

// A handler's panic reaches net/http as if the handler had run on the
// connection's goroutine: logged with the handler's own stack, the
// connection closed; ErrAbortHandler aborts quietly.
func TestWorkerPoolHandsPanicsBack(t *testing.T) {
	_, srv, logs := servePool(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/abort" {
			panic(http.ErrAbortHandler)
		}
		panicInHandler()
	})
	for _, path := range []string{"/abort", "/panic"} {
		resp, err := http.Get(srv.URL + path)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("%s: status %d, want the connection closed without a response", path, resp.StatusCode)
		}
	}
	got := logs.String()
	if strings.Count(got, "http: panic serving") != 1 {
		t.Fatalf("log has %d panics, want 1 (ErrAbortHandler is not logged):\n%s", strings.Count(got, "http: panic serving"), got)
	}
	for _, want := range []string{"the handler broke", "on the worker:", "panicInHandler"} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
}

func panicInHandler() { panic("the handler broke") }

// A handler that ends its goroutine with runtime.Goexit, as t.FailNow does,
// ends the request as it would without the pool: the connection closes, and
// nothing waits for a worker that is gone.
func TestWorkerPoolHandsGoexitBack(t *testing.T) {
	pool := newWorkerPool(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { runtime.Goexit() }))
	srv := httptest.NewUnstartedServer(pool)
	srv.Start()
	// http.Server's Close, not httptest's, which would wait for ever for
	// the request a broken pool never ends.
	t.Cleanup(func() { srv.Config.Close(); pool.Close() })
	client := &http.Client{Timeout: 5 * time.Second}
	start := time.Now()
	resp, err := client.Get(srv.URL)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("status %d, want the connection closed without a response", resp.StatusCode)
	}
	if errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 4*time.Second {
		t.Fatalf("the request waited %v: %v", time.Since(start), err)
	}
}

// Every page is counted before it reaches the client: the pool flushes a
// page once the middleware around the handler has returned, so a scrape
// right after a search sees it.
func TestPageCountedBeforeItIsSent(t *testing.T) {
	app := startApp(t, nil)
	const requests = "shopsession_http_requests_total"
	for i := range 30 {
		if resp := app.searchFor(t, "counted", "apples"); resp.status != http.StatusOK {
			t.Fatalf("search %d: %d", i, resp.status)
		}
		scrape(t, app).expect(t, float64(i+1), requests, "route", "/search", "method", "POST", "code", "200")
		if t.Failed() {
			return
		}
	}
}

// Every page carries its length, however long: a page of long, escaped
// interests (over net/http's 2 KB buffer, which used to make it chunked on
// HTTP/1.1) and its HEAD alike.
func TestPagesCarryTheirLength(t *testing.T) {
	app := startApp(t, nil)
	long := strings.Repeat("&<>", 66) // 198 characters, each escaped to 4 or 5 bytes
	var resp response
	for i := range 3 {
		resp = app.searchFor(t, "long", long[:197]+string(rune('a'+i)))
	}
	if resp.status != http.StatusOK || len(resp.body) < 2048 {
		t.Fatalf("%d, %d bytes: want a page over 2 KB", resp.status, len(resp.body))
	}
	if got := resp.header.Get("Content-Length"); got != strconv.Itoa(len(resp.body)) {
		t.Errorf("Content-Length %q for a page of %d bytes", got, len(resp.body))
	}
	get := app.do(t, http.MethodGet, "/search", sessionCookie+"=long", "", nil)
	head := app.do(t, http.MethodHead, "/search", sessionCookie+"=long", "", nil)
	if got := head.header.Get("Content-Length"); len(get.body) < 2048 || got != strconv.Itoa(len(get.body)) {
		t.Errorf("HEAD: Content-Length %q, GET's page has %d bytes", got, len(get.body))
	}
}
