package chaos

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestHTTPSettingsAreRefusedInOneLine: every bad value of the HTTP settings,
// from the environment or a body, is one line naming the setting, the
// value and what is allowed; and nothing that could never apply starts.
func TestHTTPSettingsAreRefusedInOneLine(t *testing.T) {
	env := func(kv ...string) map[string]string {
		m := map[string]string{"CHAOS": "error"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{env("CHAOS_DEPENDENCIES", "redis,Recommender!"), `invalid CHAOS_DEPENDENCIES "redis,recommender!": want redis and/or`},
		{env("CHAOS_DEPENDENCIES", "recommender,"), `invalid CHAOS_DEPENDENCIES "recommender,": want redis and/or`},
		{env("CHAOS_DEPENDENCIES", "recommender", "CHAOS_HTTP_FAULT", "slow"), `invalid CHAOS_HTTP_FAULT "slow": want error (a transport error, the default), status`},
		{env("CHAOS_HTTP_FAULT", "status"), `invalid CHAOS_HTTP_FAULT "status": want an HTTP dependency in dependencies too`},
		{env("CHAOS_DEPENDENCIES", "recommender", "CHAOS_HTTP_STATUS", "200"), `invalid CHAOS_HTTP_STATUS "200": want an HTTP status from 400 to 599`},
		{env("CHAOS_DEPENDENCIES", "recommender", "CHAOS_HTTP_STATUS", "5xx"), `invalid CHAOS_HTTP_STATUS "5xx": want an HTTP status from 400 to 599`},
		{env("CHAOS_DEPENDENCIES", "recommender", "CHAOS_HTTP_HOSTS", "http://a"), `invalid CHAOS_HTTP_HOSTS "http://a": want host names or host:port`},
		{env("CHAOS_DEPENDENCIES", "recommender", "CHAOS_HTTP_PATHS", "/a,b"), `invalid CHAOS_HTTP_PATHS "/a,b": want path prefixes starting with /`},
		{env("CHAOS_HTTP_PATHS", "/a"), `invalid CHAOS_HTTP_PATHS "/a": want an HTTP dependency in dependencies too`},
		{env("CHAOS_DEPENDENCIES", "recommender", "CHAOS_DELAY_AFTER_HEADERS", "later"), `invalid CHAOS_DELAY_AFTER_HEADERS "later": want true (hold the response body`},
		{env("CHAOS_DELAY_AFTER_HEADERS", "true"), `invalid CHAOS_DELAY_AFTER_HEADERS "true": want an HTTP dependency`},
		{env("CHAOS_DEPENDENCIES", "recommender", "CHAOS_LAYER", "connection"), `invalid CHAOS_DEPENDENCIES "recommender": want redis among them with layer connection`},
		{env("CHAOS_DEPENDENCIES", "recommender", "CHAOS_ERROR_REPLY", "LOADING"), `invalid CHAOS_DEPENDENCIES "recommender": want redis among them with error_reply`},
		{env("CHAOS_DEPENDENCIES", "recommender", "CHAOS_COMMANDS", "get"), `invalid CHAOS_DEPENDENCIES "recommender": want redis among them with commands`},
	} {
		_, err := FromEnv(mapGetenv(tc.env))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: %v, want one line beginning %s", tc.env, err, tc.want)
		}
	}
	for _, tc := range []struct{ body, want string }{
		{`{"experiment":"error","dependencies":["recommender"],"http_status":99}`, `invalid http_status "99": want an HTTP status from 400 to 599`},
		{`{"experiment":"error","dependencies":["recommender"],"http_fault":"Reset"}`, `invalid http_fault "reset": want error`},
		{`{"experiment":"error","dependencies":[""]}`, `invalid dependencies "": want redis and/or`},
		{`{"experiment":"error","http_hosts":["a"]}`, `invalid http_hosts "a": want an HTTP dependency in dependencies too`},
	} {
		_, err := FromJSON([]byte(tc.body))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %s", tc.body, err, tc.want)
		}
	}
	// A dependency the service does not register, at start and at Use.
	cfg, err := FromEnv(mapGetenv(env("CHAOS_DEPENDENCIES", "redis,recommender")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg, Options{Token: testToken}); err == nil || err.Error() != `invalid CHAOS_DEPENDENCIES "redis,recommender": recommender is not a dependency this service registers; want some of redis` {
		t.Errorf("New: %v", err)
	}
	e := testExperiment(t, map[string]string{}, httpOptions)
	body, _ := FromJSON([]byte(`{"experiment":"error","dependencies":["recommendr"]}`))
	if err := e.Use(body); err == nil || err.Error() != `invalid dependencies "recommendr": recommendr is not a dependency this service registers; want some of redis, recommender, other` {
		t.Errorf("Use: %v", err)
	}
	for _, names := range [][]string{{"redis"}, {"Bad name"}, {"a", "a"}} {
		if _, err := New(Off(), Options{Token: testToken, HTTPDependencies: names}); err == nil || !strings.HasPrefix(err.Error(), "invalid chaos.Options.HTTPDependencies") {
			t.Errorf("HTTPDependencies %q: %v", names, err)
		}
	}
}

