package chaos

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// dependency is a real HTTP server on loopback, the far side of the calls,
// which counts the requests that reached it.
type dependency struct {
	*httptest.Server
	hits atomic.Int64
}

func newDependency(t *testing.T) *dependency {
	t.Helper()
	d := &dependency{}
	d.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"recommendations":["Pears"]}`)
	}))
	t.Cleanup(d.Close)
	return d
}

// httpOptions are the options of the tests' experiments: two HTTP
// dependencies, so that one's faults can be seen not to reach the other.
var httpOptions = Options{HTTPDependencies: []string{"recommender", "other"}}

// httpExperiment is the experiment body asks for, running, with a client
// of dependency name through its Transport.
func httpExperiment(t *testing.T, body, name string) (*Experiment, *http.Client) {
	t.Helper()
	return httpExperimentWith(t, httpOptions, body, name)
}

func httpExperimentWith(t *testing.T, opts Options, body, name string) (*Experiment, *http.Client) {
	t.Helper()
	e := testExperiment(t, map[string]string{}, opts)
	cfg, err := FromJSON([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Use(cfg); err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return e, &http.Client{Transport: e.Transport(name, tr)}
}

// call gets url's body, or the error that ended the call.
func call(ctx context.Context, c *http.Client, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestHTTPLatencyBeforeTheRequest(t *testing.T) {
	dep := newDependency(t)
	e, c := httpExperiment(t, `{"experiment":"latency","delay_seconds":0.08,"dependencies":["recommender"]}`, "recommender")
	start := time.Now()
	if code, body, err := call(context.Background(), c, dep.URL+"/r"); err != nil || code != 200 || !strings.Contains(body, "Pears") {
		t.Fatalf("delayed call: %d %q %v", code, body, err)
	}
	if took := time.Since(start); took < 80*time.Millisecond || took > 300*time.Millisecond {
		t.Errorf("a call delayed by 80 ms took %v", took)
	}
	got := e.Status("").Counters.HTTP
	if got["recommender"].DelaysInjected != 1 || got["recommender"].Calls != 1 || got["other"].Calls != 0 {
		t.Errorf("counters %+v", got)
	}
	if s := got["recommender"].DelaySecondsInjected; s < 0.08 || s > 0.3 {
		t.Errorf("delay_seconds_injected %v, want 0.08 and a little", s)
	}
}

// TestHTTPLatencyAfterTheHeaders: the headers come at once, the body 80 ms
// after them.
func TestHTTPLatencyAfterTheHeaders(t *testing.T) {
	dep := newDependency(t)
	_, c := httpExperiment(t, `{"experiment":"latency","delay_seconds":0.08,"dependencies":["recommender"],"delay_after_headers":true}`, "recommender")
	start := time.Now()
	resp, err := c.Get(dep.URL)
	if err != nil {
		t.Fatal(err)
	}
	headers := time.Since(start)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	body := time.Since(start)
	if err != nil || !strings.Contains(string(b), "Pears") {
		t.Fatalf("body %q, %v", b, err)
	}
	if headers > 40*time.Millisecond || body < 80*time.Millisecond || body > 300*time.Millisecond {
		t.Errorf("headers after %v (want at once), body after %v (want 80 ms)", headers, body)
	}
	if dep.hits.Load() != 1 {
		t.Errorf("the dependency saw %d requests, want 1", dep.hits.Load())
	}
}

// TestHTTPFailuresEveryNth: every 2nd call of each dependency fails, each
// with the http_fault asked for, and never reaches the dependency.
func TestHTTPFailuresEveryNth(t *testing.T) {
	dep := newDependency(t)
	for _, tc := range []struct {
		fault string
		check func(code int, body string, err error) bool
	}{
		{`"http_fault":"error"`, func(_ int, _ string, err error) bool {
			var te *TransportError
			return errors.As(err, &te) && errors.Is(err, syscall.ECONNREFUSED) && te.Dependency == "recommender"
		}},
		{`"http_fault":"status"`, func(code int, body string, err error) bool {
			return err == nil && code == 503 && body == "chaos: injected 503 Service Unavailable\n"
		}},
		{`"http_fault":"status","http_status":429`, func(code int, _ string, err error) bool { return err == nil && code == 429 }},
	} {
		dep.hits.Store(0)
		body := `{"experiment":"error","error_every":2,"dependencies":["redis","recommender","other"],` + tc.fault + `}`
		e, c := httpExperiment(t, body, "recommender")
		other := &http.Client{Transport: e.Transport("other", nil)}
		for i := 1; i <= 6; i++ {
			// The other dependency's calls between them do not move the count.
			if code, _, err := call(context.Background(), other, dep.URL); i%2 == 1 && (err != nil || code != 200) {
				t.Errorf("%s: the other dependency's call %d: %d %v", tc.fault, i, code, err)
			}
			code, b, err := call(context.Background(), c, dep.URL)
			if ok := err == nil && code == 200; i%2 == 0 && !tc.check(code, b, err) || i%2 == 1 && !ok {
				t.Errorf("%s: call %d: %d %q %v", tc.fault, i, code, b, err)
			}
		}
		got := e.Status("").Counters.HTTP
		if got["recommender"].ErrorsInjected != 3 || got["other"].ErrorsInjected != 3 || dep.hits.Load() != 6 {
			t.Errorf("%s: counters %+v, the dependency saw %d requests, want 3 + 3 failed, 6 reached it", tc.fault, got, dep.hits.Load())
		}
	}
}

// TestHTTPHangWaitsForTheDeadline: a hung call ends with its context's
// deadline, and was never sent.
func TestHTTPHangWaitsForTheDeadline(t *testing.T) {
	dep := newDependency(t)
	e, c := httpExperiment(t, `{"experiment":"error","error_every":1,"dependencies":["recommender"],"http_fault":"hang"}`, "recommender")
	c.Timeout = 60 * time.Millisecond
	start := time.Now()
	_, _, err := call(context.Background(), c, dep.URL)
	took := time.Since(start)
	var timeout interface{ Timeout() bool }
	if !errors.As(err, &timeout) || !timeout.Timeout() || took < 60*time.Millisecond || took > 300*time.Millisecond {
		t.Errorf("hung call: %v after %v, want the client's timeout after 60 ms", err, took)
	}
	if dep.hits.Load() != 0 || e.Status("").Counters.HTTP["recommender"].FaultsInProgress != 0 {
		t.Errorf("the dependency saw %d requests; status %+v", dep.hits.Load(), e.Status("").Counters.HTTP)
	}
}

// TestHTTPTargets: http_hosts and http_paths confine the faults.
func TestHTTPTargets(t *testing.T) {
	dep := newDependency(t)
	host := strings.TrimPrefix(dep.URL, "http://")
	localhost := "http://localhost:" + host[strings.LastIndex(host, ":")+1:]
	for _, tc := range []struct {
		targets string
		faulted []string
	}{
		{`"http_paths":["/recommend"]`, []string{dep.URL + "/recommendations", dep.URL + "/recommend", localhost + "/recommendations"}},
		{`"http_hosts":["127.0.0.1"]`, []string{dep.URL + "/recommendations", dep.URL + "/recommend", dep.URL + "/x", dep.URL + "/"}},
		{`"http_hosts":["` + host + `"],"http_paths":["/x","/recommendations"]`, []string{dep.URL + "/recommendations", dep.URL + "/x"}},
	} {
		_, c := httpExperiment(t, `{"experiment":"error","error_every":1,"dependencies":["recommender"],`+tc.targets+`}`, "recommender")
		for _, url := range []string{dep.URL + "/recommendations", dep.URL + "/recommend", dep.URL + "/x", dep.URL + "/", localhost + "/recommendations"} {
			_, _, err := call(context.Background(), c, url)
			want := false
			for _, f := range tc.faulted {
				want = want || f == url
			}
			if want != (err != nil) {
				t.Errorf("%s: %s: %v, want faulted %v", tc.targets, url, err, want)
			}
		}
	}
}

// TestHTTPLeavesRedisAlone: dependencies without redis fault no Redis
// command, and without the dependency no HTTP call.
func TestHTTPLeavesRedisAlone(t *testing.T) {
	dep := newDependency(t)
	e, c := httpExperiment(t, `{"experiment":"error","error_every":1,"dependencies":["recommender"]}`, "recommender")
	rdb := testClient(t, e, redis.Options{})
	if err := rdb.Get(context.Background(), "k").Err(); err != nil && err.Error() != "redis: nil" {
		t.Errorf("a GET under an experiment of the recommender alone: %v", err)
	}
	if _, _, err := call(context.Background(), c, dep.URL); err == nil {
		t.Errorf("the recommender's call was not failed")
	}
	e2, c2 := httpExperiment(t, `{"experiment":"error","error_every":1}`, "recommender")
	if _, _, err := call(context.Background(), c2, dep.URL); err != nil {
		t.Errorf("an experiment of redis alone failed an HTTP call: %v", err)
	}
	if err := testClient(t, e2, redis.Options{}).Get(context.Background(), "k").Err(); !errors.Is(err, Error{}) {
		t.Errorf("an experiment of redis alone: GET %v, want CHAOS", err)
	}
}

// TestHTTPSparedCalls: a call SparedHTTP names is never faulted, nor
// counted in the every Nth.
func TestHTTPSparedCalls(t *testing.T) {
	dep := newDependency(t)
	opts := Options{HTTPDependencies: []string{"recommender"}, SparedHTTP: func(r *http.Request) bool { return r.URL.Path == "/healthz" }}
	_, c := httpExperimentWith(t, opts, `{"experiment":"error","error_every":2,"dependencies":["recommender"]}`, "recommender")
	for i, path := range []string{"/healthz", "/r", "/healthz", "/r", "/healthz"} {
		if _, _, err := call(context.Background(), c, dep.URL+path); (err != nil) != (i == 3) {
			t.Errorf("call %d to %s: %v; want only the second to /r failed", i, path, err)
		}
	}
}
