package main

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// shopKeys are the keys in rdb but the fleet's control plane's, which the
// chaos build keeps in the Redis it uses (its heartbeat, at least).
func shopKeys(ctx context.Context, rdb *redis.Client) []string {
	var keys []string
	for _, k := range rdb.Keys(ctx, "*").Val() {
		if !chaosBuild || !strings.HasPrefix(k, "{"+metricsNamespace+":chaos}:") {
			keys = append(keys, k)
		}
	}
	return keys
}

// TestNoKeyForNothingToRemember: a visitor who searches for nothing has
// nothing to remember, so no key is written for them, with or without a
// cookie; once they search, the key holds what they typed.
func TestNoKeyForNothingToRemember(t *testing.T) {
	server := ownRedisServer(t)
	rdb := server.client(t)
	ctx := context.Background()
	app := startApp(t, map[string]string{"REDIS_URL": server.url()})
	for range 20 {
		app.get(t, "/search", "")
		app.do(t, http.MethodPost, "/search", "", "application/x-www-form-urlencoded", strings.NewReader("query=+++"))
		app.get(t, "/search", sessionCookie+"="+uuid.NewString())
		app.get(t, "/", "")
	}
	if keys := shopKeys(ctx, rdb); len(keys) != 0 {
		t.Errorf("keys %q after 80 requests that searched for nothing, want none", keys)
	}
	id := uuid.NewString()
	app.searchFor(t, id, "lamp")
	if got := rdb.Get(ctx, sessionKeyPrefix+id).Val(); got != `["lamp"]` {
		t.Errorf("stored %q after a search for lamp", got)
	}
	// An empty search of a session with interests refreshes them.
	rdb.Expire(ctx, sessionKeyPrefix+id, time.Minute)
	app.get(t, "/search", sessionCookie+"="+id)
	if ttl := rdb.TTL(ctx, sessionKeyPrefix+id).Val(); ttl <= time.Minute {
		t.Errorf("TTL after an empty search of a session with interests = %v, want it refreshed", ttl)
	}
}

// TestStoredBytesFollowWhatWasTyped: a query is stored as typed, not with
// HTML-safe escapes that make "<" six bytes.
func TestStoredBytesFollowWhatWasTyped(t *testing.T) {
	app := startApp(t, nil)
	rdb := testRedis.client(t)
	ctx := context.Background()
	for _, query := range []string{strings.Repeat("<", maxQueryRunes), strings.Repeat("&>", maxQueryRunes/2), "a<b>&c", strings.Repeat("é", maxQueryRunes)} {
		id := uuid.NewString()
		resp := app.searchFor(t, id, query)
		if !slices.Equal(interestsOn(resp.body), []string{htmlEscaped(query)}) {
			t.Fatalf("interests on the page = %q", interestsOn(resp.body))
		}
		stored := rdb.Get(ctx, sessionKeyPrefix+id).Val()
		if want := len(query) + len(`[""]`); len(stored) != want {
			t.Errorf("a query of %d bytes is stored in %d bytes (%.40q…), want %d", len(query), len(stored), stored, want)
		}
		if got, ok := decodeInterests(stored); !ok || !slices.Equal(got, []string{query}) {
			t.Errorf("stored %q decodes to %q", stored, got)
		}
		// The next search reads it back and keeps it.
		resp = app.searchFor(t, id, "next")
		if !slices.Equal(interestsOn(resp.body), []string{htmlEscaped(query), "next"}) {
			t.Errorf("after another search, interests = %q", interestsOn(resp.body))
		}
	}
	// Values written with the old escaping still read back.
	id := uuid.NewString()
	rdb.Set(ctx, sessionKeyPrefix+id, `["\u003cb\u003e"]`, time.Minute)
	if got := interestsOn(app.searchFor(t, id, "c").body); !slices.Equal(got, []string{"&lt;b&gt;", "c"}) {
		t.Errorf("an escaped stored value reads back as %q", got)
	}
}

func htmlEscaped(s string) string {
	return strings.NewReplacer("<", "&lt;", ">", "&gt;", "&", "&amp;").Replace(s)
}

