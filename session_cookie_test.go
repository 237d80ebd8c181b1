package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestFirstValidSessionCookieWins: a sibling subdomain can set a second
// sessionID cookie that the browser sends first. A bad one must not cost the
// visitor their session: the first usable id the request carries is the one
// that counts, in whichever Cookie field it comes.
func TestFirstValidSessionCookieWins(t *testing.T) {
	app := startApp(t, nil)
	rdb := testRedis.client(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		cookies []string // Cookie fields; %[1]s is the session, %[2]s another valid id
	}{
		{"a bad id first", []string{"sessionID=bad!id; sessionID=%[1]s"}},
		{"an empty one first", []string{"sessionID=; sessionID=%[1]s"}},
		{"a path and a glob first", []string{"sessionID=../../victim; sessionID=shop:session:*; sessionID=%[1]s; sessionID=%[2]s"}},
		{"a too long one first", []string{"sessionID=" + strings.Repeat("a", 65) + "; sessionID=%[1]s"}},
		{"in a second Cookie field", []string{"sessionID=bad!id", "other=1; sessionID=%[1]s"}},
		{"two valid ids: the first", []string{"sessionID=%[1]s; sessionID=%[2]s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, other := uuid.NewString(), uuid.NewString()
			rdb.Set(ctx, sessionKeyPrefix+id, `["desk"]`, time.Hour)
			req, err := http.NewRequest(http.MethodPost, app.url+"/search", strings.NewReader("query=lamp"))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", formMediaType)
			for _, c := range tc.cookies {
				req.Header.Add("Cookie", fmt.Sprintf(c, id, other))
			}
			resp := app.send(t, req)
			if resp.status != http.StatusOK {
				t.Fatalf("status %d: %q", resp.status, truncate(resp.body))
			}
			if got := resp.cookie(sessionCookie); got != id {
				t.Errorf("Set-Cookie names session %q, want %s (refreshed, not replaced)", got, id)
			}
			if got := interestsOn(resp.body); !slices.Equal(got, []string{"desk", "lamp"}) {
				t.Errorf("interests %q, want [desk lamp]", got)
			}
			if n := rdb.Exists(ctx, sessionKeyPrefix+other).Val(); n != 0 {
				t.Errorf("the second valid id got a key too")
			}
		})
	}
}

// TestOnlyPostRemembersTheQuery: any site can link to /search?query=…, and
// the Lax session cookie goes with a top-level navigation, so a GET must not
// write text into a visitor's interests. It still shows the page. A POST
// remembers the query from its body only, as the reference reads it.
func TestOnlyPostRemembersTheQuery(t *testing.T) {
	app := startApp(t, nil)
	rdb := testRedis.client(t)
	ctx := context.Background()
	stored := func(id string) string { return rdb.Get(ctx, sessionKeyPrefix+id).Val() }

	id := uuid.NewString()
	rdb.Set(ctx, sessionKeyPrefix+id, `["desk"]`, time.Hour)
	resp := app.get(t, "/search?query="+url.QueryEscape("ask me for a refund"), sessionCookie+"="+id)
	if resp.status != http.StatusOK || !slices.Equal(interestsOn(resp.body), []string{"desk"}) || !hasRecommendation(resp.body) {
		t.Errorf("GET with a query: status %d, interests %q, recommendation %v; want 200, [desk], shown",
			resp.status, interestsOn(resp.body), hasRecommendation(resp.body))
	}
	if got := stored(id); got != `["desk"]` {
		t.Errorf("after GET /search?query=…: stored %q, want [\"desk\"] unchanged", got)
	}

	resp = app.get(t, "/search?query=lamp", "")
	fresh := resp.cookie(sessionCookie)
	if resp.status != http.StatusOK || fresh == "" {
		t.Fatalf("GET with a query, no cookie: status %d, new session %q", resp.status, fresh)
	}
	if n := rdb.Exists(ctx, sessionKeyPrefix+fresh).Val(); n != 0 {
		t.Errorf("GET with a query gave a new visitor a key: %q", stored(fresh))
	}

	// A POST reads the body, not the URL.
	post := func(path, body string) response {
		return app.do(t, http.MethodPost, path, sessionCookie+"="+id, formMediaType, strings.NewReader(body))
	}
	post("/search?query=injected", "query=lamp")
	post("/search?query=injected", "")
	if got := stored(id); got != `["desk","lamp"]` {
		t.Errorf("after POSTs with a query in the URL: stored %q, want [\"desk\",\"lamp\"]", got)
	}
}

