package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"example.com/shopsession/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// testRedis is a real redis-server shared by the tests that do not stop it.
var testRedis *redisServer

func TestMain(m *testing.M) {
	if os.Getenv("SHOPSESSION_TEST_MAIN") == "1" { // the test binary acting as the program
		os.Args = os.Args[:1]
		main()
		os.Exit(0)
	}
	if err := redistest.Available(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
	var err error
	if testRedis, err = startRedisServer(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: start redis-server:", err)
		os.Exit(1)
	}
	code := m.Run()
	testRedis.stop()
	if sharedCluster != nil {
		sharedCluster.stop()
	}
	os.Exit(code)
}

// redisServer is a real redis-server on a free loopback port
// (internal/redistest), which a test can stop and start again.
type redisServer struct{ *redistest.Server }

func startRedisServer(args ...string) (*redisServer, error) {
	s, err := redistest.Start(args...)
	if err != nil {
		return nil, err
	}
	return &redisServer{s}, nil
}

// ownRedisServer starts a redis-server for one test, which may stop and
// start it, and stops it when the test ends.
func ownRedisServer(t *testing.T) *redisServer { return &redisServer{redistest.Own(t)} }

func freePort() (int, error) { return redistest.FreePort() }

func (s *redisServer) start() error { return s.Restart() }
func (s *redisServer) stop()        { s.Stop() }
func (s *redisServer) addr() string { return s.Addr() }
func (s *redisServer) url() string  { return s.URL() }
func (s *redisServer) port() int    { return s.Port() }

// client returns a go-redis client for looking at what the app stored.
func (s *redisServer) client(t testing.TB) *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: s.addr()})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// logBuffer collects an app's log and lets a test wait for a line.
type logBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newLogBuffer() *logBuffer { return &logBuffer{changed: make(chan struct{})} }

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.changed)
	l.changed = make(chan struct{})
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// waitFor returns the submatches of the first match of re in the log, waiting
// for it to be written.
func (l *logBuffer) waitFor(t testing.TB, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		l.mu.Lock()
		m := re.FindStringSubmatch(l.buf.String())
		changed := l.changed
		l.mu.Unlock()
		if m != nil {
			return m
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("log never matched %s; log:\n%s", re, l.String())
		}
	}
}

// testApp is run() serving on a free loopback port.
type testApp struct {
	url   string
	logs  *logBuffer
	stop  func() error // cancels run's context and returns what run returned
	admin *testApp     // the admin listener; nil when disabled
}

var (
	listeningLine      = regexp.MustCompile(`msg=listening addr=(\S+)`)
	adminListeningLine = regexp.MustCompile(`msg="admin listening" addr=(\S+)`)
)

// onFreePorts puts the shop and the admin listener on free loopback ports;
// args given after these override them.
var onFreePorts = []string{"-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0"}

// testControlToken is the chaos build's control token in the tests, which
// startApp and startBinary give unless a test sets its own: none writes a
// token file.
const testControlToken = "shop-test-control-token-0123456789"

// startApp calls run with env as the environment; REDIS_URL defaults to the
// shared test redis-server, CHAOS_CONTROL_TOKEN to testControlToken. The app
// stops when the test ends.
func startApp(t testing.TB, env map[string]string, args ...string) *testApp {
	t.Helper()
	if _, ok := env["REDIS_URL"]; !ok {
		env = withEnv(env, "REDIS_URL", testRedis.url())
	}
	if _, ok := env["CHAOS_CONTROL_TOKEN"]; !ok {
		env = withEnv(env, "CHAOS_CONTROL_TOKEN", testControlToken)
	}
	ctx, cancel := context.WithCancel(context.Background())
	logs := newLogBuffer()
	result := make(chan error, 1)
	go func() {
		result <- run(ctx, append(slices.Clone(onFreePorts), args...), mapGetenv(env), io.Discard, logs)
	}()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() { cancel(); runErr = <-result })
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("run returned %v", err)
		}
	})
	app := serving(t, logs)
	app.stop = stop
	return app
}

// serving waits for an app's log to say where it listens and for /healthz
// to answer there. The app logs where its admin listener listens before
// that.
func serving(t testing.TB, logs *logBuffer) *testApp {
	t.Helper()
	app := &testApp{url: "http://" + logs.waitFor(t, listeningLine)[1], logs: logs}
	if m := adminListeningLine.FindStringSubmatch(logs.String()); m != nil {
		app.admin = &testApp{url: "http://" + m[1], logs: logs}
	}
	if resp := app.get(t, "/healthz", ""); resp.status != http.StatusOK {
		t.Fatalf("GET /healthz = %d", resp.status)
	}
	return app
}

func withEnv(env map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range env {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func mapGetenv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

// noRedirects is a client that shows redirects instead of following them.
var noRedirects = &http.Client{
	Timeout:       30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

type response struct {
	status int
	header http.Header
	body   string
}

// cookie returns the value of the named cookie the response sets, or "".
func (r response) cookie(name string) string {
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

func (a *testApp) get(t testing.TB, path, cookie string) response {
	t.Helper()
	return a.do(t, http.MethodGet, path, cookie, "", nil)
}

// searchFor POSTs the search form as the reference's ab command does.
func (a *testApp) searchFor(t testing.TB, sessionID, query string) response {
	t.Helper()
	return a.do(t, http.MethodPost, "/search", sessionCookie+"="+sessionID,
		"application/x-www-form-urlencoded", strings.NewReader(url.Values{"query": {query}}.Encode()))
}

func (a *testApp) do(t testing.TB, method, path, cookie, contentType string, body io.Reader) response {
	t.Helper()
	req, err := http.NewRequest(method, a.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return a.send(t, req)
}

func (a *testApp) send(t testing.TB, req *http.Request) response {
	t.Helper()
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("%s %s: read body: %v", req.Method, req.URL.Path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

var interestItem = regexp.MustCompile(`<li>([^<]*)</li>`)

// interestsOn returns the interests a search page lists.
func interestsOn(page string) []string {
	start := strings.Index(page, `<ul id="interests">`)
	if start < 0 {
		return nil
	}
	list := page[start:]
	list = list[:strings.Index(list, "</ul>")]
	var out []string
	for _, m := range interestItem.FindAllStringSubmatch(list, -1) {
		out = append(out, m[1])
	}
	return out
}

func hasRecommendation(page string) bool { return strings.Contains(page, "this amazing product") }

// process is a built binary serving on a free loopback port.
type process struct {
	*testApp
	cmd    *exec.Cmd
	exited chan error // receives what Wait returned
}

// startBinary runs binary with env added to the test's environment, and kills
// it when the test ends if it is still running.
func startBinary(t *testing.T, binary string, env ...string) *process {
	t.Helper()
	logs := newLogBuffer()
	cmd := exec.Command(binary, onFreePorts...)
	cmd.Env = append(append(os.Environ(), "CHAOS_CONTROL_TOKEN="+testControlToken), env...)
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, exited: make(chan error, 1)}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	p.testApp = serving(t, logs)
	return p
}

// pollPause is the time between two looks of a poll: a status on loopback
// answers in well under it, so a time measured is this precise.
const pollPause = 5 * time.Millisecond

// pollUntil looks at cond every pollPause until it holds, and reports
// whether it did within within.
func pollUntil(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	tick := time.NewTicker(pollPause)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}
