package chaos

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"example.com/shopsession/internal/promtest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
)

// scrapeWait bounds how long a value the test exports takes to show in a
// query: a scrape every second, on a shared machine.
const scrapeWait = 15 * time.Second

// probeTarget is a registry the test controls, scraped by a real Prometheus.
type probeTarget struct {
	gauge   prometheus.Gauge
	counter prometheus.Counter
	shards  *prometheus.GaugeVec
	server  *promtest.Server
}

func startProbeTarget(t *testing.T) *probeTarget {
	t.Helper()
	reg := prometheus.NewRegistry()
	p := &probeTarget{
		gauge:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "probe_test_gauge"}),
		counter: prometheus.NewCounter(prometheus.CounterOpts{Name: "probe_test_requests_total"}),
		shards:  prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "probe_test_shards"}, []string{"shard"}),
	}
	reg.MustRegister(p.gauge, p.counter, p.shards)
	p.gauge.Set(42)
	p.counter.Add(5)
	p.shards.WithLabelValues("a").Set(1)
	p.shards.WithLabelValues("b").Set(2)
	p.server = promtest.Start(t, promtest.Export(t, reg))
	p.waitValue(t, "probe_test_gauge", 42)
	p.server.WaitFor(t, scrapeWait, "probe_test_shards", func(v model.Vector) bool { return len(v) == 2 })
	return p
}

// waitValue waits until query answers exactly want: a scrape has brought it.
func (p *probeTarget) waitValue(t *testing.T, query string, want float64) {
	t.Helper()
	p.server.WaitFor(t, scrapeWait, query, func(v model.Vector) bool {
		return len(v) == 1 && float64(v[0].Value) == want
	})
}

func probeQuery(baseURL, query string) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return queryPrometheus(ctx, &http.Client{}, baseURL, query)
}

// TestQueryPrometheus reads a real Prometheus scraping a registry the test
// controls (one server for both halves: its start and first scrape are
// most of the test's time).
func TestQueryPrometheus(t *testing.T) {
	p := startProbeTarget(t)
	t.Run("values", func(t *testing.T) { testProbeValues(t, p) })
	t.Run("not one number", func(t *testing.T) { testProbeNotOneNumber(t, p) })
}

func testProbeValues(t *testing.T, p *probeTarget) {
	read := func(query string, want float64) {
		t.Helper()
		got, err := probeQuery(p.server.URL(), query)
		if err != nil || got != want {
			t.Fatalf("query %q = %v, %v; want %v", query, got, err, want)
		}
	}
	read("probe_test_gauge", 42)
	read("probe_test_requests_total", 5)
	read("sum(probe_test_shards)", 3)
	read("scalar(probe_test_gauge) * 2", 84) // a scalar result
	read("2 * 3", 6)

	// A new value is read, not an old one: the probe follows the target.
	p.gauge.Set(7)
	p.counter.Add(1)
	p.waitValue(t, "probe_test_gauge", 7)
	read("probe_test_gauge", 7)
	p.waitValue(t, "probe_test_requests_total", 6)
	read("probe_test_requests_total", 6)
}

// probeErr runs query at baseURL and requires one line naming the query and
// the URL and containing each of wants.
func probeErr(t *testing.T, baseURL, query string, wants ...string) {
	t.Helper()
	got, err := probeQuery(baseURL, query)
	checkProbeErr(t, got, err, query, redactURL(baseURL), wants...)
}

func checkProbeErr(t *testing.T, got float64, err error, query, shownURL string, wants ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("query %q at %s = %v, want an error", query, shownURL, got)
	}
	msg := err.Error()
	t.Log(msg)
	if strings.Contains(msg, "\n") {
		t.Errorf("error is not one line: %q", msg)
	}
	for _, want := range append([]string{fmt.Sprintf("prometheus query %q at %q: ", query, shownURL)}, wants...) {
		if !strings.Contains(msg, want) {
			t.Errorf("query %q: error %q lacks %q", query, msg, want)
		}
	}
}

func testProbeNotOneNumber(t *testing.T, p *probeTarget) {
	url := p.server.URL()
	for _, c := range []struct {
		query string
		wants []string
	}{
		{"probe_test_missing", []string{"empty result"}},
		{"probe_test_gauge > 1e9", []string{"empty result"}},
		{"probe_test_shards", []string{"2 series, a probe needs one", `shard="a"`, `shard="b"`}},
		{"sum(", []string{"the server refused it (bad_data)", "parse error"}},
		{`rate(probe_test_gauge)`, []string{"the server refused it (bad_data)", "range vector"}},
		{"0/0", []string{"NaN", "finite"}},
		{"1/0", []string{"+Inf", "finite"}},
		{"-1/0", []string{"-Inf", "finite"}},
		{"probe_test_gauge[10s]", []string{"a range vector (1 series)"}},
		{`"text"`, []string{"a string, a probe needs a number"}},
	} {
		probeErr(t, url, c.query, c.wants...)
	}
	// A base URL that is Prometheus's but for its path: not its API.
	probeErr(t, url+"/not-here", "up", "the server answered HTTP 404 Not Found")
}

