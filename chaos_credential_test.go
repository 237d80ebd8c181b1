//go:build chaos

package main

import (
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
)

// changeChaos sends method with body to /debug/chaos on the app's admin
// listener, with token as its bearer credential ("": no Authorization).
func changeChaos(t *testing.T, app *testApp, method, token, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, app.admin.url+"/debug/chaos", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return app.admin.send(t, req)
}

// TestDebugChaosChangesNeedTheToken: a loopback peer is not a person (a
// sidecar, an SSH tunnel or socat forwards from loopback and adds no
// header), so PUT, PATCH and DELETE need the control token; without it, or
// with another, they are 401 and change nothing. GET stays open and shows
// no secret.
func TestDebugChaosChangesNeedTheToken(t *testing.T) {
	const token = "credential-test-0123456789abcdef"
	app := startApp(t, map[string]string{"CHAOS": "error", "CHAOS_ERROR_EVERY": "3", "CHAOS_CONTROL_TOKEN": token})
	for _, method := range []string{http.MethodPut, http.MethodPatch, http.MethodDelete} {
		for _, sent := range []string{"", "wrong-token-0123456789abcdef0000"} {
			resp := changeChaos(t, app, method, sent, `{"experiment":"latency","delay_seconds":0.5}`)
			if resp.status != http.StatusUnauthorized || resp.header.Get("WWW-Authenticate") != "Bearer" ||
				strings.Count(resp.body, "\n") != 1 {
				t.Errorf("%s with token %q = %d %q, WWW-Authenticate %q; want 401 with one line and Bearer",
					method, sent, resp.status, resp.body, resp.header.Get("WWW-Authenticate"))
			}
			if s := chaosStatusOf(t, app); s.Experiment != "error" || s.ErrorEvery != 3 || s.State != "running" {
				t.Fatalf("%s with token %q changed the experiment to %s, %s", method, sent, s.Experiment, s.State)
			}
		}
	}
	if resp := changeChaos(t, app, http.MethodPut, token, `{"experiment":"latency","delay_seconds":0.01}`); resp.status != http.StatusOK {
		t.Errorf("PUT with the token = %d %s", resp.status, resp.body)
	}
	if s := chaosStatusOf(t, app); s.Experiment != "latency" {
		t.Errorf("PUT with the token left the experiment at %s", s.Experiment)
	}
	if get := app.admin.get(t, "/debug/chaos", ""); strings.Contains(get.body, token) {
		t.Errorf("GET /debug/chaos shows the token: %s", get.body)
	}
}

// TestGeneratedTokenIsInAFileOnlyItsUserReads: with no token given, the
// chaos build makes one at start, writes it to a new file of mode 0600 and
// logs that file's path as token_file; the token itself is never logged.
func TestGeneratedTokenIsInAFileOnlyItsUserReads(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir) // os.CreateTemp's directory
	app := startApp(t, map[string]string{"CHAOS": "error", "CHAOS_CONTROL_TOKEN": ""})
	m := regexp.MustCompile(`token_file=(\S+)`).FindStringSubmatch(app.logs.String())
	if m == nil {
		t.Fatalf("the log names no token_file:\n%s", app.logs)
	}
	path := m[1]
	if !strings.HasPrefix(path, dir+string(os.PathSeparator)) {
		t.Errorf("token_file %s is not in TMPDIR %s", path, dir)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode(); mode != 0o600 {
		t.Errorf("token_file mode %v, want -rw-------", mode)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSuffix(string(raw), "\n")
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(token) {
		t.Fatalf("token_file holds %q, want 32 random bytes in hex", raw)
	}
	if strings.Contains(app.logs.String(), token) {
		t.Errorf("the log shows the token:\n%s", app.logs)
	}
	if resp := changeChaos(t, app, http.MethodDelete, "", ""); resp.status != http.StatusUnauthorized {
		t.Errorf("DELETE without the token = %d", resp.status)
	}
	if resp := changeChaos(t, app, http.MethodDelete, token, ""); resp.status != http.StatusOK {
		t.Errorf("DELETE with the token from token_file = %d %s", resp.status, resp.body)
	}
}
