package main

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestCookieCannotAddressOtherKeys tries cookies meant to reach keys outside
// the session prefix; every key the app writes must be the prefix plus a
// valid id, and keys outside it must be untouched.
func TestCookieCannotAddressOtherKeys(t *testing.T) {
	server := ownRedisServer(t)
	rdb := server.client(t)
	ctx := context.Background()
	outside := map[string]string{"victim": "precious", "shop:other": "also precious", "shop:session": "bare prefix"}
	for k, v := range outside {
		rdb.Set(ctx, k, v, 0)
	}
	app := startApp(t, map[string]string{"REDIS_URL": server.url()})
	for _, value := range []string{
		"*", "victim", "../victim", "..%2Fvictim", "shop:session:*", "shop:other", "victim*", "[a-z]*", "?",
		" victim", "victim;", `\x00victim`, "a/../../victim", "%2A", strings.Repeat("v", 100), "",
	} {
		app.searchFor(t, value, "probe")
		app.get(t, "/", sessionCookie+"="+value)
		app.get(t, "/reset", sessionCookie+"="+value)
	}
	for k, v := range outside {
		if got := rdb.Get(ctx, k).Val(); got != v {
			t.Errorf("key %q holds %q, want %q", k, got, v)
		}
	}
	sessionKey := regexp.MustCompile(`^` + regexp.QuoteMeta(sessionKeyPrefix) + `[A-Za-z0-9._-]{1,64}$`)
	keys := shopKeys(ctx, rdb)
	written := 0
	for _, k := range keys {
		if _, ok := outside[k]; ok {
			continue
		}
		written++
		if !sessionKey.MatchString(k) {
			t.Errorf("the app wrote key %q, outside %s<valid id>", k, sessionKeyPrefix)
		}
	}
	if written == 0 {
		t.Errorf("the app wrote no key at all; keys: %q", keys)
	}
}

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	app := startApp(t, nil)
	for _, r := range []struct{ method, path string }{
		{"GET", "/"}, {"GET", "/search?query=x"}, {"GET", "/reset"}, {"GET", "/healthz"},
		{"GET", "/nope"}, {"PUT", "/search"}, {"GET", "/search?query=%zz"},
	} {
		resp := app.do(t, r.method, r.path, "", "", nil)
		h := resp.header
		csp := h.Get("Content-Security-Policy")
		for _, directive := range []string{"default-src 'none'", "style-src 'self'", "form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'"} {
			if !strings.Contains(csp, directive) {
				t.Errorf("%s %s: CSP %q lacks %s", r.method, r.path, csp, directive)
			}
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s %s: X-Content-Type-Options %q, Referrer-Policy %q", r.method, r.path, h.Get("X-Content-Type-Options"), h.Get("Referrer-Policy"))
		}
		if h.Get("Server") != "" || h.Get("X-Powered-By") != "" {
			t.Errorf("%s %s: a version banner: Server %q", r.method, r.path, h.Get("Server"))
		}
	}
	// The page needs nothing the policy forbids: no script, inline style or
	// image; its one stylesheet is served from the same origin.
	page := app.searchFor(t, "csp", "lamp").body
	if !strings.Contains(page, `<link rel="stylesheet" href="/style.css">`) {
		t.Errorf("the page does not link /style.css")
	}
	if css := app.get(t, "/style.css", ""); css.status != http.StatusOK || css.header.Get("Content-Type") != "text/css; charset=utf-8" {
		t.Errorf("GET /style.css = %d %s", css.status, css.header.Get("Content-Type"))
	}
	for _, tag := range []string{"<script", "<style", "<img", " style=", "<iframe"} {
		if strings.Contains(page, tag) {
			t.Errorf("the page uses %s, which the CSP forbids", tag)
		}
	}
	if resp := app.get(t, "/", ""); resp.status != http.StatusOK {
		t.Fatal(resp.status)
	}
}
