package main

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
)

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
