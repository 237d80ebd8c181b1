package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestBadInput sends each kind of bad input the service meets and states, per
// case, the status, what the page says and what is stored for the session.
// Configuration mistakes have their own table in config_test.go.
func TestBadInput(t *testing.T) {
	app := startApp(t, nil)
	rdb := testRedis.client(t)
	ctx := context.Background()
	const form = "application/x-www-form-urlencoded"
	exactly64KiB := "query=lamp&pad=" + strings.Repeat("x", 64<<10-len("query=lamp&pad="))
	absent := []string(nil)

	type badInput struct {
		name        string
		method      string // default POST
		path        string // default /search
		cookie      string // the Cookie header; default sessionID=<a fresh valid id>
		contentType string // default form, when there is a body
		body        string
		header      map[string]string
		stored      string // value in Redis before the request
		wantStatus  int
		wantBody    string   // a substring of the response
		wantFresh   bool     // the response issues a new session id, and that is where things are stored
		wantStored  []string // the session's interests after the request; nil: no key
	}
	cases := []badInput{
		// Cookies
		{name: "empty sessionID cookie", cookie: "sessionID=", body: "query=lamp", wantStatus: 200, wantFresh: true, wantStored: []string{"lamp"}},
		{name: "10 KB cookie", cookie: "sessionID=" + strings.Repeat("a", 10<<10), body: "query=lamp", wantStatus: 200, wantFresh: true, wantStored: []string{"lamp"}},
		{name: "non-ASCII cookie", cookie: "sessionID=ключ", body: "query=lamp", wantStatus: 200, wantFresh: true, wantStored: []string{"lamp"}},
		{name: "cookie *", cookie: "sessionID=*", body: "query=lamp", wantStatus: 200, wantFresh: true, wantStored: []string{"lamp"}},
		{name: "cookie ../", cookie: "sessionID=../../etc/passwd", body: "query=lamp", wantStatus: 200, wantFresh: true, wantStored: []string{"lamp"}},
		{name: "cookie that is a Redis glob", cookie: "sessionID=shop:session:*", body: "query=lamp", wantStatus: 200, wantFresh: true, wantStored: []string{"lamp"}},
		{name: "cookie with a Redis command", cookie: "sessionID=x%0D%0AFLUSHALL", body: "query=lamp", wantStatus: 200, wantFresh: true, wantStored: []string{"lamp"}},
		{name: "cookie of 65 characters", cookie: "sessionID=" + strings.Repeat("b", 65), body: "query=lamp", wantStatus: 200, wantFresh: true, wantStored: []string{"lamp"}},
		{name: "many sessionID cookies: the first counts", cookie: "sessionID=%s; sessionID=second; sessionID=*", body: "query=lamp", wantStatus: 200, wantStored: []string{"lamp"}},
		{name: "many sessionID cookies: the first valid one counts", cookie: "sessionID=bad!id; sessionID=*; sessionID=%s", body: "query=lamp", wantStatus: 200, wantStored: []string{"lamp"}},
		{name: "no cookie at all", cookie: "-", body: "query=lamp", wantStatus: 200, wantFresh: true, wantStored: []string{"lamp"}},
		// Queries
		{name: "empty query", body: "query=", wantStatus: 200, wantBody: "<h1>Recommendations</h1>", wantStored: absent},
		{name: "query of only spaces", body: "query=+++%09+", wantStatus: 200, wantBody: "No recommendations yet", wantStored: absent},
		{name: "query of 200 characters", body: "query=" + strings.Repeat("é", 200), wantStatus: 200, wantBody: strings.Repeat("é", 200), wantStored: []string{strings.Repeat("é", 200)}},
		{name: "query of 201 characters", body: "query=" + strings.Repeat("é", 201), wantStatus: 400, wantBody: "longer than 200 characters", wantStored: absent},
		{name: "multi-byte UTF-8 query", body: "query=caf%C3%A9+%E2%98%95+%E6%9D%B1%E4%BA%AC", wantStatus: 200, wantBody: "café ☕ 東京", wantStored: []string{"café ☕ 東京"}},
		{name: "invalid UTF-8 query", body: "query=%FF%FE", wantStatus: 400, wantBody: "valid UTF-8", wantStored: absent},
		{name: "script query is shown, not run", body: "query=%3Cscript%3Ealert(1)%3C%2Fscript%3E", wantStatus: 200, wantBody: "&lt;script&gt;alert(1)&lt;/script&gt;", wantStored: []string{"<script>alert(1)</script>"}},
		{name: "template syntax in a query", body: "query=%7B%7B+.SessionID+%7D%7D", wantStatus: 200, wantBody: "{{ .SessionID }}", wantStored: []string{"{{ .SessionID }}"}},
		{name: "NUL byte in a query", body: "query=a%00b", wantStatus: 400, wantBody: "control characters", wantStored: absent},
		{name: "CRLF in a query", body: "query=a%0D%0Ab", wantStatus: 400, wantBody: "control characters", wantStored: absent},
		{name: "query in the URL: shown, not remembered", method: "GET", path: "/search?query=desk", wantStatus: 200, wantBody: "“desk”", wantStored: absent},
		{name: "format character in the URL's query", method: "GET", path: "/search?query=a%E2%80%AEb", wantStatus: 400, wantBody: "control characters", wantStored: absent},
		{name: "right-to-left override in a query", body: "query=a%E2%80%AEb", wantStatus: 400, wantBody: "control characters", wantStored: absent},
		// Bodies
		{name: "body of exactly 64 KiB", body: exactly64KiB, wantStatus: 200, wantStored: []string{"lamp"}},
		{name: "body of 64 KiB + 1", body: exactly64KiB + "x", wantStatus: 413, wantBody: "larger than 64 KiB", wantStored: absent},
		{name: "text/plain body", contentType: "text/plain", body: "query=lamp", wantStatus: 415, wantBody: "x-www-form-urlencoded", wantStored: absent},
		{name: "JSON body", contentType: "application/json", body: `{"query":"lamp"}`, wantStatus: 415, wantStored: absent},
		{name: "multipart body", contentType: "multipart/form-data; boundary=x", body: "--x\r\nContent-Disposition: form-data; name=\"query\"\r\n\r\nlamp\r\n--x--\r\n", wantStatus: 415, wantStored: absent},
		{name: "broken percent-encoding in the body", body: "query=%zz", wantStatus: 400, wantBody: "malformed form data", wantStored: absent},
		{name: "broken percent-encoding in the URL", method: "GET", path: "/search?query=%zz", wantStatus: 400, wantBody: "malformed form data", wantStored: absent},
		{name: "POST without a body", wantStatus: 200, wantStored: absent},
		// Methods and paths
		{name: "PUT /search", method: "PUT", body: "query=lamp", wantStatus: 405, wantStored: absent},
		{name: "DELETE /", method: "DELETE", path: "/", wantStatus: 405, wantStored: absent},
		{name: "POST /reset", method: "POST", path: "/reset", wantStatus: 405, wantStored: absent},
		{name: "unknown path", method: "GET", path: "/admin", wantStatus: 404, wantStored: absent},
		{name: "path below /search", method: "GET", path: "/search/x", wantStatus: 404, wantStored: absent},
		{name: "dot-dot path", method: "GET", path: "/x/../../search", wantStatus: 307, wantStored: absent},
		// Headers
		{name: "huge header", method: "GET", path: "/", header: map[string]string{"X-Pad": strings.Repeat("h", 64<<10)}, wantStatus: 431, wantStored: absent},
		// What was stored before
		{name: "corrupt stored value", stored: "not json", body: "query=lamp", wantStatus: 200, wantStored: []string{"lamp"}},
		{name: "stored list that is too long", stored: `["a","b","c","d","e"]`, body: "query=lamp", wantStatus: 200, wantStored: []string{"d", "e", "lamp"}},
		{name: "stored JSON null", stored: "null", body: "query=lamp", wantStatus: 200, wantStored: []string{"lamp"}},
	}
	if len(cases) < 30 {
		t.Fatalf("only %d cases", len(cases))
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("bad-input-%d-%d", i, time.Now().UnixNano())
			method, path, contentType := tc.method, tc.path, tc.contentType
			if method == "" {
				method = http.MethodPost
			}
			if path == "" {
				path = "/search"
			}
			if contentType == "" && tc.body != "" {
				contentType = form
			}
			cookie := sessionCookie + "=" + id
			switch {
			case tc.cookie == "-":
				cookie = ""
			case strings.Contains(tc.cookie, "%s"):
				cookie = fmt.Sprintf(tc.cookie, id)
			case tc.cookie != "":
				cookie = tc.cookie
			}
			if tc.stored != "" {
				rdb.Set(ctx, sessionKeyPrefix+id, tc.stored, time.Minute)
			}
			req, err := http.NewRequest(method, app.url+path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			if cookie != "" {
				req.Header.Set("Cookie", cookie)
			}
			if contentType != "" {
				req.Header.Set("Content-Type", contentType)
			}
			resp := app.send(t, req)

			if resp.status != tc.wantStatus {
				t.Fatalf("status %d, want %d; body %q", resp.status, tc.wantStatus, truncate(resp.body))
			}
			if !strings.Contains(resp.body, tc.wantBody) {
				t.Errorf("body lacks %q: %q", tc.wantBody, truncate(resp.body))
			}
			if tc.wantStatus == 405 && resp.header.Get("Allow") == "" {
				t.Errorf("405 without an Allow header")
			}
			storedID := id
			if fresh := resp.cookie(sessionCookie); tc.wantFresh != (fresh != "" && fresh != id) {
				t.Errorf("new session cookie %q, want one: %v", fresh, tc.wantFresh)
			} else if tc.wantFresh {
				storedID = fresh
			}
			raw, err := rdb.Get(ctx, sessionKeyPrefix+storedID).Result()
			got, valid := decodeInterests(raw)
			if tc.wantStored == nil && tc.stored == "" && err == nil {
				t.Errorf("stored %q, want nothing", raw)
			}
			if tc.wantStored != nil && (err != nil || !valid || !slices.Equal(got, tc.wantStored)) {
				t.Errorf("stored %q (%v), want %q", raw, err, tc.wantStored)
			}
		})
	}
}

func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
