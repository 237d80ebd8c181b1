package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"
)

// scrape reads the app's /metrics with the client library's own parser.
func scrape(t *testing.T, app *testApp) scraped {
	t.Helper()
	if app.admin == nil {
		t.Fatal("the app has no admin listener")
	}
	resp := app.admin.get(t, "/metrics", "")
	if resp.status != http.StatusOK {
		t.Fatalf("GET /metrics = %d %s", resp.status, resp.body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(resp.body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, resp.body)
	}
	return scraped{families: families, text: resp.body}
}

type scraped struct {
	families map[string]*dto.MetricFamily
	text     string
}

// value is the series' value (a histogram's: its count), or -1 if the
// family has no series with exactly these labels.
func (s scraped) value(name string, labels ...string) float64 {
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, m := range s.families[name].GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		if !maps.Equal(got, want) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// expect checks exact values; a series that must stay at zero may also be
// absent.
func (s scraped) expect(t *testing.T, want float64, name string, labels ...string) {
	t.Helper()
	got := s.value(name, labels...)
	if got == want || want == 0 && got == -1 {
		return
	}
	t.Errorf("%s%q = %v, want %v", name, labels, got, want)
}

func TestMetricsCountKnownTraffic(t *testing.T) {
	app := startApp(t, nil)
	for _, q := range []string{"apple", "pear", "plum"} {
		if resp := app.searchFor(t, "metrics-known", q); !hasRecommendation(resp.body) {
			t.Fatalf("search %q: no recommendation", q)
		}
	}
	if resp := app.get(t, "/search", "sessionID=metrics-new"); resp.status != http.StatusOK || hasRecommendation(resp.body) {
		t.Fatalf("a new session's first page = %d, recommending: %v", resp.status, hasRecommendation(resp.body))
	}
	app.get(t, "/search?query=%01", "")                  // 400
	app.get(t, "/no-such-page", "")                      // 404
	app.do(t, http.MethodDelete, "/search", "", "", nil) // 405
	app.do(t, "BREW", "/search", "", "", nil)            // 405, with a method no label may carry
	app.get(t, "/reset", "")                             // 302

	s := scrape(t, app)
	const requests, durations = "shopsession_http_requests_total", "shopsession_http_request_duration_seconds"
	s.expect(t, 3, requests, "route", "/search", "method", "POST", "code", "200")
	s.expect(t, 1, requests, "route", "/search", "method", "GET", "code", "200")
	s.expect(t, 1, requests, "route", "/search", "method", "GET", "code", "400")
	s.expect(t, 1, requests, "route", "unmatched", "method", "GET", "code", "404")
	s.expect(t, 1, requests, "route", "unmatched", "method", "DELETE", "code", "405")
	s.expect(t, 1, requests, "route", "unmatched", "method", "other", "code", "405")
	s.expect(t, 1, requests, "route", "/reset", "method", "GET", "code", "302")
	s.expect(t, 1, requests, "route", "/healthz", "method", "GET", "code", "200") // the start-up check
	s.expect(t, 3, durations, "route", "/search", "method", "POST")
	s.expect(t, 2, durations, "route", "/search", "method", "GET")

	s.expect(t, 3, "shopsession_search_pages_total", "outcome", "with_recommendations")
	s.expect(t, 1, "shopsession_search_pages_total", "outcome", "without_recommendations")
	// Four pages, each one GET; three compare-and-sets, for the new session
	// had nothing to remember. The script was loaded at start-up, so no EVAL
	// after a NOSCRIPT.
	s.expect(t, 4, "shopsession_redis_commands_total", "command", "get")
	s.expect(t, 3, "shopsession_redis_commands_total", "command", "evalsha")
	s.expect(t, 1, "shopsession_redis_commands_total", "command", "script")
	s.expect(t, 0, "shopsession_redis_commands_total", "command", "eval")
	s.expect(t, 0, "shopsession_redis_commands_total", "command", "other")
	for _, cmd := range redisCommandLabels {
		s.expect(t, 0, "shopsession_redis_errors_total", "command", cmd)
	}
	s.expect(t, 0, "shopsession_redis_cas_conflicts_total")
	for _, family := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
		if s.families[family] == nil {
			t.Errorf("no %s: the Go runtime and process collectors are missing", family)
		}
	}

	// Label values come from fixed sets only: no session id, query or path.
	for _, secret := range []string{"metrics-known", "metrics-new", "apple", "no-such-page", "BREW"} {
		if strings.Contains(s.text, secret) {
			t.Errorf("/metrics contains %q", secret)
		}
	}
	problems, err := promlint.New(strings.NewReader(s.text)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, metricsNamespace+"_") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}
}

