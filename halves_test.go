package main

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"example.com/shopsession/internal/redistest"
)

// A Redis that answers reads and refuses writes: a replica, a full server
// under noeviction, writes paused. The store serves the half that works.

// refusingWrites is a Redis whose reads answer and whose writes do not, with
// the session stored holding ["Bananas"].
type refusingWrites struct {
	name string
	// start returns the URL the app uses, after storing the session through
	// the admin client it is given.
	start func(t *testing.T, store func(admin *redis.Client)) string
}

var writeRefusals = []refusingWrites{
	{"replica", func(t *testing.T, store func(*redis.Client)) string {
		primary := ownRedisServer(t)
		admin := primary.client(t)
		store(admin)
		replica, err := startRedisServer("--replicaof", "127.0.0.1", strconv.Itoa(primary.port()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(replica.stop)
		// WAIT returns once the replica has everything written before it.
		if n, err := admin.Do(context.Background(), "WAIT", 1, 10000).Int(); err != nil || n != 1 {
			t.Fatalf("WAIT for the replica = %d, %v", n, err)
		}
		return replica.url()
	}},
	{"full under noeviction", func(t *testing.T, store func(*redis.Client)) string {
		server := &redisServer{redistest.Own(t, "--maxmemory-policy", "noeviction")}
		admin := server.client(t)
		store(admin)
		// 1 byte: every write is refused with OOM, every read answers.
		if err := admin.ConfigSet(context.Background(), "maxmemory", "1").Err(); err != nil {
			t.Fatal(err)
		}
		return server.url()
	}},
}

// storeBananas stores ["Bananas"] as session id's interests.
func storeBananas(t *testing.T, id string) func(*redis.Client) {
	return func(admin *redis.Client) {
		if err := admin.Set(context.Background(), sessionKeyPrefix+id, `["Bananas"]`, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFailedWriteShowsWhatWasRead: a visitor whose ["Bananas"] is in Redis
// searches for Apples on a Redis that refuses the write. The page lists
// Bananas, recommends, and says the search was not remembered.
func TestFailedWriteShowsWhatWasRead(t *testing.T) {
	for _, r := range writeRefusals {
		t.Run(r.name, func(t *testing.T) {
			id := uuid.NewString()
			app := startApp(t, map[string]string{"REDIS_URL": r.start(t, storeBananas(t, id)), "BREAKER_COOLDOWN": "10m"})
			for n := range 2 * 5 { // past the breaker's threshold: the write is refused, then skipped
				resp := app.searchFor(t, id, "Apples")
				if got := interestsOn(resp.body); resp.status != http.StatusOK || !slices.Equal(got, []string{"Bananas"}) ||
					!hasRecommendation(resp.body) || !strings.Contains(resp.body, `id="not-remembered"`) {
					t.Fatalf("search %d: status %d, interests %q, recommendation %v, not-remembered note %v; want [Bananas], a recommendation and the note",
						n+1, resp.status, got, hasRecommendation(resp.body), strings.Contains(resp.body, `id="not-remembered"`))
				}
			}
			// A search of something already remembered needs no note.
			if resp := app.searchFor(t, id, "Bananas"); strings.Contains(resp.body, `id="not-remembered"`) {
				t.Errorf("searching again for a remembered interest says it was not remembered")
			}
		})
	}
}

// totalConnections is how many connections the server has accepted since it
// started.
func totalConnections(t *testing.T, rdb *redis.Client) int {
	t.Helper()
	m := regexp.MustCompile(`total_connections_received:(\d+)`).FindStringSubmatch(rdb.Info(context.Background(), "stats").Val())
	if m == nil {
		t.Fatal("INFO stats has no total_connections_received")
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// searchInParallel has clients search pages times each in sessions of their
// own, each remembering a new query, and fails the test on a page that is not
// a full 200.
func searchInParallel(t *testing.T, app *testApp, prefix string, clients, pages int) {
	t.Helper()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for n := range pages {
				resp := app.searchFor(t, fmt.Sprint(prefix, c), fmt.Sprint("q", n))
				if resp.status != http.StatusOK || !strings.HasSuffix(resp.body, "</html>\n") {
					t.Errorf("status %d, full page %v", resp.status, strings.HasSuffix(resp.body, "</html>\n"))
				}
			}
		})
	}
	wg.Wait()
}

// TestRefusedWritesCostNoConnections: go-redis drops the connection a
// READONLY reply came on, so every refused write cost a new one. The breaker
// stops the writes after a run of refusals: the connections the app opens
// are bounded by that run, and once the breaker is open, 100 more searches
// send no write and open none beyond the pool's growth to one per client.
func TestRefusedWritesCostNoConnections(t *testing.T) {
	const clients, pages, failures = 4, 25, 5
	primary := ownRedisServer(t)
	replica, err := startRedisServer("--replicaof", "127.0.0.1", strconv.Itoa(primary.port()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(replica.stop)
	rdb := replica.client(t)
	app := startApp(t, map[string]string{"REDIS_URL": replica.url(), "BREAKER_FAILURES": strconv.Itoa(failures), "BREAKER_COOLDOWN": "10m"})

	before := totalConnections(t, rdb)
	searchInParallel(t, app, "readonly-a-", clients, pages)
	opened := totalConnections(t, rdb)
	refused := strings.Count(app.logs.String(), `msg="redis error READONLY`)
	searchInParallel(t, app, "readonly-b-", clients, pages)
	after := totalConnections(t, rdb)
	t.Logf("%d searches: %d new connections while the breaker opened, %d after; %d refused writes logged",
		2*clients*pages, opened-before, after-opened, refused)
	// Each refused write before the breaker opened (a run as long as the
	// threshold plus those in flight) replaced its connection; the pool grew
	// to one per client.
	if limit := failures + 2*clients + clients; opened-before > limit {
		t.Errorf("%d new connections for %d searches while the breaker opened, want at most %d", opened-before, clients*pages, limit)
	}
	// The pool may still grow to one connection per client.
	if after-opened > clients {
		t.Errorf("%d new connections for %d searches with the breaker open, want at most %d", after-opened, clients*pages, clients)
	}
	if limit := failures + 2*clients; refused > limit {
		t.Errorf("%d refused writes logged, want at most %d", refused, limit)
	}
	if n := strings.Count(app.logs.String(), `msg="redis error READONLY`); n != refused {
		t.Errorf("%d writes were refused with the breaker open, want none", n-refused)
	}
}

// TestSlowWritesOpenTheBreaker: CLIENT PAUSE WRITE holds every write (as a
// failover does) while reads answer. Writes that wait past REDIS_TIMEOUT
// open the breaker although every read succeeds: after a run as long as the
// threshold plus those in flight, no page waits, and each still lists what
// was read.
func TestSlowWritesOpenTheBreaker(t *testing.T) {
	const clients, pages, failures = 4, 10, 5
	server := ownRedisServer(t)
	admin := server.client(t)
	ctx := context.Background()
	for c := range clients {
		storeBananas(t, fmt.Sprint("paused-", c))(admin)
	}
	app := startApp(t, map[string]string{"REDIS_URL": server.url(), "REDIS_TIMEOUT": "200ms",
		"BREAKER_FAILURES": strconv.Itoa(failures), "BREAKER_COOLDOWN": "10m"})
	if err := admin.Do(ctx, "CLIENT", "PAUSE", 60000, "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Do(ctx, "CLIENT", "UNPAUSE") })

	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for range pages {
				resp := app.searchFor(t, fmt.Sprint("paused-", c), "Apples")
				if got := interestsOn(resp.body); resp.status != http.StatusOK || !slices.Equal(got, []string{"Bananas"}) {
					t.Errorf("status %d, interests %q; want [Bananas]", resp.status, got)
				}
			}
		})
	}
	wg.Wait()
	logs := app.logs.String()
	waited := strings.Count(logs, `op=write`)
	opened := len(breakerOpened.FindAllString(logs, -1))
	t.Logf("%d of %d writes waited for the timeout; the breaker opened %d times", waited, clients*pages, opened)
	if opened != 1 {
		t.Errorf("the breaker opened %d times, want once", opened)
	}
	if limit := failures + 2*clients; waited > limit {
		t.Errorf("%d of %d writes waited for REDIS_TIMEOUT, want at most %d", waited, clients*pages, limit)
	}
}

// breakerClosed matches the line the store logs each time a breaker closes.
var breakerClosed = regexp.MustCompile(`msg="redis circuit breaker closed`)

// TestReadyzNeedsSessionsServed: a Redis that answers PING but refuses every
// write is not ready, and /readyz's check, which probes a breaker as any
// operation does, never closes the breaker while writes fail.
func TestReadyzNeedsSessionsServed(t *testing.T) {
	paused := refusingWrites{"writes paused", func(t *testing.T, store func(*redis.Client)) string {
		server := ownRedisServer(t)
		admin := server.client(t)
		store(admin)
		ctx := context.Background()
		if err := admin.Do(ctx, "CLIENT", "PAUSE", 60000, "WRITE").Err(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { admin.Do(ctx, "CLIENT", "UNPAUSE") })
		return server.url()
	}}
	for _, r := range append(slices.Clone(writeRefusals), paused) {
		t.Run(r.name, func(t *testing.T) {
			id := uuid.NewString()
			app := startApp(t, map[string]string{"REDIS_URL": r.start(t, storeBananas(t, id)), "REDIS_TIMEOUT": "200ms",
				"BREAKER_FAILURES": "3", "BREAKER_COOLDOWN": "10ms"})
			for n := range 20 {
				app.searchFor(t, id, fmt.Sprint("q", n))
				if resp := app.get(t, "/readyz", ""); resp.status != http.StatusOK || !strings.HasPrefix(resp.body, "degraded") {
					t.Fatalf("round %d: GET /readyz = %d %q, want 200 degraded", n, resp.status, resp.body)
				}
			}
			logs := app.logs.String()
			if !breakerOpened.MatchString(logs) {
				t.Errorf("the breaker never opened")
			}
			if n := len(breakerClosed.FindAllString(logs, -1)); n > 0 {
				t.Errorf("the breaker closed %d times while writes were refused", n)
			}
		})
	}
}