// TestLogsNameSessionsByKeyedHash: a session id is a bearer token, and logs
// go to more people than Redis does. A log line names a session by a short
// keyed hash: the same within one process, so an operator can follow one
// session, and no help to whoever reads the log in getting at the session.
func TestLogsNameSessionsByKeyedHash(t *testing.T) {
	server := ownRedisServer(t)
	rdb := server.client(t)
	ctx := context.Background()
	app := startApp(t, map[string]string{"REDIS_URL": server.url()})
	ids := []string{"something", "logged-session-" + uuid.NewString()}

	// A stored value that is not a list is logged as it is replaced.
	for _, id := range []string{ids[0], ids[1], ids[0]} {
		rdb.Set(ctx, sessionKeyPrefix+id, "not json", time.Minute)
		app.searchFor(t, id, "lamp")
	}
	// A read that fails is logged with its session.
	server.stop()
	app.searchFor(t, ids[0], "lamp")
	app.logs.waitFor(t, regexp.MustCompile(`msg="redis error [^\n]* op=read`))

	log := app.logs.String()
	for _, id := range ids {
		if strings.Contains(log, id) {
			t.Errorf("the log carries session id %q:\n%s", id, log)
		}
	}
	var tags []string
	tag := regexp.MustCompile(`session=(\S*)`)
	for line := range strings.Lines(log) {
		if m := tag.FindStringSubmatch(line); m != nil {
			tags = append(tags, m[1])
		}
	}
	if len(tags) != 4 {
		t.Fatalf("%d lines name a session, want 4 (three replaced values, one failed read):\n%s", len(tags), log)
	}
	for _, tg := range tags {
		if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(tg) {
			t.Errorf("a line names session %q, want 16 hex digits", tg)
		}
		for _, id := range ids {
			plain := sha256.Sum256([]byte(id))
			if tg == hex.EncodeToString(plain[:8]) {
				t.Errorf("session %q is logged as its unkeyed SHA-256, which anyone can match to a guessed id", id)
			}
		}
	}
	if tags[0] != tags[2] || tags[0] != tags[3] {
		t.Errorf("one session is logged as %q, %q and %q, want one name", tags[0], tags[2], tags[3])
	}
	if tags[0] == tags[1] {
		t.Errorf("two sessions are both logged as %q", tags[0])
	}
}

// TestFormatCharactersRefused: format characters (Unicode Cf, Zl, Zp) are
// invisible or reorder text. Stored as an interest, a right-to-left override
// shows a query reversed and zero-width ones make two interests look alike,
// so they are refused as control characters are.
func TestFormatCharactersRefused(t *testing.T) {
	app := startApp(t, nil)
	rdb := testRedis.client(t)
	ctx := context.Background()
	for _, q := range []string{
		"lamp\u202Epmal", // right-to-left override
		"la\u200Bmp",     // zero-width space
		"la\u200Dmp",     // zero-width joiner
		"la\uFEFFmp",     // zero-width no-break space
		"la\u00ADmp",     // soft hyphen
		"la\u2066mp",     // left-to-right isolate
		"lamp\u2028desk", // line separator (Zl)
		"lamp\u2029desk", // paragraph separator (Zp)
		"la\U000E0041mp", // tag character
	} {
		id := uuid.NewString()
		resp := app.searchFor(t, id, q)
		if resp.status != http.StatusBadRequest || strings.Count(resp.body, "\n") != 1 || !strings.Contains(resp.body, "control characters") {
			t.Errorf("query %+q: %d %q, want 400 with one line", q, resp.status, truncate(resp.body))
		}
		if got, err := rdb.Get(ctx, sessionKeyPrefix+id).Result(); err == nil {
			t.Errorf("query %+q stored %q", q, got)
		}
	}
	// Around the query they are white space, and trimmed as such.
	if got := interestsOn(app.searchFor(t, uuid.NewString(), "\u2028lamp\u2029").body); !slices.Equal(got, []string{"lamp"}) {
		t.Errorf("query with a line separator either side: interests %q, want [lamp]", got)
	}
	// Marks that combine with a letter are not format characters.
	if resp := app.searchFor(t, uuid.NewString(), "cafe\u0301 \u0928\u092E\u0938\u094D\u0924\u0947"); resp.status != http.StatusOK {
		t.Errorf("combining marks refused: %d %q", resp.status, resp.body)
	}
}

// TestSessionCookieIsWhatHTTPCookieWrites: the session cookie is written
// from a prefix and attributes computed once; the field must be the one
// http.SetCookie writes for the same cookie, for every id the service
// accepts and every setting that changes an attribute.
func TestSessionCookieIsWhatHTTPCookieWrites(t *testing.T) {
	ids := []string{uuid.NewString(), "a", "something", strings.Repeat("Z", 64),
		"bcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"}
	for _, ttl := range []time.Duration{time.Second, 1500 * time.Millisecond, 24 * time.Hour, 87600 * time.Hour} {
		for _, secure := range []bool{false, true} {
			a := &app{cookieAttributes: sessionCookieAttributes(ttl, secure)}
			for _, id := range ids {
				if !validSessionID(id) {
					t.Fatalf("%q is not a valid session id", id)
				}
				got := httptest.NewRecorder()
				got.Header()["Set-Cookie"] = []string{"other=1"}
				a.setSessionCookie(got, id)
				want := httptest.NewRecorder()
				want.Header()["Set-Cookie"] = []string{"other=1"}
				http.SetCookie(want, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", MaxAge: int(ttl / time.Second),
					HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
				if g, w := got.Header()["Set-Cookie"], want.Header()["Set-Cookie"]; !slices.Equal(g, w) {
					t.Errorf("TTL %v, secure %v, id %q: Set-Cookie %q, want %q", ttl, secure, id, g, w)
				}
				if g := got.Header().Get("Cache-Control"); g != "no-store" {
					t.Errorf("Cache-Control %q, want no-store", g)
				}
			}
		}
	}
}
