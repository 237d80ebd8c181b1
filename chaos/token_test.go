package chaos

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func TestTokenFromEnv(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	const token = "0123456789abcdef0123"
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{nil, ""},
		{map[string]string{"CHAOS_CONTROL_TOKEN": token}, token},
		{map[string]string{"CHAOS_CONTROL_TOKEN_FILE": file("lf", token+"\n")}, token},
		{map[string]string{"CHAOS_CONTROL_TOKEN_FILE": file("crlf", token+"\r\n")}, token},
		{map[string]string{"CHAOS_CONTROL_TOKEN_FILE": file("bare", token)}, token},
	} {
		if got, err := TokenFromEnv(mapGetenv(tc.env)); err != nil || got != tc.want {
			t.Errorf("env %v: %q, %v; want %q", tc.env, got, err, tc.want)
		}
	}
	missing := filepath.Join(dir, "missing")
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"CHAOS_CONTROL_TOKEN": "short-secret"},
			`invalid CHAOS_CONTROL_TOKEN: 12 bytes is too short to be a secret; want 16 to 1024 printable ASCII characters without spaces, such as the output of openssl rand -hex 16`},
		{map[string]string{"CHAOS_CONTROL_TOKEN": "0123456789 abcdef"}, `invalid CHAOS_CONTROL_TOKEN: byte 11 is not printable ASCII; want 16 to 1024`},
		{map[string]string{"CHAOS_CONTROL_TOKEN": strings.Repeat("x", 1025)}, `invalid CHAOS_CONTROL_TOKEN: 1025 bytes is too long`},
		{map[string]string{"CHAOS_CONTROL_TOKEN": token, "CHAOS_CONTROL_TOKEN_FILE": file("both", token)},
			`CHAOS_CONTROL_TOKEN and CHAOS_CONTROL_TOKEN_FILE are both set: set one, the token or the file that holds it`},
		{map[string]string{"CHAOS_CONTROL_TOKEN_FILE": missing}, `invalid CHAOS_CONTROL_TOKEN_FILE "` + missing + `": no such file or directory`},
		{map[string]string{"CHAOS_CONTROL_TOKEN_FILE": dir}, `invalid CHAOS_CONTROL_TOKEN_FILE "` + dir + `": is a directory`},
		{map[string]string{"CHAOS_CONTROL_TOKEN_FILE": file("empty", "")}, `invalid CHAOS_CONTROL_TOKEN_FILE "` + dir + `/empty": the file is empty; want 16 to 1024`},
		{map[string]string{"CHAOS_CONTROL_TOKEN_FILE": file("newline", "\n")}, `invalid CHAOS_CONTROL_TOKEN_FILE "` + dir + `/newline": the file is empty`},
		{map[string]string{"CHAOS_CONTROL_TOKEN_FILE": file("two-newlines", token+"\n\n")}, `invalid CHAOS_CONTROL_TOKEN_FILE "` + dir + `/two-newlines": byte 21 is not printable ASCII`},
		{map[string]string{"CHAOS_CONTROL_TOKEN_FILE": file("short", "secret\n")}, `invalid CHAOS_CONTROL_TOKEN_FILE "` + dir + `/short": 6 bytes is too short to be a secret`},
		{map[string]string{"CHAOS_CONTROL_TOKEN_FILE": file("long", strings.Repeat("x", 5000))}, `invalid CHAOS_CONTROL_TOKEN_FILE "` + dir + `/long": 1027 bytes is too long`},
	} {
		got, err := TokenFromEnv(mapGetenv(tc.env))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") || got != "" {
			t.Errorf("env %v: %q, %v; want one line starting %q", tc.env, got, err, tc.want)
		}
		if err != nil && len(tc.env["CHAOS_CONTROL_TOKEN"]) >= 8 && strings.Contains(err.Error(), tc.env["CHAOS_CONTROL_TOKEN"]) {
			t.Errorf("env %v: the error shows the token: %v", tc.env, err)
		}
	}
}

// readSpy records whether a request's body was read.
type readSpy struct {
	r    io.Reader
	read bool
}

func (s *readSpy) Read(p []byte) (int, error) { s.read = true; return s.r.Read(p) }

