package chaos

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// The stop conditions judged through pages: the stand-in here is closer to
// the shop's search than guard_test.go's, it reads the session's key, then
// remembers the query with a script (EVALSHA, as the shop's store does),
// each within the stand-in's Redis timeout, and then answers as its test
// asks.

const stopPageTimeout = 20 * time.Millisecond

var rememberScript = redis.NewScript(`redis.call('SET', KEYS[1], ARGV[1], 'PX', 60000) return 1`)

// stopPage is what the stand-in's page does once it has talked to Redis:
// nil answers 200.
type stopPage func(w http.ResponseWriter, r *http.Request)

// stopApp is the stand-in, its experiment on clock c (nil: the real one).
type stopApp struct {
	*pageService
	entered chan struct{} // a page is inside the handler, counted as in progress
}

func newStopApp(t *testing.T, c clock, env map[string]string, answer stopPage) *stopApp {
	t.Helper()
	e, logs := newPageExperiment(t, c, env)
	// The read timeout is the connection layer's deadline; the context's
	// ends the command layer's delay.
	rdb := testClient(t, e, redis.Options{ReadTimeout: stopPageTimeout, MaxRetries: -1})
	app := &stopApp{entered: make(chan struct{}, 64)}
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case app.entered <- struct{}{}:
		default:
		}
		unit := ""
		if c, err := r.Cookie(pageSessionCookie); err == nil {
			unit = c.Value
		}
		key := pageSessionKeyPrefix + unit
		ctx, cancel := context.WithTimeout(r.Context(), stopPageTimeout)
		readErr := rdb.Get(ctx, key).Err()
		cancel()
		ctx, cancel = context.WithTimeout(r.Context(), stopPageTimeout)
		writeErr := rememberScript.Run(ctx, rdb, []string{key}, "apple").Err()
		cancel()
		if answer != nil {
			answer(w, r)
			return
		}
		switch {
		case readErr != nil && readErr != redis.Nil:
			io.WriteString(w, "read failed\n")
		case writeErr != nil:
			io.WriteString(w, "not remembered\n")
		default:
			io.WriteString(w, "read\n")
		}
	})
	mux := http.NewServeMux()
	mux.Handle("/", e.Middleware(page))
	mux.Handle("/debug/chaos", e.Handler())
	app.pageService = &pageService{e: e, handler: mux, logs: logs}
	return app
}

// searchUntilAborted searches for the sessions that unit names, up to n
// times, until the experiment is aborted; it returns how many searches it
// took (n+1: it was not).
func (a *stopApp) searchUntilAborted(n int, unit func(i int) string) (int, Status) {
	for i := 1; i <= n; i++ {
		a.search(unit(i))
		if s := a.e.Status(""); s.State == StateAborted {
			return i, s
		}
	}
	return n + 1, a.e.Status("")
}

func oneSession(id string) func(int) string { return func(int) string { return id } }