func TestMetricsCountRedisErrors(t *testing.T) {
	server := ownRedisServer(t)
	app := startApp(t, map[string]string{"REDIS_URL": server.url(), "REDIS_TIMEOUT": "500ms"})
	app.searchFor(t, "metrics-down", "apple")
	server.stop()
	for range 3 {
		if resp := app.searchFor(t, "metrics-down", "pear"); resp.status != http.StatusOK || hasRecommendation(resp.body) {
			t.Fatalf("search with Redis stopped = %d, recommending: %v", resp.status, hasRecommendation(resp.body))
		}
	}
	s := scrape(t, app)
	s.expect(t, 4, "shopsession_redis_commands_total", "command", "get")
	s.expect(t, 3, "shopsession_redis_errors_total", "command", "get")
	s.expect(t, 1, "shopsession_redis_commands_total", "command", "evalsha") // no write after a failed read
	s.expect(t, 0, "shopsession_redis_errors_total", "command", "evalsha")
	s.expect(t, 1, "shopsession_search_pages_total", "outcome", "with_recommendations")
	s.expect(t, 3, "shopsession_search_pages_total", "outcome", "without_recommendations")
}

// conflictOnce writes the session's key behind the store's back once, between
// its read and its compare-and-set.
type conflictOnce struct {
	key  string
	rdb  *redis.Client
	done bool
}

func (h *conflictOnce) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *conflictOnce) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *conflictOnce) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if !h.done && cmd.Name() == "get" {
			h.done = true
			if err := h.rdb.Set(ctx, h.key, `["from another search"]`, 0).Err(); err != nil {
				return err
			}
		}
		return err
	}
}

func TestMetricsCountCompareAndSetConflicts(t *testing.T) {
	m := newMetrics()
	rdb := redis.NewClient(&redis.Options{Addr: testRedis.addr()})
	t.Cleanup(func() { rdb.Close() })
	m.watchRedis(rdb)
	rdb.AddHook(&conflictOnce{key: sessionKeyPrefix + "metrics-cas", rdb: testRedis.client(t)})
	st := newStore(rdb, 2*time.Second, time.Hour, breakerSettings{failures: 5, cooldown: time.Minute}, slog.New(slog.NewTextHandler(io.Discard, nil)), m)
	got, err := st.remember(t.Context(), "metrics-cas", "apple")
	if err != nil || !slices.Equal(got, []string{"from another search", "apple"}) {
		t.Fatalf("remember = %q, %v", got, err)
	}
	if n := valueOf(t, m, "shopsession_redis_cas_conflicts_total"); n != 1 {
		t.Errorf("conflicts = %v, want 1", n)
	}
}

// valueOf gathers one unlabelled series from m's registry.
func valueOf(t *testing.T, m *metrics, name string) float64 {
	t.Helper()
	families, err := m.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no %s", name)
	return 0
}

func TestBreakerMetrics(t *testing.T) {
	m := newMetrics()
	m.breakerAdded("read")
	m.breakerAdded("write")
	m.watchBreaker("closed")
	m.breakerStateChanged("read", "closed", "open", "open")
	m.breakerStateChanged("read", "open", "half-open", "half-open")
	m.breakerStateChanged("read", "half-open", "open", "open")
	degraded := true
	m.watchDegraded(func() bool { return degraded })
	families, err := m.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	s := scraped{families: map[string]*dto.MetricFamily{}}
	for _, f := range families {
		s.families[f.GetName()] = f
	}
	s.expect(t, 1, "shopsession_redis_breaker_state", "state", "open")
	s.expect(t, 0, "shopsession_redis_breaker_state", "state", "closed")
	s.expect(t, 0, "shopsession_redis_breaker_state", "state", "half-open")
	s.expect(t, 1, "shopsession_redis_breaker_transitions_total", "from", "closed", "to", "open")
	s.expect(t, 1, "shopsession_redis_breaker_transitions_total", "from", "half-open", "to", "open")
	s.expect(t, 1, "shopsession_redis_breaker_transitions_total", "from", "open", "to", "half-open")
	s.expect(t, 1, "shopsession_degraded")
	s.expect(t, 1, "shopsession_redis_breakers", "operation", "read", "state", "open")
	s.expect(t, 0, "shopsession_redis_breakers", "operation", "read", "state", "closed")
	s.expect(t, 1, "shopsession_redis_breakers", "operation", "write", "state", "closed")
	s.expect(t, 0, "shopsession_redis_breakers", "operation", "routing", "state", "closed")
	var nilMetrics *metrics // no admin listener: records nothing, does not panic
	nilMetrics.breakerAdded("read")
	nilMetrics.watchBreaker("closed")
	nilMetrics.breakerStateChanged("read", "closed", "open", "open")
	nilMetrics.watchDegraded(func() bool { return true })
}

