//go:build chaos

package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSIGTERMDrainsInFlightRequests sends SIGTERM to a real process while 16
// clients wait for their pages: all 16 pages arrive whole, new connections
// are refused, and the process exits 0 within the drain limit.
func TestSIGTERMDrainsInFlightRequests(t *testing.T) {
	binary := filepath.Join(t.TempDir(), "shopsession-chaos")
	goBuild(t, ".", binary, "-tags", "chaos")
	// Each search waits 2 × 0.5 s in Redis: long enough to be caught mid-request.
	proc := startBinary(t, binary, "REDIS_URL="+testRedis.url(), "CHAOS=latency", "CHAOS_DELAY_SECONDS=0.5")
	app, addr := proc.testApp, strings.TrimPrefix(proc.url, "http://")

	const clients = 16
	type result struct {
		status int
		body   string
		err    error
	}
	results := make(chan result, clients)
	for c := range clients {
		go func() {
			req, _ := http.NewRequest(http.MethodPost, app.url+"/search", strings.NewReader("query=lamp"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Cookie", fmt.Sprintf("%s=drain-%d", sessionCookie, c))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				results <- result{err: err}
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			results <- result{status: resp.StatusCode, body: string(b), err: err}
		}()
	}
	// All 16 are inside the handler once 16 interests reads have started: each
	// search reads once. (Delays are no proof: a search that is through its
	// read is delayed again on its write, so 16 delays can come from 15.)
	deadline := time.Now().Add(10 * time.Second)
	for chaosStatusOf(t, app).Counters.Reads < clients {
		if time.Now().After(deadline) {
			t.Fatalf("the %d requests never all reached Redis", clients)
		}
		runtime.Gosched()
	}

	if err := proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	signalled := time.Now()
	app.logs.waitFor(t, regexp.MustCompile(`msg="stopped accepting connections`))
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Errorf("a new connection was accepted after SIGTERM")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("a new connection failed with %v, want connection refused", err)
	}

	for range clients {
		r := <-results
		if r.err != nil || r.status != http.StatusOK || !hasRecommendation(r.body) || !strings.HasSuffix(r.body, "</html>\n") {
			t.Errorf("an in-flight request got status %d, err %v, full page with recommendation: %v", r.status, r.err, strings.HasSuffix(r.body, "</html>\n") && hasRecommendation(r.body))
		}
	}
	select {
	case err := <-proc.exited:
		if err != nil {
			t.Errorf("the process ended with %v, want exit status 0", err)
		}
		t.Logf("exited %v after SIGTERM with %d requests in flight", time.Since(signalled).Round(time.Millisecond), clients)
	case <-time.After(shutdownGrace(2*time.Second) + 2*time.Second):
		t.Fatalf("the process did not exit within the %v drain limit", shutdownGrace(2*time.Second))
	}
}

// TestSIGTERMWaitsForTheLongestRequest: a search may take two Redis
// operations of just under REDIS_TIMEOUT each. SIGTERM while one is under way
// must still give its page and exit 0, however long REDIS_TIMEOUT is.
func TestSIGTERMWaitsForTheLongestRequest(t *testing.T) {
	binary := filepath.Join(t.TempDir(), "shopsession-chaos")
	goBuild(t, ".", binary, "-tags", "chaos")
	// The search's read and write wait 5.5 s each: longer together than the
	// 10 s the drain used to allow. Nothing else is delayed, so the first
	// delay is the search's.
	proc := startBinary(t, binary, "REDIS_URL="+testRedis.url(), "REDIS_TIMEOUT=6s",
		"CHAOS=latency", "CHAOS_DELAY_SECONDS=5.5", "CHAOS_COMMANDS=get,evalsha")
	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, proc.url+"/search", strings.NewReader("query=lamp"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Cookie", sessionCookie+"=longest")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- result{status: resp.StatusCode, body: string(b), err: err}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for chaosStatusOf(t, proc.testApp).Counters.DelaysInjected < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the search never reached Redis")
		}
		runtime.Gosched()
	}
	if err := proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	signalled := time.Now()
	r := <-done
	if r.err != nil || r.status != http.StatusOK || !hasRecommendation(r.body) {
		t.Errorf("the in-flight search got status %d, err %v, recommendation %v; log:\n%s", r.status, r.err, hasRecommendation(r.body), proc.logs.String())
	}
	if err := <-proc.exited; err != nil {
		t.Errorf("the process ended with %v, want exit status 0; log:\n%s", err, proc.logs.String())
	}
	t.Logf("exited %v after SIGTERM", time.Since(signalled).Round(time.Millisecond))
}