// TestHTTPSettingsEverywhere: the fields read from the environment, PUT and
// PATCH, show in the status, survive a fleet record and load from an
// experiment file; an experiment of Redis alone shows none of them.
func TestHTTPSettingsEverywhere(t *testing.T) {
	cfg, err := FromEnv(mapGetenv(map[string]string{"CHAOS": "latency,error", "CHAOS_DEPENDENCIES": " Recommender ,redis",
		"CHAOS_HTTP_FAULT": "status", "CHAOS_HTTP_HOSTS": "Recommender.internal:8081", "CHAOS_HTTP_PATHS": "/recommendations",
		"CHAOS_DELAY_AFTER_HEADERS": "true", "CHAOS_SEED": "5"}))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(cfg)
	for _, want := range []string{`"dependencies":["recommender","redis"]`, `"http_fault":"status"`, `"http_status":503`,
		`"http_hosts":["recommender.internal:8081"]`, `"http_paths":["/recommendations"]`, `"delay_after_headers":true`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("FromEnv: %s lacks %s", b, want)
		}
	}
	back, err := FromJSON(recordConfig(cfg))
	if b2, _ := json.Marshal(back); err != nil || string(b2) != string(b) {
		t.Errorf("the fleet record reads back as %s (%v), want %s", b2, err, b)
	}

	e := testExperiment(t, map[string]string{}, httpOptions)
	e.Transport("recommender", nil) // the status shows the dependencies whose calls are wrapped
	h := e.Handler()
	if rec := serve(h, http.MethodPut, "127.0.0.1:1", "127.0.0.1:2", `{"experiment":"error","dependencies":["recommender"],"http_fault":"status"}`); rec.Code != 200 {
		t.Fatalf("PUT: %d %s", rec.Code, rec.Body)
	}
	if rec := serve(h, http.MethodPatch, "127.0.0.1:1", "127.0.0.1:2", `{"http_fault":"hang","http_paths":["/r"]}`); rec.Code != 200 ||
		!strings.Contains(rec.Body.String(), `"http_fault":"hang","http_paths":["/r"]`) || !strings.Contains(rec.Body.String(), `"http":{`) {
		t.Errorf("PATCH: %d %s", rec.Code, rec.Body)
	}
	if rec := serve(h, http.MethodPatch, "127.0.0.1:1", "127.0.0.1:2", `{"http_status":700}`); rec.Code != 400 || rec.Body.String() != "invalid http_status \"700\": "+wantHTTPStatus+"\n" {
		t.Errorf("PATCH of a bad status: %d %q", rec.Code, rec.Body)
	}

	plain := testExperiment(t, map[string]string{"CHAOS": "error"}, Options{})
	s, _ := json.Marshal(plain.Status(""))
	for _, field := range []string{"dependencies", "http_", "delay_after_headers", `"http"`} {
		if strings.Contains(string(s), field) {
			t.Errorf("the status of an experiment of Redis alone shows %s: %s", field, s)
		}
	}

	file := strings.Replace(goodFile, "fault: {experiment: latency, delay_seconds: 0.1}",
		"fault: {experiment: error, dependencies: [recommender], http_fault: status, http_status: 429, http_paths: [/recommendations]}", 1)
	p := filepath.Join(t.TempDir(), "http.yaml")
	os.WriteFile(p, []byte(file), 0o644)
	if f, err := readRunFile(p); err != nil || f.Steps[0].fault["http_status"] != 429 {
		t.Errorf("an experiment file with the HTTP fields: %v", err)
	}
}

// TestHTTPMetrics: each dependency's series, by the chaos_dependency label.
func TestHTTPMetrics(t *testing.T) {
	dep := newDependency(t)
	e, c := httpExperiment(t, `{"experiment":"error","error_every":2,"dependencies":["recommender"]}`, "recommender")
	reg := prometheus.NewPedanticRegistry()
	if err := e.Register(reg); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		call(context.Background(), c, dep.URL)
	}
	g := gather(t, reg)
	g.expect(t, 2, "chaos_http_errors_injected_total chaos_dependency=recommender run_id=")
	if _, ok := g["chaos_http_errors_injected_total chaos_dependency=other run_id="]; ok {
		t.Errorf("a series of the dependency other, whose calls nothing wraps")
	}
	g.expect(t, 4, "chaos_http_calls_total chaos_dependency=recommender run_id=")
	g.expect(t, 0, "chaos_http_faults_in_progress chaos_dependency=recommender run_id=")
	g.expect(t, 1, "chaos_experiment_active experiment=error run_id=")
}

// Settings that could never apply to the experiment they are part of are
// refused, each in one line; with no experiment running they wait for one.
func TestHTTPSettingsThatCannotApply(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{`{"experiment":"error","dependencies":["recommender"],"http_status":500}`, `invalid http_status "500": want http_fault status with http_status`},
		{`{"experiment":"latency","dependencies":["recommender"],"http_fault":"hang"}`, `invalid http_fault "hang": want an experiment that fails calls`},
		{`{"experiment":"latency","dependencies":["recommender"],"http_fault":"status"}`, `invalid http_fault "status": want an experiment that fails calls`},
		{`{"experiment":"error","dependencies":["recommender"],"delay_after_headers":true}`, `invalid delay_after_headers "true": want a latency experiment`},
	} {
		if _, err := FromJSON([]byte(c.body)); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: %v, want %s…", c.body, err, c.want)
		}
	}
	for _, body := range []string{
		`{"experiment":"none","dependencies":["recommender"],"http_fault":"hang","delay_after_headers":true}`,
		`{"experiment":"error","dependencies":["recommender"],"http_fault":"status","http_status":500}`,
		`{"experiment":"latency,error","dependencies":["recommender"],"http_fault":"hang","delay_after_headers":true}`,
	} {
		if _, err := FromJSON([]byte(body)); err != nil {
			t.Errorf("%s: %v", body, err)
		}
	}
	cfg, err := FromJSON([]byte(`{"dependencies":["recommender","redis","recommender"]}`))
	if err != nil || !slices.Equal(cfg.Dependencies, []string{"recommender", "redis"}) {
		t.Errorf("dependencies %v (%v), want recommender,redis", cfg.Dependencies, err)
	}
}