// TestShopServesNoAdminRoutes: the public listener answers 404 for every
// admin route, in both builds.
func TestShopServesNoAdminRoutes(t *testing.T) {
	app := startApp(t, nil)
	for _, path := range []string{"/metrics", "/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/cmdline", "/debug/chaos"} {
		if resp := app.get(t, path, ""); resp.status != http.StatusNotFound {
			t.Errorf("shop GET %s = %d, want 404", path, resp.status)
		}
	}
}

func TestAdminListener(t *testing.T) {
	app := startApp(t, nil)
	admin := app.admin
	if admin == nil || admin.url == app.url {
		t.Fatalf("admin listener at %v, shop at %s", admin, app.url)
	}
	chaosStatus := http.StatusNotFound
	if chaosBuild {
		chaosStatus = http.StatusOK
	}
	for _, tc := range []struct {
		method, path string
		want         int
		body         *regexp.Regexp
	}{
		{"GET", "/", 200, regexp.MustCompile(`/metrics`)},
		{"GET", "/metrics", 200, regexp.MustCompile(`(?m)^# TYPE shopsession_http_requests_total counter$`)},
		{"GET", "/debug/pprof/", 200, regexp.MustCompile(`goroutine`)},
		{"GET", "/debug/pprof/goroutine?debug=1", 200, regexp.MustCompile(`goroutine profile: total`)},
		{"GET", "/debug/pprof/cmdline", 404, nil},
		{"GET", "/debug/pprof/symbol", 200, regexp.MustCompile(`num_symbols`)},
		{"GET", "/debug/chaos", chaosStatus, nil},
		{"GET", "/nope", 404, nil},
		{"GET", "/metrics/extra", 404, nil},
		{"GET", "/search", 404, nil}, // the shop's routes are not here
		{"GET", "/debug/pprof/no-such-profile", 404, regexp.MustCompile(`Unknown profile`)},
		{"POST", "/metrics", 405, nil},
		{"DELETE", "/metrics", 405, nil},
		{"PUT", "/debug/pprof/", 405, nil},
		{"POST", "/", 405, nil},
	} {
		resp := admin.do(t, tc.method, tc.path, "", "", nil)
		if resp.status != tc.want {
			t.Errorf("admin %s %s = %d, want %d", tc.method, tc.path, resp.status, tc.want)
		}
		if tc.body != nil && !tc.body.MatchString(resp.body) {
			t.Errorf("admin %s %s: body does not match %s:\n%.300s", tc.method, tc.path, tc.body, resp.body)
		}
		if tc.want == 405 && resp.header.Get("Allow") == "" {
			t.Errorf("admin %s %s: 405 without Allow", tc.method, tc.path)
		}
	}
}

// TestAdminListenerKeepsThePassword: a Redis password given on the command
// line appears nowhere the admin listener serves. It runs a built binary:
// pprof shows the process's own command line.
func TestAdminListenerKeepsThePassword(t *testing.T) {
	binary := filepath.Join(t.TempDir(), "shopsession")
	goBuild(t, ".", binary)
	logs := newLogBuffer()
	cmd := exec.Command(binary, append(slices.Clone(onFreePorts), "-redis-url", "redis://:hunter2@"+testRedis.addr()+"/0")...)
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	app := serving(t, logs)
	app.searchFor(t, "password", "apple") // Redis refuses the AUTH; the page goes out without interests
	for _, path := range []string{"/", "/metrics", "/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/goroutine?debug=2", "/debug/pprof/heap?debug=1"} {
		if resp := app.admin.get(t, path, ""); strings.Contains(resp.body, "hunter2") {
			t.Errorf("admin GET %s shows the Redis password", path)
		}
	}
}

