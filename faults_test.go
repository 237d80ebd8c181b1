package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// loadStats is what a load of concurrent clients saw.
type loadStats struct {
	mu            sync.Mutex
	requests      int
	statuses      map[int]int
	transportErrs []error
	partialPages  int
	withRecs      int
	// firstRecAfter is the first response with a recommendation that
	// started after the mark; zero if none.
	mark, firstRecAfter time.Time
}

// runLoad keeps clients searching, each in its own session, until ctx ends.
func runLoad(ctx context.Context, url string, clients int, stats *loadStats) {
	transport := &http.Transport{MaxIdleConnsPerHost: clients}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				started := time.Now()
				req, _ := http.NewRequest(http.MethodPost, url+"/search", strings.NewReader(fmt.Sprintf("query=q%d", n%5)))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Cookie", fmt.Sprintf("%s=load-%d", sessionCookie, c))
				resp, err := client.Do(req)
				var body []byte
				if err == nil {
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				stats.mu.Lock()
				stats.requests++
				if err != nil {
					stats.transportErrs = append(stats.transportErrs, err)
				} else {
					stats.statuses[resp.StatusCode]++
					if !strings.HasSuffix(string(body), "</html>\n") {
						stats.partialPages++
					}
					if hasRecommendation(string(body)) {
						stats.withRecs++
						if !stats.mark.IsZero() && started.After(stats.mark) && stats.firstRecAfter.IsZero() {
							stats.firstRecAfter = time.Now()
						}
					}
				}
				stats.mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestRedisStoppedUnderLoad stops Redis while 16 clients search for 10 s and
// starts it again: no client may see an error or a broken page, and
// recommendations must come back within 2 s.
func TestRedisStoppedUnderLoad(t *testing.T) {
	server := ownRedisServer(t)
	goroutinesBefore := runtime.NumGoroutine()
	app := startApp(t, map[string]string{"REDIS_URL": server.url(), "REDIS_TIMEOUT": "500ms"})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stats := &loadStats{statuses: map[int]int{}}
	loadDone := make(chan struct{})
	go func() { runLoad(ctx, app.url, 16, stats); close(loadDone) }()

	// The fault is the scenario: Redis is down from 3 s to 6 s of the load.
	<-time.After(3 * time.Second)
	server.stop()
	stoppedAt := time.Now()
	stats.mu.Lock()
	requestsBeforeStop := stats.requests
	stats.mu.Unlock()
	<-time.After(3 * time.Second)
	if err := server.start(); err != nil {
		t.Fatal(err)
	}
	restartedAt := time.Now()
	stats.mu.Lock()
	stats.mark = restartedAt
	requestsWhileDown := stats.requests - requestsBeforeStop
	stats.mu.Unlock()
	<-loadDone

	t.Logf("%d requests by 16 clients in 10 s; %d while Redis was down for %v; statuses %v; %d with recommendations; first recommendation %v after Redis came back",
		stats.requests, requestsWhileDown, restartedAt.Sub(stoppedAt).Round(time.Millisecond), stats.statuses, stats.withRecs, stats.firstRecAfter.Sub(restartedAt).Round(time.Millisecond))
	if len(stats.transportErrs) > 0 {
		t.Errorf("%d requests failed in transport, first: %v", len(stats.transportErrs), stats.transportErrs[0])
	}
	if stats.statuses[http.StatusOK] != stats.requests {
		t.Errorf("statuses %v, want only 200", stats.statuses)
	}
	if stats.partialPages > 0 {
		t.Errorf("%d responses were not a full page", stats.partialPages)
	}
	if requestsWhileDown < 16 {
		t.Errorf("only %d requests while Redis was down: the outage was not exercised", requestsWhileDown)
	}
	if stats.firstRecAfter.IsZero() || stats.firstRecAfter.Sub(restartedAt) > 2*time.Second {
		t.Errorf("recommendations came back %v after Redis, want within 2s", stats.firstRecAfter.Sub(restartedAt))
	}
	if !strings.Contains(app.logs.String(), "redis error") {
		t.Errorf("the outage was not logged")
	}
	// The breaker opened, so the outage cost a page each only until then and
	// once per probe, not for every one of the requests while Redis was down.
	logs := app.logs.String()
	probes := strings.Count(logs, `msg="redis circuit breaker half-open`)
	if !breakerOpened.MatchString(logs) {
		t.Errorf("the breaker never opened")
	}
	if n, limit := redisErrors(logs), 5+2*16+probes; n > limit {
		t.Errorf("%d failed Redis operations logged for %d requests while Redis was down, want at most %d (%d probes)", n, requestsWhileDown, limit, probes)
	}

	// Nothing leaks: the app's connections to Redis close with it, and its
	// goroutines end.
	rdb := server.client(t)
	if n := connectedClients(t, rdb, func(int) bool { return true }); n > 21 {
		t.Errorf("%d clients connected to Redis under load, more than the pool's 20", n-1)
	}
	if err := app.stop(); err != nil {
		t.Fatal(err)
	}
	if n := connectedClients(t, rdb, func(n int) bool { return n == 1 }); n != 1 {
		t.Errorf("%d connections to Redis remain after the app stopped, want only the test's own", n)
	}
	waitForGoroutines(t, goroutinesBefore)
}

// connectedClients waits for Redis's count of client connections to settle
// (it learns of closed ones asynchronously) and returns it.
func connectedClients(t *testing.T, rdb *redis.Client, want func(int) bool) int {
	t.Helper()
	re := regexp.MustCompile(`connected_clients:(\d+)`)
	var n int
	deadline := time.Now().Add(5 * time.Second)
	for {
		m := re.FindStringSubmatch(rdb.Info(context.Background(), "clients").Val())
		if m == nil {
			t.Fatal("INFO clients has no connected_clients")
		}
		n, _ = strconv.Atoi(m[1])
		if want(n) || time.Now().After(deadline) {
			return n
		}
		runtime.Gosched()
	}
}

// waitForGoroutines fails the test if the goroutine count does not fall back
// to before within 5 s, and shows the extra goroutines.
func waitForGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			var stacks strings.Builder
			pprof.Lookup("goroutine").WriteTo(&stacks, 1)
			t.Errorf("%d goroutines, %d before the app started:\n%s", runtime.NumGoroutine(), before, stacks.String())
			return
		}
		runtime.Gosched()
	}
}
