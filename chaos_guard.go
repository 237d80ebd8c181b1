//go:build chaos

package main

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Guardrails for an experiment, after the platforms that run faults on real
// traffic (AWS FIS, Netflix's ChAP): a duration after which it ends by
// itself, stop conditions that abort it when the steady state breaks, and a
// blast radius that confines it to a share of the sessions, the rest being
// the control group.

// The environment variables of the guardrails.
const (
	chaosDurationEnv        = "CHAOS_DURATION_SECONDS"
	chaosSessionsPercentEnv = "CHAOS_SESSIONS_PERCENT"
	chaosStopWindowEnv      = "CHAOS_STOP_WINDOW_SEARCHES"
	chaosStopFailedReadsEnv = "CHAOS_STOP_FAILED_READS_SHARE"
	chaosStopSearchP99Env   = "CHAOS_STOP_SEARCH_P99_SECONDS"
)

// Bounds of the guardrail settings.
const (
	maxChaosDuration      = 24 * 60 * 60 // seconds
	defaultStopWindow     = 100          // searches
	maxStopWindow         = 100_000
	stopConditionFailures = "failed_reads_share"
	stopConditionP99      = "search_p99_seconds"
)

// chaosGuardConfig is the guardrails' part of an experiment. Every field left
// out means no guardrail, so the book's workflow is unchanged.
type chaosGuardConfig struct {
	// DurationSeconds ends the experiment this long after it starts; 0: it
	// runs until it is replaced.
	DurationSeconds float64 `json:"duration_seconds,omitempty"`
	// SessionsPercent confines the faults to this share of the sessions; the
	// others are the control group. Unset: every session.
	SessionsPercent *float64 `json:"sessions_percent,omitempty"`
	// StopWindowSearches is how many of the latest searches the stop
	// conditions look at; 0: 100.
	StopWindowSearches int `json:"stop_window_searches,omitempty"`
	// StopFailedReadsShare aborts the experiment when more than this share of
	// the window's searches could not read their interests; 0: never.
	StopFailedReadsShare float64 `json:"stop_failed_reads_share,omitempty"`
	// StopSearchP99Seconds aborts it when the window's p99 time of /search
	// is above this; 0: never.
	StopSearchP99Seconds float64 `json:"stop_search_p99_seconds,omitempty"`
}

// guardFromEnv reads the guardrails from the environment into c; check
// validates them afterwards.
func (c *chaosGuardConfig) guardFromEnv(getenv func(string) string) error {
	invalid := func(env, raw, want string) error {
		return usageError(fmt.Sprintf("invalid %s %q: %s", env, raw, want))
	}
	for _, f := range []struct {
		env  string
		into *float64
		want string
	}{
		{chaosDurationEnv, &c.DurationSeconds, wantDuration},
		{chaosStopFailedReadsEnv, &c.StopFailedReadsShare, wantShare},
		{chaosStopSearchP99Env, &c.StopSearchP99Seconds, wantP99},
	} {
		if raw := getenv(f.env); raw != "" {
			v, err := strconv.ParseFloat(raw, 64)
			if err != nil {
				return invalid(f.env, raw, f.want)
			}
			*f.into = v
		}
	}
	if raw := getenv(chaosSessionsPercentEnv); raw != "" {
		v, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return invalid(chaosSessionsPercentEnv, raw, wantPercent)
		}
		c.SessionsPercent = &v
	}
	if raw := getenv(chaosStopWindowEnv); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil {
			return invalid(chaosStopWindowEnv, raw, wantWindow)
		}
		c.StopWindowSearches = n
	}
	return nil
}

const (
	wantDuration = "want seconds from 0 to 86400, such as 300 (0: no limit)"
	wantPercent  = "want a percentage from 0 to 100, such as 50"
	wantWindow   = "want a whole number of searches from 1 to 100000, such as 100"
	wantShare    = "want a share from 0 to 1, such as 0.5 (0: no such stop condition)"
	wantP99      = "want seconds from 0 to 60, such as 0.5 (0: no such stop condition)"
)

