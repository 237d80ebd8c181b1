package main

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// A session's interests are stored as a JSON array of strings, and
// encoding/json defines how: what encodeInterests writes and
// decodeInterests reads is what it writes and reads. Nearly every stored list
// is plain, though (queries are printable text without quotes or
// backslashes), and for a plain list the JSON is the strings between quotes
// and commas, which both write and read directly; anything else goes through
// encoding/json. FuzzInterestsMatchEncodingJSON holds the two to the same
// results.

// encodeInterests stores interests as the JSON array that decodeInterests
// reads, without encoding/json's HTML-safe escapes, which would store each
// "<", ">" or "&" a visitor types as six bytes.
func encodeInterests(interests []string) string {
	if interests == nil || !plainStrings(interests, true) {
		return encodeInterestsJSON(interests)
	}
	n := 2 + max(len(interests)-1, 0) // [ , ]
	for _, s := range interests {
		n += len(s) + 2
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteByte('[')
	for i, s := range interests {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		b.WriteString(s)
		b.WriteByte('"')
	}
	b.WriteByte(']')
	return b.String()
}

func encodeInterestsJSON(interests []string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(interests) // a []string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}

// decodeInterests reads a stored list of interests, the last maxInterests
// of them; false if raw is not a JSON array of strings.
func decodeInterests(raw string) ([]string, bool) {
	interests, ok := decodePlainInterests(raw)
	if !ok {
		if interests, ok = decodeInterestsJSON(raw); !ok {
			return nil, false
		}
	}
	if len(interests) > maxInterests {
		interests = interests[len(interests)-maxInterests:]
	}
	return interests, true
}

// decodeInterestsJSON is encoding/json's reading of raw, in a function of
// its own: the slice it decodes into lives on the heap, and the plain lists'
// need not.
func decodeInterestsJSON(raw string) ([]string, bool) {
	var interests []string
	if err := json.Unmarshal([]byte(raw), &interests); err != nil || interests == nil {
		return nil, false
	}
	return interests, true
}

// decodePlainInterests reads raw if it is a plain list as encodeInterests
// writes one: no space, and no string that JSON would escape.
func decodePlainInterests(raw string) ([]string, bool) {
	if raw == "[]" {
		return []string{}, true
	}
	if len(raw) < 4 || raw[:2] != `["` || raw[len(raw)-2:] != `"]` {
		return nil, false
	}
	interests := strings.Split(raw[2:len(raw)-2], `","`)
	// A quote left in a string means raw was not split as written: a space
	// around a comma, or an escaped quote.
	return interests, plainStrings(interests, false)
}

// plainStrings reports whether JSON holds each string between quotes as it
// is: valid UTF-8 without a quote, a backslash or a control character. When
// encoding, encoding/json also escapes U+2028 and U+2029, which it reads as
// they are.
func plainStrings(ss []string, encoding bool) bool {
	for _, s := range ss {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < ' ' || c == '"' || c == '\\' {
				return false
			}
		}
		if !utf8.ValidString(s) || encoding && (strings.Contains(s, "\u2028") || strings.Contains(s, "\u2029")) {
			return false
		}
	}
	return true
}