// TestChangesNeedTheToken: PUT, PATCH and DELETE from a loopback peer are
// refused without the control token or with another, before the body is
// read, and change nothing; with it they work. GET needs none and shows none.
func TestChangesNeedTheToken(t *testing.T) {
	e, handler := controlled(t)
	start := e.Config()
	for _, method := range []string{http.MethodPut, http.MethodPatch, http.MethodDelete} {
		for _, authorization := range []string{"", "Bearer", "Bearer ", "Bearer wrong-" + testToken, "Bearer " + testToken + "x", "Basic " + testToken, testToken} {
			body := &readSpy{r: strings.NewReader(`{"experiment":"latency","delay_seconds":1}`)}
			req, _ := http.NewRequest(method, "/debug/chaos", body)
			req.Host, req.RemoteAddr = "127.0.0.1", "127.0.0.1:1"
			if authorization != "" {
				req.Header.Set("Authorization", authorization)
			}
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)
			if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") != "Bearer" || strings.Count(rec.Body.String(), "\n") != 1 {
				t.Errorf("%s with Authorization %q = %d %q, WWW-Authenticate %q; want 401, one line, Bearer",
					method, authorization, rec.Code, rec.Body, rec.Header().Get("WWW-Authenticate"))
			}
			if body.read {
				t.Errorf("%s with Authorization %q: the body was read before the token was checked", method, authorization)
			}
			if now := e.Config(); !reflect.DeepEqual(now, start) {
				t.Fatalf("%s with Authorization %q changed the experiment to %+v", method, authorization, now)
			}
		}
	}
	if rec := serveWith(handler, http.MethodGet, "127.0.0.1", "127.0.0.1:1", "", ""); rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), testToken) {
		t.Errorf("GET without a token = %d, or shows the token: %s", rec.Code, rec.Body)
	}
	if rec := serveWith(handler, http.MethodPatch, "127.0.0.1", "127.0.0.1:1", testToken, `{"error_every":4}`); rec.Code != http.StatusOK || e.Config().ErrorEvery != 4 {
		t.Errorf("PATCH with the token = %d %s", rec.Code, rec.Body)
	}
	// The scheme is case-insensitive (RFC 9110); the token is not.
	req, _ := http.NewRequest(http.MethodPut, "/debug/chaos", strings.NewReader(`{"experiment":"latency","delay_seconds":0.01}`))
	req.Host, req.RemoteAddr = "127.0.0.1", "127.0.0.1:1"
	req.Header.Set("Authorization", "bearer "+testToken)
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || e.Config().Experiment != "latency" {
		t.Errorf("PUT with bearer in lower case = %d %s", rec.Code, rec.Body)
	}
	if rec := serveWith(handler, http.MethodDelete, "127.0.0.1", "127.0.0.1:1", testToken, ""); rec.Code != http.StatusOK || e.Config().Experiment != "none" {
		t.Errorf("DELETE with the token = %d %s", rec.Code, rec.Body)
	}
}

// TestNewWritesTheTokenItGenerates: with no Options.Token, New makes one,
// writes it to a new file of mode 0600 and logs the file's path as
// token_file, never the token; the handler takes the token in that file.
func TestNewWritesTheTokenItGenerates(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	logs := &syncLog{}
	cfg, err := FromEnv(mapGetenv(map[string]string{"CHAOS": "error"}))
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	m := regexp.MustCompile(`level=WARN msg="chaos control token generated[^"]*" token_file=(\S+)\n`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("the log names no token_file:\n%s", logs)
	}
	if filepath.Dir(m[1]) != dir {
		t.Errorf("token_file %s is not in TMPDIR %s", m[1], dir)
	}
	info, err := os.Stat(m[1])
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode() != 0o600 {
		t.Errorf("token_file mode %v, want -rw-------", info.Mode())
	}
	raw, err := os.ReadFile(m[1])
	if err != nil {
		t.Fatal(err)
	}
	token, ok := strings.CutSuffix(string(raw), "\n")
	if !ok || !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(token) {
		t.Fatalf("token_file holds %q, want 32 random bytes in hex and a newline", raw)
	}
	if strings.Contains(logs.String(), token) {
		t.Errorf("the log shows the token:\n%s", logs)
	}
	// The file is what CHAOS_CONTROL_TOKEN_FILE reads.
	if got, err := TokenFromEnv(mapGetenv(map[string]string{"CHAOS_CONTROL_TOKEN_FILE": m[1]})); err != nil || got != token {
		t.Errorf("TokenFromEnv of token_file = %q, %v", got, err)
	}
	handler := e.Handler()
	if rec := serveWith(handler, http.MethodDelete, "127.0.0.1", "127.0.0.1:1", token, ""); rec.Code != http.StatusOK {
		t.Errorf("DELETE with the generated token = %d %s", rec.Code, rec.Body)
	}
	// A second experiment writes a file of its own.
	other, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Stop()
	if rec := serveWith(other.Handler(), http.MethodDelete, "127.0.0.1", "127.0.0.1:1", token, ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("another experiment took this one's token: %d", rec.Code)
	}
}

func TestNewRefusesAWeakToken(t *testing.T) {
	cfg := Off()
	for token, want := range map[string]string{
		"short":                 "invalid chaos.Options.Token: 5 bytes is too short to be a secret; want 16 to 1024",
		"0123456789abcdef\n":    "invalid chaos.Options.Token: byte 17 is not printable ASCII",
		strings.Repeat("é", 10): "invalid chaos.Options.Token: byte 1 is not printable ASCII",
	} {
		if e, err := New(cfg, Options{Token: token}); e != nil || err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Token %q: %v, %v; want %q", token, e, err, want)
		}
	}
}