func TestQueryPrometheusUnreachable(t *testing.T) {
	// A closed port: nothing answers.
	srv := httptest.NewServer(http.NotFoundHandler())
	closed := srv.URL
	srv.Close()
	probeErr(t, closed, "up", "unreachable", "connection refused")

	// A password in the URL is never shown back.
	withPassword := strings.Replace(closed, "http://", "http://probe:s3cret@", 1)
	_, err := probeQuery(withPassword, "up")
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "probe:xxxxx@") {
		t.Errorf("error %v: want the password redacted", err)
	}
}

func TestQueryPrometheusNotAPrometheus(t *testing.T) {
	// A server that is not Prometheus answers the API's path with a 404.
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	probeErr(t, srv.URL, "up", "the server answered HTTP 404 Not Found")

	// A proxy in front of Prometheus failing: a 5xx without the API's body.
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream\nunavailable", http.StatusBadGateway)
	}))
	t.Cleanup(bad.Close)
	probeErr(t, bad.URL, "up", "the server answered HTTP 502 Bad Gateway")

	// Warnings: the answer may be partial (a Prometheus whose remote read
	// failed says so); the real server only warns with remote storage, which
	// the test's server has none of.
	warn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"status":"success","warnings":["remote read failed"],"data":{"resultType":"scalar","result":[1,"1"]}}`)
	}))
	t.Cleanup(warn.Close)
	probeErr(t, warn.URL, "up", "the server warned", "remote read failed")
}

func TestQueryPrometheusTimeout(t *testing.T) {
	release := make(chan struct{})
	timeouts := make(chan string, 2)
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		timeouts <- r.URL.Query().Get("timeout")
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); hang.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	got, err := queryPrometheus(ctx, &http.Client{}, hang.URL, "up")
	checkProbeErr(t, got, err, "up", hang.URL, "no answer within 300ms")

	got, err = queryPrometheus(context.Background(), &http.Client{Timeout: 200 * time.Millisecond}, hang.URL, "up")
	checkProbeErr(t, got, err, "up", hang.URL, "no answer within 200ms")

	// The server is told to give up too, in a form it parses ("300ms"; "1.5s"
	// it refuses); no deadline, no timeout parameter.
	for _, want := range []string{"300ms", ""} {
		select {
		case got := <-timeouts:
			if got != want {
				t.Errorf("timeout parameter %q, want %q", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the server did not see the request")
		}
	}
}

func TestServerTimeout(t *testing.T) {
	for d, want := range map[time.Duration]string{
		4999 * time.Millisecond: "4s",
		90 * time.Second:        "1m30s",
		300 * time.Millisecond:  "300ms",
		1500 * time.Microsecond: "1ms",
	} {
		if got := serverTimeout(d).String(); got != want {
			t.Errorf("serverTimeout(%s) = %s, want %s", d, got, want)
		}
	}
}

func TestCheckPrometheusProbe(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:9090", "https://prom.example/prometheus/", "https://probe:s3cret@prom.example"} {
		if err := checkPrometheusProbe(u, "up"); err != nil {
			t.Errorf("checkPrometheusProbe(%q) = %v, want nil", u, err)
		}
	}
	for _, c := range []struct{ url, query, want string }{
		{"", "up", `url: "" is not http or https`},
		{"127.0.0.1:9090", "up", `url: "127.0.0.1:9090" is not a URL`},
		{"ftp://prom.example", "up", `url: "ftp://prom.example" is not http or https`},
		{"http://", "up", `url: "http:" has no host`},
		{"http://:9090", "up", `url: "http://:9090" has no host`},
		{"http://prom.example/?x=1", "up", `url: "http://prom.example/?x=1" has a query string`},
		{"http://prom.example/#top", "up", `has a query string or fragment`},
		{"http://probe:s3cret@prom.example?x", "up", `url: "http://probe:xxxxx@prom.example?x" has a query string`},
		{"http://probe:s3cret@prom example", "up", `url: "http://xxxxx@prom example" is not a URL`},
		{"http://127.0.0.1:9090", "", "query: is empty"},
		{"http://127.0.0.1:9090", " \t", "query: is empty"},
	} {
		err := checkPrometheusProbe(c.url, c.query)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("checkPrometheusProbe(%q, %q) = %v, want %q", c.url, c.query, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("checkPrometheusProbe(%q) shows the password: %v", c.url, err)
		}
	}
}
