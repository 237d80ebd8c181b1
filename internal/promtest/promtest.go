// Package promtest runs a real Prometheus server on a free loopback port for
// tests, scraping loopback targets every second: the project's tests never
// stand in for Prometheus.
package promtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/model"

	"example.com/shopsession/internal/redistest"
)

// Install is what a test that finds no prometheus tells the person to run.
const Install = "apt-get install -y --no-install-recommends prometheus (or: make deps)"

// ScrapeInterval is how often the server scrapes its targets.
const ScrapeInterval = time.Second

// startTimeout bounds Prometheus's start-up: replaying an empty TSDB takes
// well under a second, but the machine is shared.
const startTimeout = 30 * time.Second

// Server is a prometheus process on a free loopback port with its own
// configuration and TSDB in a test's temporary directory.
type Server struct {
	url    string
	cmd    *exec.Cmd
	done   chan struct{}
	output *lockedBuffer
}

// Available reports an error that says how to install prometheus when it is
// not on PATH.
func Available() error {
	if _, err := exec.LookPath("prometheus"); err != nil {
		return fmt.Errorf("these tests need a real prometheus on PATH; install it with: %s", Install)
	}
	return nil
}

// Start starts a Prometheus that scrapes targets (host:port, at /metrics)
// every ScrapeInterval, waits until it is ready, and stops it when the test
// ends. A missing prometheus fails the test with the install command. Ready
// is not scraped: the server hands new targets to its scrapers on a 5 s
// tick, so the first sample of a target shows about 5 s after Start (wait
// for it with WaitFor).
func Start(t testing.TB, targets ...string) *Server {
	t.Helper()
	if err := Available(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	config := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(config, configFor(targets), 0o600); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for range 3 { // another process may take the free port before prometheus binds it
		port, err := redistest.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		s, err := start(config, filepath.Join(dir, "data"), port)
		if err == nil {
			t.Cleanup(s.stop)
			return s
		}
		lastErr = err
	}
	t.Fatal(lastErr)
	return nil
}

// configFor is a configuration with nothing but the scrape of targets: no
// alerting, no rules, no remote write or read, so the server talks to
// nothing beyond the loopback targets it is given.
func configFor(targets []string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: %s\n",
		model.Duration(ScrapeInterval), model.Duration(ScrapeInterval), model.Duration(ScrapeInterval))
	if len(targets) > 0 {
		b.WriteString("scrape_configs:\n  - job_name: promtest\n    static_configs:\n      - targets:\n")
		for _, target := range targets {
			fmt.Fprintf(&b, "          - %s\n", strconv.Quote(target))
		}
	}
	return []byte(b.String())
}

func start(config, data string, port int) (*Server, error) {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command("prometheus",
		"--config.file="+config,
		"--storage.tsdb.path="+data,
		"--web.listen-address="+addr,
		"--storage.tsdb.retention.time=1h",
		"--log.level=warn")
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s := &Server{url: "http://" + addr, cmd: cmd, done: done, output: out}
	if err := s.waitReady(); err != nil {
		s.stop()
		return nil, fmt.Errorf("prometheus on %s did not become ready: %v\n%s", addr, err, out.String())
	}
	return s, nil
}

// waitReady polls /-/ready, which answers 200 once the TSDB is open and the
// web handler serves queries, until the start-up deadline or the process's
// exit.
func (s *Server) waitReady() error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		resp, err := client.Get(s.url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("/-/ready answered %s", resp.Status)
		}
		last = err
		select {
		case <-s.done:
			return fmt.Errorf("it exited (%v)", s.cmd.ProcessState)
		case <-deadline.C:
			return fmt.Errorf("not within %s: %v", startTimeout, last)
		case <-tick.C:
		}
	}
}

// stop ends prometheus and waits until it has exited.
func (s *Server) stop() {
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// URL is the server's base URL, http://127.0.0.1:port.
func (s *Server) URL() string { return s.url }

// Output is what prometheus has logged (warnings and errors only).
func (s *Server) Output() string { return s.output.String() }

// WaitFor runs query as an instant query until cond holds for its result (a
// scalar is a vector of one sample without labels) and returns that result;
// it fails the test after timeout with the last result or error. After the
// first scrape, a value a target exports shows within ScrapeInterval or two.
func (s *Server) WaitFor(t testing.TB, timeout time.Duration, query string, cond func(model.Vector) bool) model.Vector {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		v, err := s.query(query)
		if err == nil && cond(v) {
			return v
		}
		if err != nil {
			last = err.Error()
		} else {
			last = v.String()
		}
		select {
		case <-deadline.C:
			t.Fatalf("prometheus query %q: condition not met within %s; last result: %s\n%s", query, timeout, last, s.Output())
		case <-tick.C:
		}
	}
}

// query runs an instant query with a decoder of its own: the API package
// client_golang/api/prometheus/v1 needs a module the project does not carry.
func (s *Server) query(query string) (model.Vector, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		s.url+"/api/v1/query?"+url.Values{"query": {query}}.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var answer struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType model.ValueType `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		return nil, fmt.Errorf("%s: %v", resp.Status, err)
	}
	if answer.Status != "success" {
		return nil, fmt.Errorf("%s: %s", resp.Status, answer.Error)
	}
	switch answer.Data.ResultType {
	case model.ValVector:
		var v model.Vector
		return v, json.Unmarshal(answer.Data.Result, &v)
	case model.ValScalar:
		var v model.Scalar
		err := json.Unmarshal(answer.Data.Result, &v)
		return model.Vector{{Metric: model.Metric{}, Value: v.Value, Timestamp: v.Timestamp}}, err
	}
	return nil, fmt.Errorf("a %s, not a vector", answer.Data.ResultType)
}

// Export serves g's metrics at /metrics on a free loopback port for as long
// as the test runs, and returns its host:port: a target for Start.
func Export(t testing.TB, g prometheus.Gatherer) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// lockedBuffer collects the process's output, which its two pipes write
// from the exec package's goroutines while a failing test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
