package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func FuzzValidSessionID(f *testing.F) {
	for _, seed := range []string{"something", "", "*", "../x", "shop:session:*", strings.Repeat("a", 64), strings.Repeat("a", 65), "ключ", "a\r\nb"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if !validSessionID(id) {
			return
		}
		if id == "" || len(id) > 64 {
			t.Fatalf("accepted an id of %d bytes", len(id))
		}
		for _, r := range id {
			if !(r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("._-", r))) {
				t.Fatalf("accepted %q with %q", id, r)
			}
		}
	})
}

func FuzzNormalizeQuery(f *testing.F) {
	for _, seed := range []string{"", "  apple ", strings.Repeat("é", 200), strings.Repeat("é", 201), "a\x00b", "a\r\nb", "\xff\xfe", "<script>", "{{ . }}", "a\u202eb", "a\u200bb", " \u2028a\u2029 "} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := normalizeQuery(raw)
		if err != nil {
			if q != "" {
				t.Fatalf("an error with a query %q", q)
			}
			return
		}
		switch {
		case !utf8.ValidString(q):
			t.Fatalf("%q is not UTF-8", q)
		case utf8.RuneCountInString(q) > maxQueryRunes:
			t.Fatalf("%q is longer than %d characters", q, maxQueryRunes)
		case strings.IndexFunc(q, unicode.IsControl) >= 0:
			t.Fatalf("%q has a control character", q)
		case strings.IndexFunc(q, func(r rune) bool { return unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) }) >= 0:
			t.Fatalf("%+q has a format character", q)
		case q != strings.TrimSpace(q):
			t.Fatalf("%q is not trimmed", q)
		}
		if again, err := normalizeQuery(q); err != nil || again != q {
			t.Fatalf("normalizing %q again gave %q, %v", q, again, err)
		}
	})
}

func FuzzDecodeInterests(f *testing.F) {
	for _, seed := range []string{`[]`, `["a"]`, `["a","b","c","d"]`, `null`, `[1]`, `{}`, `"a"`, ``, `["\u0000"]`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		interests, ok := decodeInterests(raw)
		if !ok {
			if interests != nil {
				t.Fatalf("rejected %q but returned %q", raw, interests)
			}
			return
		}
		if len(interests) > maxInterests {
			t.Fatalf("%q decoded to %d interests", raw, len(interests))
		}
		encoded, err := json.Marshal(interests)
		if err != nil {
			t.Fatal(err)
		}
		again, ok := decodeInterests(string(encoded))
		if !ok || !slices.Equal(again, interests) {
			t.Fatalf("%q → %q → %s → %q", raw, interests, encoded, again)
		}
	})
}

// FuzzInterestsMatchEncodingJSON holds the interests' codec (interests.go)
// to encoding/json, which defines it: whatever is stored decodes as
// json.Unmarshal decodes it, and whatever is written is what the encoder
// writes.
func FuzzInterestsMatchEncodingJSON(f *testing.F) {
	for _, seed := range []string{`[]`, `[""]`, `["a"]`, `["a","b","c","d"]`, `[ "a" ]`, `["a" ,"b"]`, `["a\"b"]`,
		`["a\u2028"]`, "[\"a\u2028\"]", "[\"\xff\"]", `["<&>"]`, `null`, `[null]`, `["]`, `[""]"]`, `["a"]x`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		var want []string
		wantOK := json.Unmarshal([]byte(raw), &want) == nil && want != nil
		if !wantOK {
			want = nil // what it filled in before it failed
		}
		if len(want) > maxInterests {
			want = want[len(want)-maxInterests:]
		}
		got, ok := decodeInterests(raw)
		if ok != wantOK || !slices.Equal(got, want) || ok && got == nil {
			t.Fatalf("decodeInterests(%q) = %q, %v; encoding/json: %q, %v", raw, got, ok, want, wantOK)
		}
		// Every list, however it came: as read, and raw's bytes as one string.
		for _, list := range [][]string{want, {raw}, {raw, raw}} {
			if got, want := encodeInterests(list), encodeInterestsJSON(list); got != want {
				t.Fatalf("encodeInterests(%q) = %s; encoding/json: %s", list, got, want)
			}
		}
	})
}

// TestUnsafeToShowOnEveryRune: unsafeToShow answers printable ASCII without
// the Unicode tables; on every rune it must answer as they do.
func TestUnsafeToShowOnEveryRune(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if got, want := unsafeToShow(r), unicode.IsControl(r) || unicode.IsOneOf(formatCharacters, r); got != want {
			t.Errorf("unsafeToShow(%U) = %v, want %v", r, got, want)
		}
	}
}