// TestFloodAgainstSmallMaxmemory floods a redis-server that has a 2 MB
// maxmemory and the eviction policy docs/security.md asks for with
// cookie-less searches of 200 "<": every page is a 200, Redis stays within
// its limit by evicting, and a visitor's session still works afterwards.
func TestFloodAgainstSmallMaxmemory(t *testing.T) {
	const maxmemory = 2 << 20
	server, err := startRedisServer("--maxmemory", strconv.Itoa(maxmemory), "--maxmemory-policy", "allkeys-lru")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(server.stop)
	rdb := server.client(t)
	app := startApp(t, map[string]string{"REDIS_URL": server.url()})
	before := redisInfo(t, rdb, "used_memory")

	flood := url.Values{"query": {strings.Repeat("<", maxQueryRunes)}}.Encode()
	transport := &http.Transport{MaxIdleConnsPerHost: 8}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}
	var requests, notOK atomic.Int64
	var wg sync.WaitGroup
	var stop atomic.Bool
	const limit = 200000
	// Flood until Redis has evicted 2 000 keys: well past its limit.
	for range 8 {
		wg.Go(func() {
			for n := 1; !stop.Load() && requests.Add(1) < limit; n++ {
				resp, err := client.Post(app.url+"/search", formMediaType, strings.NewReader(flood))
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					notOK.Add(1)
				}
				if n%250 == 0 && redisInfo(t, rdb, "evicted_keys") >= 2000 {
					stop.Store(true)
				}
			}
		})
	}
	wg.Wait()
	after := redisInfo(t, rdb, "used_memory")
	evicted, keys := redisInfo(t, rdb, "evicted_keys"), rdb.DBSize(context.Background()).Val()
	t.Logf("%d cookie-less searches: used_memory %d → %d bytes (maxmemory %d), %d keys, %d evicted",
		requests.Load(), before, after, maxmemory, keys, evicted)
	if notOK.Load() > 0 {
		t.Errorf("%d of %d pages were not 200", notOK.Load(), requests.Load())
	}
	if evicted < 2000 {
		t.Fatalf("Redis evicted %d keys after %d searches: the flood never reached maxmemory", evicted, requests.Load())
	}
	if after > maxmemory+maxmemory/10 {
		t.Errorf("used_memory %d, more than maxmemory %d", after, maxmemory)
	}
	if strings.Contains(app.logs.String(), "OOM") {
		t.Errorf("writes were refused for memory:\n%s", app.logs.String())
	}
	id := uuid.NewString()
	app.searchFor(t, id, "lamp")
	if got := interestsOn(app.searchFor(t, id, "desk").body); !slices.Equal(got, []string{"lamp", "desk"}) {
		t.Errorf("after the flood a session remembers %q, want [lamp desk]", got)
	}
}

func redisInfo(t *testing.T, rdb *redis.Client, field string) int64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + field + `:(\d+)`).FindStringSubmatch(rdb.Info(context.Background()).Val())
	if m == nil {
		t.Errorf("INFO has no %s", field)
		return -1
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

// TestCookieLivesAsLongAsTheInterests: each search that refreshes a
// session's key in Redis refreshes its cookie too, so that a visitor who
// keeps searching keeps their session past one SESSION_TTL from its start.
func TestCookieLivesAsLongAsTheInterests(t *testing.T) {
	app := startApp(t, map[string]string{"SESSION_TTL": "2h"})
	id := uuid.NewString()
	for _, query := range []string{"lamp", "", "lamp"} {
		resp := app.searchFor(t, id, query)
		setCookie := resp.header.Get("Set-Cookie")
		if resp.cookie(sessionCookie) != id || !strings.Contains(setCookie, "Max-Age=7200") || !strings.Contains(setCookie, "HttpOnly") {
			t.Errorf("search %q of a session with interests: Set-Cookie %q, want the same id with Max-Age=7200", query, setCookie)
		}
	}
	// Nothing to remember: nothing refreshed.
	if sc := app.get(t, "/search", sessionCookie+"="+uuid.NewString()).header.Get("Set-Cookie"); sc != "" {
		t.Errorf("an empty search of a session without interests set %q", sc)
	}
	// A new session gets one cookie, not two.
	resp := app.do(t, http.MethodPost, "/search", "", formMediaType, strings.NewReader("query=desk"))
	if n := len(resp.header.Values("Set-Cookie")); n != 1 || resp.cookie(sessionCookie) == "" {
		t.Errorf("a new session's first search set %d cookies: %q", n, resp.header.Values("Set-Cookie"))
	}
}
