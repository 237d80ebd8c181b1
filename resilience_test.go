package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
)

// TestReadyzTellsNoInternals: with Redis refusing connections or refusing
// the password, /readyz keeps the instance in rotation (200) and says it is
// degraded, without the dial address, the Redis error or its reply text,
// which are for the log, not for whoever can reach the port.
func TestReadyzTellsNoInternals(t *testing.T) {
	const password = "s3cretPW"
	server, err := startRedisServer("--requirepass", password)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(server.stop)
	for _, tc := range []struct {
		name     string
		redisURL string
		prepare  func()
	}{
		{"wrong password", "redis://:wrong-" + password + "@" + server.addr() + "/0", func() {}},
		{"stopped", "redis://:" + password + "@" + server.addr() + "/0", server.stop},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := startApp(t, map[string]string{"REDIS_URL": tc.redisURL})
			tc.prepare()
			resp := app.get(t, "/readyz", "")
			if resp.status != http.StatusOK || !strings.HasPrefix(resp.body, "degraded") {
				t.Errorf("GET /readyz = %d %q, want 200 and a body saying degraded", resp.status, resp.body)
			}
			for _, internal := range []string{strconv.Itoa(server.port()), "127.0.0.1", "dial", "refused", "WRONGPASS", "NOAUTH", "password", password, "redis:"} {
				if strings.Contains(resp.body, internal) {
					t.Errorf("GET /readyz tells %q: %q", internal, resp.body)
				}
			}
		})
	}
}

func TestBreakerSettings(t *testing.T) {
	cfg, err := parseConfig(nil, mapGetenv(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.breaker != (breakerSettings{failures: 5, cooldown: 500 * time.Millisecond}) {
		t.Errorf("default breaker settings = %+v", cfg.breaker)
	}
	cfg, err = parseConfig([]string{"-breaker-failures", "9"}, mapGetenv(map[string]string{"BREAKER_FAILURES": "3", "BREAKER_COOLDOWN": "2s"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.breaker != (breakerSettings{failures: 9, cooldown: 2 * time.Second}) {
		t.Errorf("breaker settings from -breaker-failures 9 and BREAKER_COOLDOWN=2s = %+v", cfg.breaker)
	}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{env: map[string]string{"BREAKER_FAILURES": "2"}, want: `invalid BREAKER_FAILURES "2": want a whole number from 3 to 1000`},
		{env: map[string]string{"BREAKER_FAILURES": "0"}, want: `invalid BREAKER_FAILURES "0"`},
		{env: map[string]string{"BREAKER_FAILURES": "-5"}, want: `invalid BREAKER_FAILURES "-5"`},
		{env: map[string]string{"BREAKER_FAILURES": "1001"}, want: `invalid BREAKER_FAILURES "1001"`},
		{env: map[string]string{"BREAKER_FAILURES": "99999999999"}, want: `invalid BREAKER_FAILURES "99999999999"`},
		{args: []string{"-breaker-failures", "five"}, want: `invalid -breaker-failures "five"`},
		{env: map[string]string{"BREAKER_COOLDOWN": "1"}, want: `invalid BREAKER_COOLDOWN "1": want a duration from 10ms to 10m`},
		{env: map[string]string{"BREAKER_COOLDOWN": "1ms"}, want: `invalid BREAKER_COOLDOWN "1ms"`},
		{env: map[string]string{"BREAKER_COOLDOWN": "-1s"}, want: `invalid BREAKER_COOLDOWN "-1s"`},
		{args: []string{"-breaker-cooldown", "1h"}, want: `invalid -breaker-cooldown "1h"`},
	} {
		_, err := parseConfig(tc.args, mapGetenv(tc.env), io.Discard)
		var usage usageError
		if !errors.As(err, &usage) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("env %v args %q: error %q, want one usage line containing %q", tc.env, tc.args, err, tc.want)
		}
	}
	var help bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, mapGetenv(nil), &help, io.Discard); err != nil {
		t.Fatalf("run -h = %v", err)
	}
	for _, name := range []string{"-breaker-failures", "BREAKER_FAILURES", "-breaker-cooldown", "BREAKER_COOLDOWN"} {
		if !strings.Contains(help.String(), name) {
			t.Errorf("-h does not mention %s", name)
		}
	}
}

// breakerOpened matches the line the store logs each time the breaker opens.
var breakerOpened = regexp.MustCompile(`msg="redis circuit breaker open`)

// redisErrors counts the failed Redis operations the app logged: each is an
// operation that reached Redis, or tried to, and waited for its answer.
func redisErrors(logs string) int { return strings.Count(logs, `msg="redis error `) }

// searchConcurrently has clients search pages times each, each client in its
// own session, and fails the test on any response that is not a full page
// without recommendations.
func searchConcurrently(t *testing.T, app *testApp, clients, pages int) {
	t.Helper()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for n := range pages {
				resp := app.searchFor(t, fmt.Sprintf("client-%d", c), fmt.Sprint("q", n))
				if resp.status != http.StatusOK || hasRecommendation(resp.body) || !strings.HasSuffix(resp.body, "</html>\n") {
					t.Errorf("status %d, recommendation %v, full page %v; want a full page without recommendations",
						resp.status, hasRecommendation(resp.body), strings.HasSuffix(resp.body, "</html>\n"))
				}
			}
		})
	}
	wg.Wait()
}

