package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkShopUnderAdminBurst measures the shop's throughput (POST /search
// from 8 clients) while four clients loop on
// GET /debug/pprof/allocs?debug=1 on the admin listener, 3 s in all, in
// windows of 300 ms that alternate with windows without them: each window
// with them is held against the mean of the windows either side, which
// cancels most of the other engineers' load on the shared machine, whose
// drift over seconds is larger than what pprof costs. The loopers either ask
// again at once when refused (429) or wait the Retry-After they are given.
// The production binary, against the shared redis-server.
//
//	flock /tmp/heavy.lock go test -run '^$' -bench ShopUnderAdminBurst -benchtime 1x .
func BenchmarkShopUnderAdminBurst(b *testing.B) {
	binary := filepath.Join(b.TempDir(), "shopsession")
	if out, err := exec.Command("go", "build", "-trimpath", "-o", binary, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	const windows, window = 10, 300 * time.Millisecond
	for _, loopers := range []struct {
		name   string
		honour bool
	}{{"loopers-ask-again-at-once", false}, {"loopers-wait-Retry-After", true}} {
		b.Run(loopers.name, func(b *testing.B) {
			for b.Loop() {
				pid, shop, admin := startForBurst(b, binary)
				clients := make([]*http.Client, 8)
				for i := range clients {
					clients[i] = &http.Client{Timeout: 10 * time.Second}
				}
				burst := &adminBurst{url: admin + "/debug/pprof/allocs?debug=1", honour: loopers.honour}
				var without, with []throughput
				without = append(without, shopThroughput(b, pid, shop, clients, window, nil))
				for range windows {
					with = append(with, shopThroughput(b, pid, shop, clients, window, burst))
					without = append(without, shopThroughput(b, pid, shop, clients, window, nil))
				}
				ratios := make([]float64, windows)
				var searchesWith, searchesWithout, secondsWith, secondsWithout, cpuWith, cpuWithout float64
				for i, w := range with {
					ratios[i] = w.perSecond / ((without[i].perSecond + without[i+1].perSecond) / 2)
					searchesWith += float64(w.searches)
					secondsWith += w.seconds
					cpuWith += w.cpu
				}
				for _, w := range without {
					searchesWithout += float64(w.searches)
					secondsWithout += w.seconds
					cpuWithout += w.cpu
				}
				slices.Sort(ratios)
				median := (ratios[windows/2-1] + ratios[windows/2]) / 2
				b.ReportMetric(searchesWithout/secondsWithout, "req/s-without")
				b.ReportMetric(searchesWith/secondsWith, "req/s-with")
				b.ReportMetric(median, "median-ratio")
				// The process's CPU time in the windows with the loopers
				// beyond what their searches cost in the windows without.
				b.ReportMetric((cpuWith-searchesWith*cpuWithout/searchesWithout)/cpuWith, "admin-share-of-CPU")
				b.ReportMetric(float64(burst.served.Load()), "profiles-served")
				b.ReportMetric(float64(burst.refused.Load()), "profiles-refused")
				// Either figure alone moves by some 7 % between runs of the
				// same windows without loopers on the loaded machine; pprof
				// over its tenth moves both.
				if share := (cpuWith - searchesWith*cpuWithout/searchesWithout) / cpuWith; median < 0.9 && share > 0.1 {
					b.Errorf("with the loopers the shop served %.0f %% of its searches a second in the windows either side (median of %.2f), and the process spent %.0f %% of its CPU beyond its searches: want at least 90 %% and at most 10 %%",
						median*100, ratios, share*100)
				}
			}
		})
	}
}

// startForBurst starts binary and returns its process id and its shop's
// and admin listener's URLs; it stops when the benchmark ends.
func startForBurst(b *testing.B, binary string) (pid int, shop, admin string) {
	logs := newLogBuffer()
	cmd := exec.Command(binary, onFreePorts...)
	cmd.Env = append(os.Environ(), "REDIS_URL="+testRedis.url())
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	app := serving(b, logs)
	return cmd.Process.Pid, app.url, app.admin.url
}

// cpuSeconds is the user and system CPU time process pid has used.
func cpuSeconds(b *testing.B, pid int) float64 {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: utime and stime are the 12th and 13th, in clock ticks
	// of 1/100 s on Linux.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100
}

type throughput struct {
	perSecond float64
	searches  int64
	seconds   float64
	cpu       float64 // the process's CPU seconds meanwhile
}

// adminBurst is four clients looping on one admin URL.
type adminBurst struct {
	url             string
	honour          bool // wait the Retry-After of a 429
	served, refused atomic.Int64
}

func (a *adminBurst) loop(ctx context.Context) {
	client := &http.Client{}
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.url, nil)
		resp, err := client.Do(req)
		if err != nil {
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests {
			a.served.Add(1)
			continue
		}
		a.refused.Add(1)
		if seconds, err := strconv.Atoi(resp.Header.Get("Retry-After")); a.honour && err == nil {
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(seconds) * time.Second):
			}
		}
	}
}

// shopThroughput measures the shop's searches from clients over d, with
// burst looping on the admin listener meanwhile unless it is nil.
func shopThroughput(b *testing.B, pid int, shop string, clients []*http.Client, d time.Duration, burst *adminBurst) throughput {
	cpuBefore := cpuSeconds(b, pid)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	if burst != nil {
		for range 4 {
			wg.Go(func() { burst.loop(ctx) })
		}
	}
	var searches, failed atomic.Int64
	deadline := time.Now().Add(d)
	var shopWG sync.WaitGroup
	for i, client := range clients {
		shopWG.Go(func() {
			form := url.Values{"query": {"lamp"}}.Encode()
			for time.Now().Before(deadline) {
				req, _ := http.NewRequest(http.MethodPost, shop+"/search", strings.NewReader(form))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Cookie", fmt.Sprintf("%s=burst-%d", sessionCookie, i))
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
					continue
				}
				searches.Add(1)
			}
		})
	}
	start := time.Now()
	shopWG.Wait()
	elapsed := time.Since(start)
	cancel()
	wg.Wait()
	cpu := cpuSeconds(b, pid) - cpuBefore
	if n := failed.Load(); n > 0 {
		b.Errorf("%d searches failed", n)
	}
	return throughput{perSecond: float64(searches.Load()) / elapsed.Seconds(), searches: searches.Load(), seconds: elapsed.Seconds(), cpu: cpu}
}
