package main

import (
	"context"
	"fmt"
	"net/http"
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