// TestBreakerOpensWhenRedisFails: Redis stopped (connections refused) or
// refusing every command (NOAUTH): 16 clients' 800 searches all get a full
// page, the breaker opens once, and only the operations before it opened and
// those in flight then reach Redis; the log gets one line for the breaker, not
// one per page. When Redis is back, so are recommendations.
func TestBreakerOpensWhenRedisFails(t *testing.T) {
	const clients, pages, failures = 16, 50, 5
	for _, tc := range []struct {
		name string
		fail func(server *redisServer, admin *redis.Client)
	}{
		{"stopped", func(server *redisServer, _ *redis.Client) { server.stop() }},
		{"refusing commands", func(_ *redisServer, admin *redis.Client) {
			// Every command of a new connection gets a NOAUTH error reply;
			// the app's connections are closed so that it makes new ones.
			ctx := context.Background()
			if err := admin.ConfigSet(ctx, "requirepass", "s3cret").Err(); err != nil {
				t.Fatal(err)
			}
			if err := admin.ClientKillByFilter(ctx, "TYPE", "normal", "SKIPME", "yes").Err(); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			server := ownRedisServer(t)
			admin := server.client(t)
			if err := admin.Ping(context.Background()).Err(); err != nil {
				t.Fatal(err)
			}
			// A cool-down longer than the test: no probe, so every operation
			// that reached Redis after the breaker opened was already in flight.
			app := startApp(t, map[string]string{"REDIS_URL": server.url(), "REDIS_TIMEOUT": "500ms",
				"BREAKER_FAILURES": strconv.Itoa(failures), "BREAKER_COOLDOWN": "10m"})
			if resp := app.searchFor(t, "before", "lamp"); !hasRecommendation(resp.body) {
				t.Fatalf("no recommendation with Redis up")
			}
			tc.fail(server, admin)

			linesBefore := strings.Count(app.logs.String(), "\n")
			searchConcurrently(t, app, clients, pages)
			logs := app.logs.String()
			// Each failed operation may log twice (go-redis's failed dial and
			// the store's error), the breaker once: not a line per page.
			if lines := strings.Count(logs, "\n") - linesBefore; lines > 2*(failures+2*clients)+1 {
				t.Errorf("%d log lines for %d searches, want at most %d", lines, clients*pages, 2*(failures+2*clients)+1)
			}
			if n := len(breakerOpened.FindAllString(logs, -1)); n != 1 {
				t.Errorf("the breaker opened %d times, want once; log:\n%s", n, logs)
			}
			// Before it opens: a run of failures as long as the threshold plus
			// the operations in flight (at most one per client); when it
			// opens, at most one more per client is still in flight.
			if n := redisErrors(logs); n > failures+2*clients {
				t.Errorf("%d of %d searches reached Redis and failed, want at most %d; log:\n%s", n, clients*pages, failures+2*clients, logs)
			} else {
				t.Logf("%d of %d searches reached Redis and failed", n, clients*pages)
			}
			if resp := app.get(t, "/readyz", ""); resp.status != http.StatusOK || !strings.HasPrefix(resp.body, "degraded") {
				t.Errorf("GET /readyz with the breaker open = %d %q, want 200 degraded", resp.status, resp.body)
			}
		})
	}
}

// TestBreakerCountsWhatRedisSays drives the store's breaker directly: "no
// such key" and a visitor going away are not failures; error replies are, and
// enough of them in a row open it, after which the store answers without
// Redis.
func TestBreakerCountsWhatRedisSays(t *testing.T) {
	const failures = 3
	server := ownRedisServer(t)
	opts, err := redis.ParseURL(server.url())
	if err != nil {
		t.Fatal(err)
	}
	logs := newLogBuffer()
	logger := newLogger("text", logs)
	rdb, closeRedis, err := openRedis(config{redisOptions: opts}, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeRedis)
	st := newStore(rdb, time.Second, time.Hour, breakerSettings{failures: failures, cooldown: 10 * time.Minute}, logger, nil)
	ctx := context.Background()

	for range 2 * failures {
		if err := st.single.read.do(func() error { return rdb.Get(ctx, sessionKeyPrefix+"missing").Err() }); !errors.Is(err, redis.Nil) {
			t.Fatalf("GET of a missing key: %v, want redis.Nil", err)
		}
	}
	gone, cancel := context.WithCancel(ctx)
	cancel()
	for range 2 * failures {
		if _, err := st.remember(gone, "gone", "lamp"); !errors.Is(err, context.Canceled) {
			t.Fatalf("a cancelled search: %v, want context.Canceled", err)
		}
	}
	if state := st.cacheState(); state != gobreaker.StateClosed {
		t.Fatalf("after missing keys and cancelled searches the breaker is %v, want closed", state)
	}

	// A key of the wrong type makes Redis answer the read with WRONGTYPE.
	admin := server.client(t)
	if err := admin.HSet(ctx, sessionKeyPrefix+"wrongtype", "f", "v").Err(); err != nil {
		t.Fatal(err)
	}
	for i := range failures {
		if state := st.cacheState(); state != gobreaker.StateClosed {
			t.Fatalf("open after %d error replies, want %d", i, failures)
		}
		if _, err := st.remember(ctx, "wrongtype", "lamp"); err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
			t.Fatalf("read of a hash: %v, want WRONGTYPE", err)
		}
	}
	if state := st.cacheState(); state != gobreaker.StateOpen {
		t.Fatalf("after %d error replies in a row the breaker is %v, want open", failures, state)
	}
	if _, err := st.remember(ctx, "healthy", "lamp"); !errors.Is(err, errCacheUnavailable) {
		t.Errorf("a search with the breaker open: %v, want errCacheUnavailable", err)
	}
	if n := strings.Count(logs.String(), `msg="redis circuit breaker open`); n != 1 {
		t.Errorf("%d lines for the breaker opening, want 1:\n%s", n, logs.String())
	}
}
