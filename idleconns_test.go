package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkIdleConnections opens 5 000 keep-alive connections to the
// production binary, one GET /healthz on each, and leaves them open: the
// process's peak RSS must stay within the 30 MB budget, and every request
// must be answered. With MAX_CONNS=65536 (no effective cap) it shows what
// the cap saves; that run is not held to the budget.
//
//	flock /tmp/heavy.lock go test -run '^$' -bench IdleConnections -benchtime 1x .
func BenchmarkIdleConnections(b *testing.B) {
	binary := filepath.Join(b.TempDir(), "shopsession")
	if out, err := exec.Command("go", "build", "-trimpath", "-o", binary, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	for _, maxConns := range []string{"", "65536"} {
		name := "default"
		if maxConns != "" {
			name = "MAX_CONNS=" + maxConns
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				rssBefore, peak, answered := idleConnections(b, binary, maxConns, 5000)
				b.ReportMetric(float64(rssBefore)/1024, "MB-RSS-before")
				b.ReportMetric(float64(peak)/1024, "MB-peak-RSS")
				b.ReportMetric(float64(answered), "answered")
				if answered != 5000 {
					b.Errorf("%d of 5000 connections answered", answered)
				}
				if maxConns == "" && peak > 30<<10 {
					b.Errorf("peak RSS %d kB with 5000 idle connections, over the 30 MB budget", peak)
				}
			}
		})
	}
}

// idleConnections starts binary, opens n connections that each make one
// request and stay open, and returns the process's RSS before, its peak RSS
// (VmHWM, kB) and how many requests were answered.
func idleConnections(b *testing.B, binary, maxConns string, n int) (before, peak int64, answered int64) {
	logs := newLogBuffer()
	cmd := exec.Command(binary, onFreePorts...)
	cmd.Env = append(os.Environ(), "REDIS_URL="+testRedis.url())
	if maxConns != "" {
		cmd.Env = append(cmd.Env, "MAX_CONNS="+maxConns)
	}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	app := serving(b, logs)
	addr := strings.TrimPrefix(app.url, "http://")
	before = procStatus(b, cmd.Process.Pid, "VmRSS")

	var conns []net.Conn
	var mu sync.Mutex
	var ok atomic.Int64
	var wg sync.WaitGroup
	work := make(chan struct{})
	for range 32 {
		wg.Go(func() {
			for range work {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Error(err)
					continue
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
				io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					b.Error(err)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					ok.Add(1)
				}
			}
		})
	}
	for range n {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	peak = procStatus(b, cmd.Process.Pid, "VmHWM")
	b.Logf("MAX_CONNS=%q: %d connections, %d answered; RSS %d kB before, peak %d kB, %d kB now",
		maxConns, len(conns), ok.Load(), before, peak, procStatus(b, cmd.Process.Pid, "VmRSS"))
	for _, c := range conns {
		c.Close()
	}
	return before, peak, ok.Load()
}

// procStatus reads a kB field of /proc/<pid>/status.
func procStatus(b *testing.B, pid int, field string) int64 {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + field + `:\s+(\d+) kB`).FindSubmatch(status)
	if m == nil {
		b.Fatalf("/proc/%d/status has no %s", pid, field)
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return n
}
