package chaos

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

func TestGuardrailsFromEnvAndJSON(t *testing.T) {
	c, err := FromEnv(mapGetenv(map[string]string{
		"CHAOS": "latency", "CHAOS_DURATION_SECONDS": "300", "CHAOS_SESSIONS_PERCENT": "12.5",
		"CHAOS_STOP_WINDOW_SEARCHES": "50", "CHAOS_STOP_FAILED_READS_SHARE": "0.2", "CHAOS_STOP_SEARCH_P99_SECONDS": "0.5",
	}))
	if err != nil || c.DurationSeconds != 300 || c.SessionsPercent == nil || *c.SessionsPercent != 12.5 ||
		c.StopWindowSearches != 50 || c.StopFailedReadsShare != 0.2 || c.StopSearchP99Seconds != 0.5 {
		t.Errorf("from env: %+v, %v", c.Guardrails, err)
	}
	for env, want := range map[string]string{
		"CHAOS_DURATION_SECONDS":        "-1",
		"CHAOS_SESSIONS_PERCENT":        "101",
		"CHAOS_STOP_WINDOW_SEARCHES":    "1.5",
		"CHAOS_STOP_FAILED_READS_SHARE": "1.01",
		"CHAOS_STOP_SEARCH_P99_SECONDS": "NaN",
	} {
		_, err := FromEnv(mapGetenv(map[string]string{env: want}))
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("invalid %s %q: want", env, want)) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s=%s: error %q, want one line naming it", env, want, err)
		}
	}
	for body, want := range map[string]string{
		`{"duration_seconds":86401}`:       `invalid duration_seconds "86401": want seconds from 1 to 86400`,
		`{"duration_seconds":"5"}`:         `body is not a JSON experiment`,
		`{"sessions_percent":-1}`:          `invalid sessions_percent "-1": want a percentage from 0 to 100`,
		`{"stop_window_searches":100001}`:  `invalid stop_window_searches "100001"`,
		`{"stop_failed_reads_share":-0.1}`: `invalid stop_failed_reads_share "-0.1": want a share from 0 to below 1`,
		`{"stop_search_p99_seconds":61}`:   `invalid stop_search_p99_seconds "61": want seconds from 0 to 60`,
	} {
		if _, err := FromJSON([]byte(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("PUT %s: %v, want %q", body, err, want)
		}
	}
}

// manualClock fires its timers when the test says so.
type manualClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*manualTimer
}

type manualTimer struct {
	at      time.Time
	f       func()
	stopped bool
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	timer := &manualTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, timer)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !timer.stopped
		timer.stopped = true
		return was
	}
}

// advance moves the clock on and runs the timers that are due, before it
// returns.
func (c *manualClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []func()
	for _, timer := range c.timers {
		if !timer.stopped && !timer.at.After(c.now) {
			timer.stopped = true
			due = append(due, timer.f)
		}
	}
	c.mu.Unlock()
	for _, f := range due {
		f()
	}
}

// syncLog is a log that the experiment writes and the test reads.
type syncLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// pageService stands in for the shop: its page /search reads its session's
// key (a read, in the shop's Options), which an experiment may fail, and says
// whether the read succeeded. The experiment's Handler serves /debug/chaos.
type pageService struct {
	e       *Experiment
	handler http.Handler
	logs    *syncLog
}

// The stand-in's particulars, as the shop's: reads are GETs of a session's
// key, pages are /search, a request's unit is its session cookie.
const (
	pageSessionKeyPrefix = "session:"
	pageSessionCookie    = "session"
)

func pageServiceOptions(logger *slog.Logger) Options {
	return Options{
		Logger: logger,
		Token:  testToken,
		Reads: func(c Command) bool {
			return c.Name == "get" && strings.HasPrefix(c.Key, pageSessionKeyPrefix)
		},
		Pages: func(r *http.Request) bool { return r.URL.Path == "/search" },
		Unit: func(r *http.Request) string {
			if c, err := r.Cookie(pageSessionCookie); err == nil {
				return c.Value
			}
			return ""
		},
	}
}

// newPageExperiment is the experiment env asks for, with the stand-in's
// options, on clock c (nil: the real one), and the log it writes.
func newPageExperiment(t *testing.T, c clock, env map[string]string) (*Experiment, *syncLog) {
	t.Helper()
	cfg, err := FromEnv(mapGetenv(env))
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncLog{}
	e, err := newExperiment(cfg, pageServiceOptions(slog.New(slog.NewTextHandler(logs, nil))), c)
	if err != nil {
		t.Fatal(err)
	}
	return e, logs
}

