package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestRedisPasswordNeverLeaves runs the program every way that prints
// something with a password in REDIS_URL: a refused URL, -h, a wrong
// password, and a serving app whose every page is fetched. No output, log
// line or response may contain the password.
func TestRedisPasswordNeverLeaves(t *testing.T) {
	const password = "s3cretPW"
	server, err := startRedisServer("--requirepass", password)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(server.stop)
	goodURL := "redis://default:" + password + "@" + server.addr() + "/0"
	var everything bytes.Buffer // every byte the program sent anywhere

	// Runs that end at once: each must return an error or show help.
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"bad port", nil, map[string]string{"REDIS_URL": "redis://user:" + password + "@host:badport/0"}},
		{"bad port, flag", []string{"-redis-url", "redis://user:" + password + "@host:badport/0"}, nil},
		{"bad scheme", nil, map[string]string{"REDIS_URL": "http://user:" + password + "@host:6379/0"}},
		{"bad option", nil, map[string]string{"REDIS_URL": "redis://user:" + password + "@host:6379/0?nope=1"}},
		{"bad pool size", nil, map[string]string{"REDIS_URL": "redis://user:" + password + "@host:6379/0?pool_size=-5"}},
		{"bad cluster addr", nil, map[string]string{"REDIS_URL": "redis://user:" + password + "@host:6379/0?addr=h2:x"}},
		{"control character", nil, map[string]string{"REDIS_URL": "redis://user:" + password + "@ho\x7fst:6379/0"}},
		{"password with a quote", nil, map[string]string{"REDIS_URL": "redis://user:" + password + `"x@host:bad/0`}},
		{"password with a slash", nil, map[string]string{"REDIS_URL": "redis://user:" + password + "/x=@host:6379/0"}},
		{"password with a question mark", nil, map[string]string{"REDIS_URL": "redis://user:" + password + "?x@host:6379/0"}},
		{"password with a hash", nil, map[string]string{"REDIS_URL": "redis://user:" + password + "#x@host:6379/0"}},
		{"password with a slash, help", []string{"-h"}, map[string]string{"REDIS_URL": "redis://user:" + password + "/x=@host:6379/0"}},
		{"help", []string{"-h"}, map[string]string{"REDIS_URL": goodURL}},
		{"other bad setting", nil, map[string]string{"REDIS_URL": goodURL, "REDIS_TIMEOUT": "x"}},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), tc.args, mapGetenv(tc.env), &stdout, &stderr)
		if !strings.HasSuffix(tc.name, "help") {
			var usage usageError
			if !errors.As(err, &usage) {
				t.Errorf("%s: run = %v, want a usage error", tc.name, err)
			}
		}
		if err != nil {
			everything.WriteString(err.Error() + "\n")
		}
		everything.Write(stdout.Bytes())
		everything.Write(stderr.Bytes())
		if strings.Contains(stdout.String()+stderr.String()+errString(err), password) {
			t.Errorf("%s: the password is shown:\n%s%s%v", tc.name, stdout.String(), stderr.String(), err)
		}
	}

	// A wrong password: the app serves pages without interests and logs why.
	wrong := startApp(t, map[string]string{"REDIS_URL": "redis://default:wr0ng" + password + "@" + server.addr() + "/0"})
	fetchEverything(t, wrong, &everything)
	if err := wrong.stop(); err != nil {
		t.Error(err)
	}
	everything.WriteString(wrong.logs.String())
	if !strings.Contains(wrong.logs.String(), "WRONGPASS") {
		t.Errorf("a wrong password was not logged:\n%s", wrong.logs.String())
	}

	// The right password, both log formats; Redis goes away mid-run, so
	// that its errors are logged too.
	app := startApp(t, map[string]string{"REDIS_URL": goodURL})
	fetchEverything(t, app, &everything)
	server.stop()
	fetchEverything(t, app, &everything)
	if err := server.start(); err != nil {
		t.Fatal(err)
	}
	if err := app.stop(); err != nil {
		t.Error(err)
	}
	everything.WriteString(app.logs.String())

	logs := newLogBuffer()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, onFreePorts, mapGetenv(map[string]string{"REDIS_URL": goodURL, "LOG_FORMAT": "json", "CHAOS_CONTROL_TOKEN": testControlToken}), io.Discard, logs)
	}()
	jsonApp := &testApp{url: "http://" + logs.waitFor(t, regexp.MustCompile(`"msg":"listening","addr":"([^"]+)"`))[1], logs: logs}
	fetchEverything(t, jsonApp, &everything)
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
	everything.WriteString(logs.String())

	if i := strings.Index(everything.String(), password); i >= 0 {
		t.Errorf("the password appears in the program's output:\n%s", everything.String()[max(0, i-300):min(everything.Len(), i+100)])
	}
	if !strings.Contains(everything.String(), "xxxxx") {
		t.Errorf("no output showed the redacted URL, so the test saw none of them:\n%s", everything.String())
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// fetchEverything requests every route and adds each response, headers
// included, to out.
func fetchEverything(t *testing.T, app *testApp, out *bytes.Buffer) {
	t.Helper()
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/", ""}, {"GET", "/search?query=lamp", ""}, {"POST", "/search", "query=desk"},
		{"GET", "/reset", ""}, {"GET", "/healthz", ""}, {"GET", "/readyz", ""},
		{"GET", "/debug/chaos", ""}, {"PUT", "/debug/chaos", `{"experiment":"nope"}`}, {"GET", "/nope", ""},
	} {
		var body io.Reader
		if r.body != "" {
			body = strings.NewReader(r.body)
		}
		contentType := ""
		if r.method == "POST" {
			contentType = "application/x-www-form-urlencoded"
		}
		resp := app.do(t, r.method, r.path, sessionCookie+"=secrets", contentType, body)
		(&http.Response{Header: resp.header}).Header.Write(out)
		out.WriteString(resp.body)
	}
	if app.admin == nil {
		return
	}
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/", ""}, {"GET", "/metrics", ""}, {"GET", "/debug/pprof/", ""}, {"GET", "/debug/pprof/cmdline", ""},
		{"GET", "/debug/chaos", ""}, {"PUT", "/debug/chaos", `{"experiment":"nope"}`},
	} {
		var body io.Reader
		if r.body != "" {
			body = strings.NewReader(r.body)
		}
		req, err := http.NewRequest(r.method, app.admin.url+r.path, body)
		if err != nil {
			t.Fatal(err)
		}
		if r.method == "PUT" { // past the control token, to the refusal of the body
			req.Header.Set("Authorization", "Bearer "+testControlToken)
		}
		resp := app.admin.send(t, req)
		(&http.Response{Header: resp.header}).Header.Write(out)
		out.WriteString(resp.body)
	}
}