func TestAdminListenerDisabled(t *testing.T) {
	app := startApp(t, nil, "-admin-addr", "off")
	if app.admin != nil {
		t.Fatalf("admin listener at %s with -admin-addr off", app.admin.url)
	}
	app.logs.waitFor(t, regexp.MustCompile(`msg="admin listener disabled`))
	if resp := app.searchFor(t, "no-admin", "apple"); !hasRecommendation(resp.body) {
		t.Errorf("search without the admin listener: %d", resp.status)
	}
	if resp := app.get(t, "/metrics", ""); resp.status != http.StatusNotFound {
		t.Errorf("shop GET /metrics = %d, want 404", resp.status)
	}
}

func TestAdminAddressInUse(t *testing.T) {
	taken := startApp(t, nil)
	addr := strings.TrimPrefix(taken.admin.url, "http://")
	err := run(t.Context(), []string{"-addr", "127.0.0.1:0", "-admin-addr", addr}, mapGetenv(map[string]string{"REDIS_URL": testRedis.url(), "CHAOS_CONTROL_TOKEN": testControlToken}), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "admin listener") || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "ADMIN_ADDR") {
		t.Errorf("run with a taken admin address = %v, want an error naming the admin listener, %s and the setting", err, addr)
	}
}

// BenchmarkInstrumentHTTP measures what recording a request costs the shop:
// the same mux with and without the metrics around it.
func BenchmarkInstrumentHTTP(b *testing.B) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /search", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	for _, tc := range []struct {
		name string
		m    *metrics
	}{{"off", nil}, {"on", newMetrics()}} {
		b.Run(tc.name, func(b *testing.B) {
			handler := tc.m.instrumentHTTP(mux)
			req, _ := http.NewRequest(http.MethodGet, "/search", nil)
			w := discardWriter{header: http.Header{}}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					handler.ServeHTTP(w, req.Clone(context.Background()))
				}
			})
		})
	}
}

type discardWriter struct{ header http.Header }

func (w discardWriter) Header() http.Header         { return w.header }
func (w discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w discardWriter) WriteHeader(int)             {}

// TestMetricsFollowTheBreaker: Redis stops, the breaker opens, and /metrics
// says so — state, transition and degraded — with the pages and errors that
// led there; Redis starts again and a probe closes it.
func TestMetricsFollowTheBreaker(t *testing.T) {
	const failures = 3
	server := ownRedisServer(t)
	app := startApp(t, map[string]string{"REDIS_URL": server.url(), "REDIS_TIMEOUT": "500ms",
		"BREAKER_FAILURES": fmt.Sprint(failures), "BREAKER_COOLDOWN": "50ms"})
	app.searchFor(t, "breaker-metrics", "lamp")
	s := scrape(t, app)
	s.expect(t, 1, "shopsession_redis_breaker_state", "state", "closed")
	s.expect(t, 0, "shopsession_redis_breaker_state", "state", "open")
	s.expect(t, 0, "shopsession_degraded")

	server.stop()
	for range failures {
		app.searchFor(t, "breaker-metrics", "desk")
	}
	s = scrape(t, app)
	s.expect(t, 1, "shopsession_redis_breaker_state", "state", "open")
	s.expect(t, 0, "shopsession_redis_breaker_state", "state", "closed")
	s.expect(t, 1, "shopsession_redis_breaker_transitions_total", "from", "closed", "to", "open")
	s.expect(t, 1, "shopsession_degraded")
	s.expect(t, failures, "shopsession_redis_errors_total", "command", "get")
	s.expect(t, failures, "shopsession_search_pages_total", "outcome", "without_recommendations")
	if resp := app.get(t, "/readyz", ""); !strings.HasPrefix(resp.body, "degraded") {
		t.Errorf("/readyz = %q while /metrics says degraded", resp.body)
	}

	if err := server.start(); err != nil {
		t.Fatal(err)
	}
	// Searches until a probe, after the 50 ms cool-down, finds Redis again.
	deadline := time.Now().Add(10 * time.Second)
	for !hasRecommendation(app.searchFor(t, "breaker-metrics", "chair").body) {
		if time.Now().After(deadline) {
			t.Fatal("no recommendations 10 s after Redis started again")
		}
	}
	s = scrape(t, app)
	s.expect(t, 1, "shopsession_redis_breaker_state", "state", "closed")
	s.expect(t, 0, "shopsession_degraded")
	s.expect(t, 1, "shopsession_redis_breaker_transitions_total", "from", "half-open", "to", "closed")
	// A probe may have failed on a connection from before the restart.
	failedProbes := max(0, s.value("shopsession_redis_breaker_transitions_total", "from", "half-open", "to", "open"))
	s.expect(t, failedProbes+1, "shopsession_redis_breaker_transitions_total", "from", "open", "to", "half-open")
}