// TestStopDegradedShareSeesEveryCommand: a page whose query could not be
// remembered is degraded though its read succeeded; so is one whose read got
// the command layer's injected error, which returns before Redis.
func TestStopDegradedShareSeesEveryCommand(t *testing.T) {
	stops := map[string]string{"CHAOS_STOP_WINDOW_SEARCHES": "10",
		"CHAOS_STOP_FAILED_READS_SHARE": "0.5", "CHAOS_STOP_DEGRADED_SHARE": "0.5"}
	for name, env := range map[string]map[string]string{
		// Latency on EVALSHA beyond the page's Redis timeout: every read
		// succeeds, and no query is remembered.
		"evalsha latency, command layer": {"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "1", "CHAOS_COMMANDS": "evalsha"},
		"evalsha latency, connection layer": {"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "1", "CHAOS_COMMANDS": "evalsha",
			"CHAOS_LAYER": "connection"},
	} {
		t.Run(name, func(t *testing.T) {
			for k, v := range stops {
				env[k] = v
			}
			app := newStopApp(t, nil, env, nil)
			n, s := app.searchUntilAborted(30, oneSession(uuid.NewString()))
			if n != 10 || s.Abort == nil || s.Abort.Condition != "degraded_share" || s.Abort.Observed != 1 {
				t.Fatalf("every query unremembered: aborted after %d searches (31: not in 30), abort %+v", n, s.Abort)
			}
			if g := s.Groups["experiment"]; g.FailedReads != 0 {
				t.Errorf("%d failed reads, want 0: only the writes failed", g.FailedReads)
			}
		})
	}
	t.Run("injected read error, degraded share alone", func(t *testing.T) {
		app := newStopApp(t, nil, map[string]string{"CHAOS": "error", "CHAOS_ERROR_EVERY": "1",
			"CHAOS_STOP_WINDOW_SEARCHES": "10", "CHAOS_STOP_DEGRADED_SHARE": "0.5"}, nil)
		n, s := app.searchUntilAborted(30, oneSession(uuid.NewString()))
		if n != 10 || s.Abort == nil || s.Abort.Condition != "degraded_share" {
			t.Fatalf("every read failed: aborted after %d searches (31: not in 30), abort %+v", n, s.Abort)
		}
	})
}

// TestStopConditionsJudgeTheExperimentGroup: at sessions_percent=1, one search
// in a hundred is the experiment group's; every one of them fails. Mixed
// with the control group's, that is a share of 0.01, under any threshold.
func TestStopConditionsJudgeTheExperimentGroup(t *testing.T) {
	app := newStopApp(t, nil, map[string]string{"CHAOS": "error", "CHAOS_ERROR_EVERY": "1", "CHAOS_SESSIONS_PERCENT": "1",
		"CHAOS_SEED": "7", "CHAOS_STOP_FAILED_READS_SHARE": "0.5"}, nil)
	run := app.e.active.Load().run
	var experiment, control []string
	for len(experiment) < 10 || len(control) < 10 {
		id := uuid.NewString()
		if run.groupOf(id) == experimentGroup {
			experiment = append(experiment, id)
		} else {
			control = append(control, id)
		}
	}
	n, s := app.searchUntilAborted(1000, func(i int) string {
		if i%100 == 0 {
			return experiment[i/100-1]
		}
		return control[i%10]
	})
	if n != 1000 || s.Abort == nil || s.Abort.Condition != "failed_reads_share" || s.Abort.Observed != 1 {
		t.Fatalf("the experiment group's every read failed: aborted after %d searches (1001: not in 1000), abort %+v", n, s.Abort)
	}
	if e, c := s.Groups["experiment"], s.Groups["control"]; e.Searches != 10 || e.FailedReads != 10 || e.DegradedSearches != 10 ||
		c.Searches != 990 || c.FailedReads != 0 || c.DegradedSearches != 0 {
		t.Errorf("groups: experiment %+v, control %+v", e, c)
	}
	// The abort keeps both windows as they were: the control group's full,
	// unharmed, beside the experiment group's ten.
	if g := s.Abort.Groups; g.Experiment.Searches != 10 || g.Experiment.FailedReadsShare != 1 || g.Experiment.DegradedShare != 1 ||
		g.Control.Searches != 100 || g.Control.FailedReadsShare != 0 || g.Control.DegradedShare != 0 || g.Control.P99Seconds <= 0 {
		t.Errorf("abort's groups: %+v", g)
	}
}

// TestStopConditionsFireAtMinSearches: a window of 100 at low traffic; the
// conditions judge from the 10th search on, not the 100th.
func TestStopConditionsFireAtMinSearches(t *testing.T) {
	app := newStopApp(t, nil, map[string]string{"CHAOS": "error", "CHAOS_ERROR_EVERY": "1", "CHAOS_STOP_FAILED_READS_SHARE": "0.5"}, nil)
	n, s := app.searchUntilAborted(99, oneSession(uuid.NewString()))
	if n != 10 || s.Abort == nil || s.Abort.Condition != "failed_reads_share" || s.Abort.Observed != 1 {
		t.Fatalf("every read failed, window of 100: aborted after %d searches (100: not in 99), abort %+v", n, s.Abort)
	}
	if s.Abort.Window != 100 || s.Abort.Groups.Experiment.Searches != 10 {
		t.Errorf("abort %+v, want a window of 100 judged on 10 searches", s.Abort)
	}
	// The share is of the searches in: one failure in three is above 0.3.
	app = newStopApp(t, nil, map[string]string{"CHAOS": "error", "CHAOS_ERROR_EVERY": "3", "CHAOS_STOP_MIN_SEARCHES": "3",
		"CHAOS_STOP_FAILED_READS_SHARE": "0.3"}, nil)
	if n, s := app.searchUntilAborted(99, oneSession(uuid.NewString())); n != 3 || s.Abort == nil || s.Abort.Observed != 1.0/3 {
		t.Errorf("min 3, every 3rd read failing: aborted after %d searches, abort %+v", n, s.Abort)
	}
}

func TestStopMinSearchesSetting(t *testing.T) {
	for env, want := range map[string]int{"": 10, "1": 1, "100": 100} {
		c, err := FromEnv(mapGetenv(map[string]string{"CHAOS": "error", "CHAOS_STOP_MIN_SEARCHES": env}))
		if err != nil || c.stopMinSearches() != want {
			t.Errorf("CHAOS_STOP_MIN_SEARCHES=%q: %d, %v; want %d", env, c.stopMinSearches(), err, want)
		}
	}
	if c, err := FromJSON([]byte(`{"experiment":"error","stop_window_searches":4,"stop_degraded_share":0.5}`)); err != nil || c.stopMinSearches() != 4 {
		t.Errorf("a window of 4: min %d, %v; want the whole window", c.stopMinSearches(), err)
	}
	for env, want := range map[string]string{
		"-1":  `invalid CHAOS_STOP_MIN_SEARCHES "-1": want a whole number of searches from 1 to the window's 100, such as 10`,
		"101": `invalid CHAOS_STOP_MIN_SEARCHES "101": want a whole number of searches from 1 to the window's 100, such as 10`,
		"x":   `invalid CHAOS_STOP_MIN_SEARCHES "x": want a whole number of searches from 1 to the window's size, such as 10`,
	} {
		if _, err := FromEnv(mapGetenv(map[string]string{"CHAOS_STOP_MIN_SEARCHES": env})); err == nil || err.Error() != want {
			t.Errorf("CHAOS_STOP_MIN_SEARCHES=%s:\n error %v\n want  %s", env, err, want)
		}
	}
	if _, err := FromJSON([]byte(`{"stop_window_searches":5,"stop_min_searches":6}`)); err == nil ||
		err.Error() != `invalid stop_min_searches "6": want a whole number of searches from 1 to the window's 5, such as 5` {
		t.Errorf("min 6 of a window of 5: %v", err)
	}
}

// TestStopConditionsSeeNon2xxAndPanics: pages that read and remembered but
// answered 503, or panicked, are degraded.
func TestStopConditionsSeeNon2xxAndPanics(t *testing.T) {
	env := map[string]string{"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "0.001", "CHAOS_STOP_WINDOW_SEARCHES": "10",
		"CHAOS_STOP_FAILED_READS_SHARE": "0.5", "CHAOS_STOP_DEGRADED_SHARE": "0.5"}
	t.Run("503", func(t *testing.T) {
		app := newStopApp(t, nil, env, func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
		})
		n, s := app.searchUntilAborted(30, oneSession(uuid.NewString()))
		if n != 10 || s.Abort == nil || s.Abort.Condition != "degraded_share" {
			t.Fatalf("every page 503: aborted after %d searches (31: not in 30), abort %+v", n, s.Abort)
		}
	})
	t.Run("panic", func(t *testing.T) {
		type boom struct{ n int }
		thrown := &boom{1}
		app := newStopApp(t, nil, env, func(http.ResponseWriter, *http.Request) { panic(thrown) })
		n, s := 0, Status{}
		for n = 1; n <= 30; n++ {
			func() {
				defer func() {
					if v := recover(); v != thrown {
						t.Fatalf("search %d: recovered %v, want the handler's own panic", n, v)
					}
				}()
				app.search(uuid.NewString())
			}()
			if s = app.e.Status(""); s.State == StateAborted {
				break
			}
		}
		if n != 10 || s.Abort == nil || s.Abort.Condition != "degraded_share" {
			t.Fatalf("every page panicked: aborted after %d searches (31: not in 30), abort %+v", n, s.Abort)
		}
	})
}

