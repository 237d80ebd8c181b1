package main

import (
	"context"
	"fmt"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestHomeIssuesSessionCookie(t *testing.T) {
	app := startApp(t, nil)
	resp := app.get(t, "/", "")
	if resp.status != http.StatusOK {
		t.Fatalf("GET / = %d", resp.status)
	}
	if ct := resp.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	for _, want := range []string{`<form action="/search" method="post">`, `<label for="query">`, `name="query"`, `href="/search"`, `href="/reset"`} {
		if !strings.Contains(resp.body, want) {
			t.Errorf("home page lacks %s", want)
		}
	}
	setCookie := resp.header.Get("Set-Cookie")
	id := resp.cookie(sessionCookie)
	if u, err := uuid.Parse(id); err != nil || u.Version() != 4 {
		t.Fatalf("sessionID cookie %q is not a UUID v4 (Set-Cookie: %s)", id, setCookie)
	}
	for _, attr := range []string{"Path=/", "HttpOnly", "SameSite=Lax"} {
		if !strings.Contains(setCookie, attr) {
			t.Errorf("Set-Cookie %q lacks %s", setCookie, attr)
		}
	}
	if strings.Contains(setCookie, "Secure") {
		t.Errorf("Set-Cookie %q is Secure without COOKIE_SECURE", setCookie)
	}

	if again := app.get(t, "/", sessionCookie+"="+id); again.header.Get("Set-Cookie") != "" {
		t.Errorf("a valid session got a new cookie: %s", again.header.Get("Set-Cookie"))
	}
}

func TestCookieSecure(t *testing.T) {
	app := startApp(t, map[string]string{"COOKIE_SECURE": "true"})
	if sc := app.get(t, "/", "").header.Get("Set-Cookie"); !strings.Contains(sc, "; Secure") {
		t.Errorf("Set-Cookie %q lacks Secure with COOKIE_SECURE=true", sc)
	}
}

func TestSearchRemembersLastThreeDistinctQueries(t *testing.T) {
	checkSearchRemembers(t, nil)
}

// checkSearchRemembers walks one session through the reference's searches on
// the Redis that env names.
func checkSearchRemembers(t *testing.T, env map[string]string) {
	app := startApp(t, env)
	id := uuid.NewString()
	steps := []struct {
		query string
		want  []string
	}{
		{"", nil},
		{"apple", []string{"apple"}},
		{"  laptop  ", []string{"apple", "laptop"}},
		{"apple", []string{"apple", "laptop"}},
		{"phone", []string{"apple", "laptop", "phone"}},
		{"tv", []string{"laptop", "phone", "tv"}},
		{"   ", []string{"laptop", "phone", "tv"}},
	}
	for _, step := range steps {
		resp := app.searchFor(t, id, step.query)
		if resp.status != http.StatusOK {
			t.Fatalf("search %q = %d", step.query, resp.status)
		}
		if got := interestsOn(resp.body); !slices.Equal(got, step.want) {
			t.Errorf("after %q interests = %q, want %q", step.query, got, step.want)
		}
		if hasRecommendation(resp.body) != (len(step.want) > 0) {
			t.Errorf("after %q recommendation shown = %v with %d interests", step.query, hasRecommendation(resp.body), len(step.want))
		}
		heading := strings.Contains(resp.body, "nothing found for")
		if q := strings.TrimSpace(step.query); heading != (q != "") || q != "" && !strings.Contains(resp.body, "“"+q+"”") {
			t.Errorf("after %q: heading for the query shown = %v", step.query, heading)
		}
	}
	// A GET shows the page and the query in the URL, and remembers nothing.
	resp := app.get(t, "/search?query=radio", sessionCookie+"="+id)
	if got := interestsOn(resp.body); !slices.Equal(got, []string{"laptop", "phone", "tv"}) || !strings.Contains(resp.body, "“radio”") {
		t.Errorf("GET /search?query=radio interests = %q, heading for radio shown: %v", got, strings.Contains(resp.body, "“radio”"))
	}
	if !strings.Contains(resp.body, `<p id="session">Session ID: <code>`+id+"</code>") {
		t.Errorf("page does not show the session id")
	}
}

func TestSearchWithoutCookieStartsSession(t *testing.T) {
	app := startApp(t, nil)
	resp := app.do(t, http.MethodPost, "/search", "", "application/x-www-form-urlencoded", strings.NewReader("query=shoes"))
	id := resp.cookie(sessionCookie)
	if resp.status != http.StatusOK || id == "" {
		t.Fatalf("status %d, cookie %q", resp.status, id)
	}
	if got := interestsOn(app.get(t, "/search", sessionCookie+"="+id).body); !slices.Equal(got, []string{"shoes"}) {
		t.Errorf("the new session's interests = %q, want [shoes]", got)
	}
}

func TestStoredKeyHasPrefixAndTTL(t *testing.T) {
	app := startApp(t, map[string]string{"SESSION_TTL": "1h"})
	rdb := testRedis.client(t)
	id := uuid.NewString()
	app.searchFor(t, id, "kettle")
	ctx := context.Background()
	val, err := rdb.Get(ctx, sessionKeyPrefix+id).Result()
	if err != nil || val != `["kettle"]` {
		t.Fatalf("stored %q, %v", val, err)
	}
	ttl := rdb.TTL(ctx, sessionKeyPrefix+id).Val()
	if ttl <= 59*time.Minute || ttl > time.Hour {
		t.Errorf("TTL = %v, want just under 1h", ttl)
	}
	rdb.Expire(ctx, sessionKeyPrefix+id, time.Minute)
	app.searchFor(t, id, "")
	if ttl := rdb.TTL(ctx, sessionKeyPrefix+id).Val(); ttl <= 59*time.Minute {
		t.Errorf("TTL after another search = %v, want it refreshed to 1h", ttl)
	}
}

func TestQueryIsEscaped(t *testing.T) {
	app := startApp(t, nil)
	resp := app.searchFor(t, uuid.NewString(), `<script>alert(1)</script>`)
	if strings.Contains(resp.body, "<script>") {
		t.Fatalf("the query reached the page unescaped:\n%s", resp.body)
	}
	if !strings.Contains(resp.body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Errorf("the escaped query is not shown:\n%s", resp.body)
	}
}

func TestCorruptStoredValueIsReplaced(t *testing.T) {
	app := startApp(t, nil)
	rdb := testRedis.client(t)
	ctx := context.Background()
	for _, corrupt := range []string{"not json", `{"a":1}`, `[1,2]`, "null", `"apple"`, ""} {
		id := uuid.NewString()
		rdb.Set(ctx, sessionKeyPrefix+id, corrupt, time.Minute)
		resp := app.searchFor(t, id, "lamp")
		if resp.status != http.StatusOK || !slices.Equal(interestsOn(resp.body), []string{"lamp"}) {
			t.Errorf("stored %q: status %d, interests %q; want 200 and [lamp]", corrupt, resp.status, interestsOn(resp.body))
		}
		if got := rdb.Get(ctx, sessionKeyPrefix+id).Val(); got != `["lamp"]` {
			t.Errorf("stored %q was not overwritten: now %q", corrupt, got)
		}
	}
	if !strings.Contains(app.logs.String(), "not a JSON array of strings") {
		t.Errorf("corrupt values were not logged")
	}
}

func TestReset(t *testing.T) {
	app := startApp(t, nil)
	resp := app.get(t, "/reset", sessionCookie+"=something")
	if resp.status != http.StatusFound || resp.header.Get("Location") != "/" {
		t.Fatalf("GET /reset = %d to %q, want 302 to /", resp.status, resp.header.Get("Location"))
	}
	if id := resp.cookie(sessionCookie); id == "" || id == "something" {
		t.Errorf("reset set cookie %q, want a new id", id)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	server := ownRedisServer(t)
	app := startApp(t, map[string]string{"REDIS_URL": server.url()})
	if resp := app.get(t, "/readyz", ""); resp.status != http.StatusOK || resp.body != "ready\n" {
		t.Errorf("GET /readyz with Redis up = %d %q, want 200 ready", resp.status, resp.body)
	}
	server.stop()
	// The instance still serves pages, so it stays in rotation.
	if resp := app.get(t, "/readyz", ""); resp.status != http.StatusOK || !strings.HasPrefix(resp.body, "degraded") {
		t.Errorf("GET /readyz with Redis down = %d %q, want 200 degraded", resp.status, resp.body)
	}
	if resp := app.get(t, "/healthz", ""); resp.status != http.StatusOK {
		t.Errorf("GET /healthz with Redis down = %d, want 200", resp.status)
	}
}

func TestRedisDownRendersWithoutRecommendations(t *testing.T) {
	server := ownRedisServer(t)
	app := startApp(t, map[string]string{"REDIS_URL": server.url(), "REDIS_TIMEOUT": "500ms"})
	id := uuid.NewString()
	if resp := app.searchFor(t, id, "apple"); !hasRecommendation(resp.body) {
		t.Fatalf("no recommendation with Redis up")
	}

	server.stop()
	resp := app.searchFor(t, id, "pear")
	if resp.status != http.StatusOK || hasRecommendation(resp.body) || interestsOn(resp.body) != nil {
		t.Errorf("with Redis down: status %d, recommendation %v, interests %q; want 200 and none", resp.status, hasRecommendation(resp.body), interestsOn(resp.body))
	}
	app.logs.waitFor(t, regexp.MustCompile(`level=WARN msg="redis error [^"]*connect`))

	if err := server.start(); err != nil {
		t.Fatal(err)
	}
	// The pool's connections died with the server; go-redis redials, so the
	// first search after the restart should already work.
	resp = app.searchFor(t, id, "plum")
	if resp.status != http.StatusOK || !hasRecommendation(resp.body) || !slices.Equal(interestsOn(resp.body), []string{"plum"}) {
		t.Errorf("after Redis came back: status %d, interests %q", resp.status, interestsOn(resp.body))
	}
}

func TestEmbeddedRedisByDefault(t *testing.T) {
	app := startApp(t, map[string]string{"REDIS_URL": ""})
	if !strings.Contains(app.logs.String(), "embedded in-memory Redis") {
		t.Errorf("no warning about the embedded Redis in:\n%s", app.logs.String())
	}
	id := uuid.NewString()
	app.searchFor(t, id, "apple")
	if got := interestsOn(app.searchFor(t, id, "pear").body); !slices.Equal(got, []string{"apple", "pear"}) {
		t.Errorf("interests = %q", got)
	}
}

func TestShutdownDrainsAndReturnsNil(t *testing.T) {
	app := startApp(t, nil)
	app.searchFor(t, "drain", "x")
	if err := app.stop(); err != nil {
		t.Fatalf("run returned %v after its context ended, want nil", err)
	}
	if _, err := noRedirects.Get(app.url + "/healthz"); err == nil {
		t.Errorf("the server still answers after run returned")
	}
}

func BenchmarkSearch(b *testing.B) {
	app := startApp(b, nil)
	b.ResetTimer()
	for i := range b.N {
		if resp := app.searchFor(b, "bench", fmt.Sprint("q", i%5)); resp.status != http.StatusOK {
			b.Fatal(resp.status)
		}
	}
}

// namesForm parses a Content-Type field only when it could name the form;
// whatever it skips, ParseMediaType would not have read as the form either.
func TestNamesFormAgreesWithParseMediaType(t *testing.T) {
	for _, v := range []string{
		"application/x-www-form-urlencoded", "Application/X-WWW-Form-Urlencoded", " application/x-www-form-urlencoded ",
		"application/x-www-form-urlencoded; charset=utf-8", "application/x-www-form-urlencoded;", "application/x-www-form-urlencode",
		"text/plain", "", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded, text/plain",
		"application/x-www-form-urlencoded; charset", "\tapplication/x-www-form-urlencoded\t", "application/json",
	} {
		mt, _, _ := mime.ParseMediaType(v)
		if got, want := namesForm(v), mt == formMediaType; got != want {
			t.Errorf("namesForm(%q) = %v, ParseMediaType reads %q", v, got, mt)
		}
	}
}