// checkGuard validates the guardrails; name spells a field in the caller's
// terms.
func (c *chaosGuardConfig) checkGuard(name func(field string) string) error {
	invalid := func(field string, value any, want string) error {
		return fmt.Errorf("invalid %s %q: %s", name(field), fmt.Sprint(value), want)
	}
	within := func(v, low, high float64) bool { return !math.IsNaN(v) && v >= low && v <= high }
	switch {
	case !within(c.DurationSeconds, 0, maxChaosDuration):
		return invalid("duration_seconds", c.DurationSeconds, wantDuration)
	case c.SessionsPercent != nil && !within(*c.SessionsPercent, 0, 100):
		return invalid("sessions_percent", *c.SessionsPercent, wantPercent)
	case c.StopWindowSearches < 0 || c.StopWindowSearches > maxStopWindow:
		return invalid("stop_window_searches", c.StopWindowSearches, wantWindow)
	case !within(c.StopFailedReadsShare, 0, 1):
		return invalid("stop_failed_reads_share", c.StopFailedReadsShare, wantShare)
	case !within(c.StopSearchP99Seconds, 0, 60):
		return invalid("stop_search_p99_seconds", c.StopSearchP99Seconds, wantP99)
	}
	return nil
}

func (c chaosGuardConfig) logAttrs() []any {
	attrs := []any{}
	if c.DurationSeconds > 0 {
		attrs = append(attrs, "duration_seconds", c.DurationSeconds)
	}
	if c.SessionsPercent != nil {
		attrs = append(attrs, "sessions_percent", *c.SessionsPercent)
	}
	if c.StopFailedReadsShare > 0 || c.StopSearchP99Seconds > 0 {
		attrs = append(attrs, "stop_window_searches", cmp.Or(c.StopWindowSearches, defaultStopWindow),
			"stop_failed_reads_share", c.StopFailedReadsShare, "stop_search_p99_seconds", c.StopSearchP99Seconds)
	}
	return attrs
}

// chaosClock is the guardrails' time, which tests replace.
type chaosClock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

// chaosGuards is the experiment's part that the guardrails keep.
type chaosGuards struct {
	clock chaosClock // nil: the real one
	// groupTotals count every run's searches by group since the process
	// started, for the metrics, which must only grow; each run counts its own.
	groupTotals [2]chaosGroupCounters
}

func (g *chaosGuards) now() time.Time {
	if g.clock == nil {
		return time.Now()
	}
	return g.clock.Now()
}

// chaosRun is what the guardrails keep for one experiment, from the PUT (or
// the start) that began it, through its end: the plan that ends it shares it,
// so the status still shows what it did.
type chaosRun struct {
	cfg         chaosGuardConfig
	allSessions bool
	cutoff      uint64 // a session whose hash is below it is in the experiment group
	seed        uint64
	started     time.Time
	endsAt      time.Time // zero: no duration
	stopTimer   func() bool

	groups [2]chaosGroupCounters // by chaosGroup

	window *stopWindow // nil: no stop condition

	ended time.Time
	abort *chaosAbort // nil: not aborted
}

// chaosGroup is which side of the blast radius a session is on.
type chaosGroup int

const (
	experimentGroup chaosGroup = iota
	controlGroup
)

func (g chaosGroup) String() string {
	if g == controlGroup {
		return "control"
	}
	return "experiment"
}

type chaosGroupCounters struct {
	searches       atomic.Int64
	failedReads    atomic.Int64
	searchNanos    atomic.Int64
	delaysInjected atomic.Int64
	errorsInjected atomic.Int64
}

func (g *chaosGroupCounters) add(search *chaosSearch, failed bool, took time.Duration) {
	g.searches.Add(1)
	g.searchNanos.Add(int64(took))
	g.delaysInjected.Add(search.delaysInjected.Load())
	g.errorsInjected.Add(search.errorsInjected.Load())
	if failed {
		g.failedReads.Add(1)
	}
}

func newChaosRun(c chaosConfig) *chaosRun {
	run := &chaosRun{cfg: c.chaosGuardConfig, seed: c.Seed, allSessions: c.SessionsPercent == nil}
	if !run.allSessions {
		// 53 bits, so that every percentage maps exactly to a cut-off and
		// 100 % includes every hash.
		run.cutoff = uint64(*c.SessionsPercent / 100 * (1 << 53))
	}
	if c.StopFailedReadsShare > 0 || c.StopSearchP99Seconds > 0 {
		run.window = newStopWindow(cmp.Or(c.StopWindowSearches, defaultStopWindow), c.StopFailedReadsShare, c.StopSearchP99Seconds)
	}
	return run
}