// newPageService starts the experiment env asks for, on clock c (nil: the
// real one), in front of the shared redis-server.
func newPageService(t *testing.T, c clock, env map[string]string) *pageService {
	t.Helper()
	e, logs := newPageExperiment(t, c, env)
	rdb := testClient(t, e, redis.Options{})
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		unit := ""
		if c, err := r.Cookie(pageSessionCookie); err == nil {
			unit = c.Value
		}
		if err := rdb.Get(r.Context(), pageSessionKeyPrefix+unit).Err(); err != nil && err != redis.Nil {
			io.WriteString(w, "read failed\n")
			return
		}
		io.WriteString(w, "read\n")
	})
	mux := http.NewServeMux()
	mux.Handle("/", e.Middleware(page))
	mux.Handle("/debug/chaos", e.Handler())
	return &pageService{e: e, handler: mux, logs: logs}
}

func (a *pageService) serve(method, target, cookie string, body io.Reader) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, body)
	req.RemoteAddr, req.Host = "127.0.0.1:40000", "localhost"
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	if method != http.MethodGet && method != http.MethodPost {
		req.Header.Set("Authorization", "Bearer "+testToken)
	}
	rec := httptest.NewRecorder()
	a.handler.ServeHTTP(rec, req)
	return rec
}

func (a *pageService) status(t *testing.T, query string) Status {
	t.Helper()
	rec := a.serve(http.MethodGet, "/debug/chaos"+query, "", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /debug/chaos%s = %d %s", query, rec.Code, rec.Body)
	}
	var s Status
	if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// search serves the page for a session and reports whether it read.
func (a *pageService) search(sessionID string) bool {
	return a.serve(http.MethodPost, "/search", pageSessionCookie+"="+sessionID, nil).Body.String() == "read\n"
}

func TestDurationEndsTheExperiment(t *testing.T) {
	clock := &manualClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	start := clock.now
	app := newPageService(t, clock, map[string]string{"CHAOS": "error", "CHAOS_ERROR_EVERY": "1", "CHAOS_DURATION_SECONDS": "30"})
	id := uuid.NewString()
	s := app.status(t, "")
	if s.State != "running" || s.EndsAt == nil || !s.EndsAt.Equal(start.Add(30*time.Second)) || s.EndedAt != nil {
		t.Fatalf("at start: state %s, ends %v, ended %v", s.State, s.EndsAt, s.EndedAt)
	}
	if app.search(id) {
		t.Fatalf("a read succeeded while every read fails")
	}
	clock.advance(29 * time.Second)
	if s := app.status(t, ""); s.State != "running" {
		t.Fatalf("after 29 s of 30: state %s", s.State)
	}
	clock.advance(time.Second)
	s = app.status(t, "")
	if s.State != "ended" || s.EndedAt == nil || !s.EndedAt.Equal(start.Add(30*time.Second)) || s.EndsAt != nil || s.Experiment != "error" {
		t.Fatalf("after 30 s: state %s, experiment %s, ends %v, ended %v", s.State, s.Experiment, s.EndsAt, s.EndedAt)
	}
	// The timer ended the run before advance returned: the line is there.
	if ended := regexp.MustCompile(`level=WARN msg="chaos experiment ended: its duration ran out.*duration_seconds=30`); !ended.MatchString(app.logs.String()) {
		t.Errorf("log has no end of the duration:\n%s", app.logs)
	}
	injected := app.e.errorsInjected.Load()
	if !app.search(id) || app.e.errorsInjected.Load() != injected {
		t.Errorf("a search after the end was injected a fault")
	}
	if g := s.Groups["experiment"]; g.Searches != 1 || g.ErrorsInjected != 1 || g.FailedReads != 1 {
		t.Errorf("experiment group while it ran: %+v", g)
	}

	// A PUT starts a new run; the old one's timer no longer ends anything.
	rec := app.serve(http.MethodPut, "/debug/chaos", "", strings.NewReader(`{"experiment":"error","error_every":1,"duration_seconds":10}`))
	if rec.Code != http.StatusOK {
		t.Fatalf("PUT = %d %s", rec.Code, rec.Body)
	}
	app.serve(http.MethodPut, "/debug/chaos", "", strings.NewReader(`{"experiment":"error","error_every":1}`))
	replaced := clock.Now()
	clock.advance(time.Minute)
	if s := app.status(t, ""); s.State != "running" || s.EndsAt == nil || !s.EndsAt.Equal(replaced.Add(1800*time.Second)) {
		t.Errorf("a replaced experiment's duration ended its successor: state %s, ends %v", s.State, s.EndsAt)
	}
}
