package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestClusterDownIsNotReady: a cluster in CLUSTERDOWN (every node has
// forgotten slot 0, and full coverage is required) answers PING on every
// node and refuses every session. /readyz says degraded, and its check never
// closes the breaker, however often it comes.
func TestClusterDownIsNotReady(t *testing.T) {
	c, err := startRedisCluster()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.stop)
	app := startApp(t, map[string]string{"REDIS_URL": c.url(), "REDIS_TIMEOUT": "500ms",
		"BREAKER_FAILURES": "3", "BREAKER_COOLDOWN": "10ms"})
	ctx := context.Background()
	for _, node := range c.nodes {
		rdb := node.client(t)
		if err := rdb.ConfigSet(ctx, "cluster-require-full-coverage", "yes").Err(); err != nil {
			t.Fatal(err)
		}
		if err := rdb.Do(ctx, "CLUSTER", "DELSLOTS", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, node := range c.nodes {
		if err := node.client(t).Get(ctx, "any").Err(); err == nil || !strings.HasPrefix(err.Error(), "CLUSTERDOWN") {
			t.Fatalf("GET on %s: %v, want CLUSTERDOWN", node.addr(), err)
		}
	}

	ready := 0
	for n := range 30 {
		app.searchFor(t, fmt.Sprint("down-", n%4), "lamp")
		if resp := app.get(t, "/readyz", ""); !strings.HasPrefix(resp.body, "degraded") {
			ready++
		}
	}
	logs := app.logs.String()
	closed := len(breakerClosed.FindAllString(logs, -1))
	t.Logf("30 rounds of a search and /readyz: ready %d times, the breaker opened %d times and closed %d",
		ready, len(breakerOpened.FindAllString(logs, -1)), closed)
	if ready > 0 || closed > 0 {
		t.Errorf("/readyz said ready %d times and the breaker closed %d times on a cluster that serves no session", ready, closed)
	}
}

// groupTimes collects the page times of one group of sessions.
type groupTimes struct {
	mu    sync.Mutex
	times []time.Duration
}

func (g *groupTimes) add(d time.Duration) {
	g.mu.Lock()
	g.times = append(g.times, d)
	g.mu.Unlock()
}

func (g *groupTimes) String() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.times) == 0 {
		return "no pages"
	}
	sorted := slices.Clone(g.times)
	slices.Sort(sorted)
	var sum time.Duration
	for _, d := range sorted {
		sum += d
	}
	return fmt.Sprintf("%d pages, mean %v, p50 %v, p99 %v", len(sorted), (sum / time.Duration(len(sorted))).Round(10*time.Microsecond),
		sorted[len(sorted)/2].Round(10*time.Microsecond), sorted[len(sorted)*99/100].Round(10*time.Microsecond))
}

// TestClusterDeadNodeFailsFast kills one master of three. Its sessions'
// operations stop reaching it after a run as long as the breaker's threshold
// plus those in flight, although the other masters' sessions succeed all
// along; those keep their recommendations on every page.
func TestClusterDeadNodeFailsFast(t *testing.T) {
	const perGroup, pages, failures = 4, 20, 5
	c, err := startRedisCluster()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.stop)
	app := startApp(t, map[string]string{"REDIS_URL": c.url(), "REDIS_TIMEOUT": "500ms",
		"BREAKER_FAILURES": fmt.Sprint(failures), "BREAKER_COOLDOWN": "10m"})
	rdb := c.client(t)
	ctx := context.Background()
	killed := c.nodes[0]

	var dead, live []string
	for i := 0; (len(dead) < perGroup || len(live) < perGroup) && i < 10000; i++ {
		id := fmt.Sprint("node-", i)
		master, err := rdb.MasterForKey(ctx, sessionKeyPrefix+id)
		if err != nil {
			t.Fatal(err)
		}
		if onKilled := master.Options().Addr == killed.addr(); onKilled && len(dead) < perGroup {
			dead = append(dead, id)
		} else if !onKilled && len(live) < perGroup {
			live = append(live, id)
		}
	}
	for _, id := range append(slices.Clone(dead), live...) {
		if resp := app.searchFor(t, id, "apple"); !hasRecommendation(resp.body) {
			t.Fatalf("session %s: no recommendation before the kill", id)
		}
	}
	killed.stop()

	// The live nodes' sessions search all the while the dead node's do.
	var deadTimes, liveTimes groupTimes
	deadDone := make(chan struct{})
	search := func(id string, n int, times *groupTimes, live bool) {
		start := time.Now()
		resp := app.searchFor(t, id, fmt.Sprint("q", n))
		times.add(time.Since(start))
		if resp.status != http.StatusOK || !strings.HasSuffix(resp.body, "</html>\n") || hasRecommendation(resp.body) != live {
			t.Errorf("session %s (live node: %v): status %d, recommendation %v", id, live, resp.status, hasRecommendation(resp.body))
		}
	}
	var deadWG, liveWG sync.WaitGroup
	started := time.Now()
	for _, id := range live {
		liveWG.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-deadDone:
					if n >= pages {
						return
					}
				default:
				}
				search(id, n, &liveTimes, true)
			}
		})
	}
	for _, id := range dead {
		deadWG.Go(func() {
			for n := range pages {
				search(id, n, &deadTimes, false)
			}
		})
	}
	deadWG.Wait()
	close(deadDone)
	liveWG.Wait()
	took := time.Since(started)

	logs := app.logs.String()
	failedOn := func(ids []string) (n int) {
		for _, id := range ids {
			n += strings.Count(logs, "session="+loggedSession(id))
		}
		return n
	}
	t.Logf("%v; dead node's sessions: %s, %d failed operations logged; live nodes' sessions: %s, %d failed",
		took.Round(time.Millisecond), &deadTimes, failedOn(dead), &liveTimes, failedOn(live))
	if n, limit := failedOn(dead), failures+2*perGroup; n > limit {
		t.Errorf("%d of the dead node's %d searches reached it and failed, want at most %d", n, perGroup*pages, limit)
	}
	if n := failedOn(live); n > 0 {
		t.Errorf("%d operations of the live nodes' sessions failed", n)
	}
	if resp := app.get(t, "/readyz", ""); !strings.HasPrefix(resp.body, "degraded") {
		t.Errorf("GET /readyz with a master dead = %q, want degraded", resp.body)
	}
}