// groupOf tells which group a session is in: stable for a session id and a
// seed, across requests and across instances.
func (r *chaosRun) groupOf(sessionID string) chaosGroup {
	if r.allSessions || sessionHash(r.seed, sessionID)>>11 < r.cutoff {
		return experimentGroup
	}
	return controlGroup
}

// sessionHash is FNV-1a over the seed and the id, finished with SplitMix64's
// mixer so that nearby ids spread over the whole range.
func sessionHash(seed uint64, id string) uint64 {
	h := uint64(14695981039346656037)
	for i := range 8 {
		h = (h ^ uint64(byte(seed>>(8*i)))) * 1099511628211
	}
	for i := 0; i < len(id); i++ {
		h = (h ^ uint64(id[i])) * 1099511628211
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	return h ^ h>>31
}

// reaches reports whether a fault may apply to a Redis command: with a blast
// radius, only to commands on a key of a session in the experiment group.
func (p *chaosPlan) reaches(cmd redis.Cmder) bool {
	if p.run.allSessions {
		return true
	}
	id, ok := sessionOfCommand(cmd)
	return ok && p.run.groupOf(id) == experimentGroup
}

// sessionOfCommand finds the session whose key a command names: the GET's key,
// or the compare-and-set script's first key.
func sessionOfCommand(cmd redis.Cmder) (string, bool) {
	for _, arg := range cmd.Args()[1:] {
		if s, ok := arg.(string); ok && strings.HasPrefix(s, sessionKeyPrefix) {
			return s[len(sessionKeyPrefix):], true
		}
	}
	return "", false
}

// chaosSearch follows one /search through the hooks, in its context.
type chaosSearch struct {
	readOK         atomic.Bool
	delaysInjected atomic.Int64
	errorsInjected atomic.Int64
}

type chaosSearchKey struct{}

func searchOf(ctx context.Context) *chaosSearch {
	s, _ := ctx.Value(chaosSearchKey{}).(*chaosSearch)
	return s
}

// noteRead records that a search read its interests (or found none).
func noteRead(ctx context.Context, err error) {
	if s := searchOf(ctx); s != nil && (err == nil || err == redis.Nil) {
		s.readOK.Store(true)
	}
}

func noteDelay(ctx context.Context) {
	if s := searchOf(ctx); s != nil {
		s.delaysInjected.Add(1)
	}
}

func noteError(ctx context.Context) {
	if s := searchOf(ctx); s != nil {
		s.errorsInjected.Add(1)
	}
}

// observe wraps the shop's handler: while an experiment injects, it counts
// each /search by group and feeds the stop conditions.
func (e *chaosExperiment) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		plan := e.active.Load()
		if r.URL.Path != "/search" || !plan.injects() {
			next.ServeHTTP(w, r)
			return
		}
		search := &chaosSearch{}
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), chaosSearchKey{}, search)))
		took := time.Since(start)
		if rec.status != http.StatusOK {
			return // refused before it reached the store
		}
		run := plan.run
		group := run.groupOf(sessionOfRequest(r, w.Header()))
		failed := !search.readOK.Load()
		for _, g := range []*chaosGroupCounters{&run.groups[group], &e.groupTotals[group]} {
			g.add(search, failed, took)
		}
		if run.window != nil {
			if abort := run.window.add(failed, took); abort != nil {
				e.end(plan, abort)
			}
		}
	})
}

