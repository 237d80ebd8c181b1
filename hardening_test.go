package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// TestPagesWithTheSessionIDAreNotStored: the session id is a bearer token
// for the visitor's interests, so no cache, shared or the browser's, may keep
// a page that shows it or a response that sets it: /search shows it, / and
// /reset set it.
func TestPagesWithTheSessionIDAreNotStored(t *testing.T) {
	app := startApp(t, nil)
	id := uuid.NewString()
	for _, r := range []struct {
		method, path, cookie, body string
	}{
		{"GET", "/", "", ""},
		{"GET", "/", sessionCookie + "=" + id, ""},
		{"GET", "/search", "", ""},
		{"GET", "/search?query=lamp", sessionCookie + "=" + id, ""},
		{"POST", "/search", sessionCookie + "=" + id, "query=desk"},
		{"GET", "/reset", sessionCookie + "=" + id, ""},
	} {
		contentType := ""
		if r.body != "" {
			contentType = "application/x-www-form-urlencoded"
		}
		resp := app.do(t, r.method, r.path, r.cookie, contentType, strings.NewReader(r.body))
		if got := resp.header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("%s %s (cookie %q): Cache-Control %q, want no-store", r.method, r.path, r.cookie, got)
		}
	}
	if got := app.get(t, "/style.css", "").header.Get("Cache-Control"); !strings.HasPrefix(got, "public") {
		t.Errorf("the stylesheet is Cache-Control %q, want it cacheable", got)
	}
	if resp := app.get(t, "/healthz", ""); resp.status != http.StatusOK {
		t.Errorf("/healthz = %d", resp.status)
	}
}