// TestStopDegradedShareHoldsForHealthyPages: a key not stored (redis.Nil)
// and a script the server has not loaded (NOSCRIPT, which go-redis's
// Script.Run answers by sending it whole) are no failure.
func TestStopDegradedShareHoldsForHealthyPages(t *testing.T) {
	app := newStopApp(t, nil, map[string]string{"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "0.001", "CHAOS_STOP_WINDOW_SEARCHES": "10",
		"CHAOS_STOP_DEGRADED_SHARE": "0.01"}, nil)
	admin := redis.NewClient(&redis.Options{Addr: testRedis.Addr(), Protocol: 2, DisableIdentity: true})
	defer admin.Close()
	for i := range 20 {
		if err := admin.ScriptFlush(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		if page := app.serve(http.MethodPost, "/search", pageSessionCookie+"="+uuid.NewString(), nil).Body.String(); page != "read\n" {
			t.Fatalf("search %d: %q", i, page)
		}
	}
	if s := app.e.Status(""); s.State != StateRunning || s.Groups["experiment"].DegradedSearches != 0 {
		t.Errorf("20 healthy pages: state %s, abort %+v, groups %+v", s.State, s.Abort, s.Groups)
	}
}

// TestPipelineOutcomeIsRecorded: a pipeline's failed command degrades its
// request; a key not stored does not.
func TestPipelineOutcomeIsRecorded(t *testing.T) {
	e := testExperiment(t, map[string]string{"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "1", "CHAOS_COMMANDS": "set"}, Options{})
	rdb := testClient(t, e, redis.Options{})
	pipe := func(cmds func(redis.Pipeliner)) *request {
		req := &request{}
		ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), requestKey{}, req), stopPageTimeout)
		defer cancel()
		rdb.Pipelined(ctx, func(p redis.Pipeliner) error { cmds(p); return nil })
		return req
	}
	key := "pipeline:" + uuid.NewString()
	if req := pipe(func(p redis.Pipeliner) { p.Get(context.Background(), key) }); req.failed.Load() {
		t.Errorf("a pipeline reading a key not stored failed its request")
	}
	if req := pipe(func(p redis.Pipeliner) { p.Get(context.Background(), key); p.Set(context.Background(), key, "x", 0) }); !req.failed.Load() {
		t.Errorf("a pipeline past its deadline did not fail its request")
	}
}

// TestStopShareOfOneIsRefused: more than every search can never break, so a
// share of 1 is a stop condition that could never fire.
func TestStopShareOfOneIsRefused(t *testing.T) {
	for _, env := range []string{"CHAOS_STOP_FAILED_READS_SHARE", "CHAOS_STOP_DEGRADED_SHARE"} {
		_, err := FromEnv(mapGetenv(map[string]string{"CHAOS": "error", env: "1"}))
		if err == nil || !strings.Contains(err.Error(), `invalid `+env+` "1": want a share below 1`) || !strings.Contains(err.Error(), "never fire") {
			t.Errorf("%s=1: %v, want it refused as a condition that could never fire", env, err)
		}
	}
	for _, field := range []string{"stop_failed_reads_share", "stop_degraded_share"} {
		_, err := FromJSON([]byte(`{"experiment":"error","` + field + `":1}`))
		if err == nil || !strings.Contains(err.Error(), `invalid `+field+` "1": want a share below 1`) {
			t.Errorf("%s 1: %v, want it refused", field, err)
		}
	}
}