// sessionOfRequest is the session a search belongs to: its cookie's, or the
// one the response issues.
func sessionOfRequest(r *http.Request, response http.Header) string {
	if c, err := r.Cookie(sessionCookie); err == nil && validSessionID(c.Value) {
		return c.Value
	}
	for _, line := range response.Values("Set-Cookie") {
		if c, err := http.ParseSetCookie(line); err == nil && c.Name == sessionCookie {
			return c.Value
		}
	}
	return ""
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// stopWindow holds the latest searches' outcomes for the stop conditions.
type stopWindow struct {
	mu          sync.Mutex
	size        int
	failedShare float64       // 0: not a condition
	p99         time.Duration // 0: not a condition
	failed      []bool
	took        []time.Duration
	next, n     int
	failedCount int
	slowCount   int // searches slower than p99
}

func newStopWindow(size int, failedShare, p99Seconds float64) *stopWindow {
	return &stopWindow{size: size, failedShare: failedShare, p99: time.Duration(p99Seconds * float64(time.Second)),
		failed: make([]bool, size), took: make([]time.Duration, size)}
}

// chaosAbort is why a stop condition aborted an experiment.
type chaosAbort struct {
	Condition string  `json:"condition"`
	Observed  float64 `json:"observed"`
	Threshold float64 `json:"threshold"`
	Window    int     `json:"window_searches"`
}

// add records a search and returns the condition it breaks, once the window
// is full.
func (w *stopWindow) add(failed bool, took time.Duration) *chaosAbort {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n == w.size {
		if w.failed[w.next] {
			w.failedCount--
		}
		if w.p99 > 0 && w.took[w.next] > w.p99 {
			w.slowCount--
		}
	} else {
		w.n++
	}
	w.failed[w.next], w.took[w.next] = failed, took
	if failed {
		w.failedCount++
	}
	if w.p99 > 0 && took > w.p99 {
		w.slowCount++
	}
	w.next = (w.next + 1) % w.size
	if w.n < w.size {
		return nil
	}
	if share := float64(w.failedCount) / float64(w.size); w.failedShare > 0 && share > w.failedShare {
		return &chaosAbort{Condition: stopConditionFailures, Observed: share, Threshold: w.failedShare, Window: w.size}
	}
	// The nearest-rank p99 is the rank-k value, k = ⌈0.99 n⌉: it is above the
	// threshold when at least n-k+1 searches are.
	if rank := int(math.Ceil(0.99 * float64(w.size))); w.p99 > 0 && w.slowCount >= w.size-rank+1 {
		sorted := slices.Clone(w.took)
		slices.Sort(sorted)
		return &chaosAbort{Condition: stopConditionP99, Observed: sorted[rank-1].Seconds(), Threshold: w.p99.Seconds(), Window: w.size}
	}
	return nil
}

// started begins a plan's run: its duration, if it has one. The caller holds
// e.swap and makes plan active after it.
func (e *chaosExperiment) started(plan, old *chaosPlan) {
	if old != nil && old.run.stopTimer != nil {
		old.run.stopTimer()
	}
	run := plan.run
	run.started = e.now()
	if !plan.injects() || run.cfg.DurationSeconds == 0 {
		return
	}
	d := time.Duration(run.cfg.DurationSeconds * float64(time.Second))
	run.endsAt = run.started.Add(d)
	clock := e.clock
	if clock == nil {
		clock = realClock{}
	}
	run.stopTimer = clock.AfterFunc(d, func() { e.end(plan, nil) })
}

// end stops plan's injection, if plan still runs: its duration ran out
// (abort nil) or a stop condition broke. Only a PUT starts injecting again.
func (e *chaosExperiment) end(plan *chaosPlan, abort *chaosAbort) {
	e.swap.Lock()
	defer e.swap.Unlock()
	if e.active.Load() != plan {
		return // replaced, or already ended
	}
	ended := newChaosPlan(plan.config)
	ended.latency, ended.failReads = false, false
	ended.run = plan.run
	run := plan.run
	run.ended = e.now()
	if run.stopTimer != nil {
		run.stopTimer()
	}
	run.abort = abort
	e.active.Store(ended)
	if abort != nil {
		e.logger.Warn("chaos experiment aborted by a stop condition; no injection until the next PUT /debug/chaos",
			"experiment", plan.config.Experiment, "condition", abort.Condition, "observed", abort.Observed,
			"threshold", abort.Threshold, "window_searches", abort.Window)
		return
	}
	e.logger.Warn("chaos experiment ended: its duration ran out; no injection until the next PUT /debug/chaos",
		"experiment", plan.config.Experiment, "duration_seconds", run.cfg.DurationSeconds)
}

// injects reports whether the plan injects any fault.
func (p *chaosPlan) injects() bool { return p.latency || p.failReads }

// chaosGuardStatus is the guardrails' part of GET /debug/chaos.
type chaosGuardStatus struct {
	// State is running, ended (its duration ran out), aborted (a stop
	// condition broke) or off.
	State   string                       `json:"state"`
	EndsAt  *time.Time                   `json:"ends_at,omitempty"`
	EndedAt *time.Time                   `json:"ended_at,omitempty"`
	Abort   *chaosAbort                  `json:"abort,omitempty"`
	Groups  map[string]chaosGroupFigures `json:"groups,omitempty"`
	Session *chaosSessionGroup           `json:"session,omitempty"`
}

// chaosGroupFigures count the searches of one group while the experiment ran.
type chaosGroupFigures struct {
	Searches       int64   `json:"searches"`
	FailedReads    int64   `json:"failed_reads"`
	DelaysInjected int64   `json:"delays_injected"`
	ErrorsInjected int64   `json:"errors_injected"`
	SearchSeconds  float64 `json:"search_seconds"`
	MeanSearchMS   float64 `json:"mean_search_ms"`
}

type chaosSessionGroup struct {
	ID    string `json:"id"`
	Group string `json:"group"`
}

// guardStatus describes plan's guardrails; sessionID, if not empty, asks
// which group that session is in.
func guardStatus(plan *chaosPlan, sessionID string) chaosGuardStatus {
	run := plan.run
	s := chaosGuardStatus{State: "off"}
	switch {
	case plan.injects():
		s.State = "running"
		if !run.endsAt.IsZero() {
			s.EndsAt = &run.endsAt
		}
	case run.abort != nil:
		s.State, s.EndedAt, s.Abort = "aborted", &run.ended, run.abort
	case !run.ended.IsZero():
		s.State, s.EndedAt = "ended", &run.ended
	}
	if s.State != "off" {
		s.Groups = map[string]chaosGroupFigures{}
		for _, g := range []chaosGroup{experimentGroup, controlGroup} {
			c := &run.groups[g]
			f := chaosGroupFigures{Searches: c.searches.Load(), FailedReads: c.failedReads.Load(),
				DelaysInjected: c.delaysInjected.Load(), ErrorsInjected: c.errorsInjected.Load(),
				SearchSeconds: time.Duration(c.searchNanos.Load()).Seconds()}
			if f.Searches > 0 {
				f.MeanSearchMS = f.SearchSeconds * 1000 / float64(f.Searches)
			}
			s.Groups[g.String()] = f
		}
	}
	if sessionID != "" {
		s.Session = &chaosSessionGroup{ID: sessionID, Group: run.groupOf(sessionID).String()}
	}
	return s
}

// registerGroupMetrics exports the searches of each side of the blast radius
// since the process started, labelled chaos_group="experiment" or "control".
// Without a blast radius every session is in the experiment group.
func (e *chaosExperiment) registerGroupMetrics(reg prometheus.Registerer) {
	for _, g := range []chaosGroup{experimentGroup, controlGroup} {
		c := &e.groupTotals[g]
		count := func(v *atomic.Int64) func() float64 { return func() float64 { return float64(v.Load()) } }
		reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name:        "shopsession_chaos_group_searches_total",
				Help:        "Searches served while an experiment injected, by side of the blast radius.",
				ConstLabels: prometheus.Labels{"chaos_group": g.String()},
			}, count(&c.searches)),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name:        "shopsession_chaos_group_failed_reads_total",
				Help:        "Searches that could not read their interests while an experiment injected, by side of the blast radius.",
				ConstLabels: prometheus.Labels{"chaos_group": g.String()},
			}, count(&c.failedReads)),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name:        "shopsession_chaos_group_delays_injected_total",
				Help:        "Delays injected into the searches of each side of the blast radius.",
				ConstLabels: prometheus.Labels{"chaos_group": g.String()},
			}, count(&c.delaysInjected)),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name:        "shopsession_chaos_group_errors_injected_total",
				Help:        "Errors injected into the searches of each side of the blast radius.",
				ConstLabels: prometheus.Labels{"chaos_group": g.String()},
			}, count(&c.errorsInjected)),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name:        "shopsession_chaos_group_search_seconds_total",
				Help:        "Time the service spent on the searches of each side of the blast radius while an experiment injected.",
				ConstLabels: prometheus.Labels{"chaos_group": g.String()},
			}, func() float64 { return time.Duration(c.searchNanos.Load()).Seconds() }),
		)
	}
}
