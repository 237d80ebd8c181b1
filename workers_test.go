package main

import (
	"bytes"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// servePool serves h through a worker pool on a loopback test server whose
// error log the test reads.
func servePool(t *testing.T, h http.HandlerFunc) (*workerPool, *httptest.Server, *syncBuffer) {
	t.Helper()
	pool := newWorkerPool(h)
	logs := &syncBuffer{}
	srv := httptest.NewUnstartedServer(pool)
	srv.Config.ErrorLog = log.New(logs, "", 0)
	srv.Start()
	t.Cleanup(func() { srv.Close(); pool.Close() })
	return pool, srv, logs
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
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
