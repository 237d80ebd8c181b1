package chaos

import (
	"regexp"
	"strings"
	"testing"
)

// The names are checked byte by byte; the regular expressions here are
// what the documentation promises.
func TestNamesAsTheirPatterns(t *testing.T) {
	checks := []struct {
		name    string
		pattern *regexp.Regexp
		is      func(string) bool
	}{
		{"command", regexp.MustCompile(`^[a-z]+$`), isCommandName},
		{"dependency", regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`), isDependencyName},
		{"run id", regexp.MustCompile(`^[A-Za-z0-9._-]{0,64}$`), isRunID},
	}
	inputs := []string{"", "a", "get", "Get", "evalsha", "a1", "1a", "_a", "-", ".", "a.b", "a_b-c", "a b", "a\n",
		"ключ", "a\x00", "latency-2024-06-01", "RUN.1", strings.Repeat("a", 63), strings.Repeat("a", 64), strings.Repeat("a", 65)}
	for b := range 256 {
		inputs = append(inputs, string([]byte{byte(b)}), "a"+string([]byte{byte(b)}))
	}
	for _, c := range checks {
		for _, in := range inputs {
			if got, want := c.is(in), c.pattern.MatchString(in); got != want {
				t.Errorf("%s %q: %v, the pattern says %v", c.name, in, got, want)
			}
		}
	}
}
