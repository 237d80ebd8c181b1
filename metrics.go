package main

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
)

// metrics are the service's own Prometheus metrics, in both builds, in a
// registry of their own: tests and repeated run calls never collide in the
// global one. Every label value comes from a fixed set — route patterns,
// methods, status codes, Redis command names — never from a path, a session
// id or a query. A nil *metrics records nothing: with the admin listener
// disabled nobody could read them, so the shop does not pay for them.
type metrics struct {
	registry *prometheus.Registry

	requests    *prometheus.CounterVec   // route, method, code
	durations   *prometheus.HistogramVec // route, method
	httpSeries  seriesCache
	searchPages [2]prometheus.Counter // without, with recommendations

	redisCommands     *prometheus.CounterVec
	redisErrors       *prometheus.CounterVec
	redisCommandCount [len(redisCommandLabels)]prometheus.Counter
	redisErrorCount   [len(redisCommandLabels)]prometheus.Counter
	casConflicts      prometheus.Counter

	breakerState       *prometheus.GaugeVec   // state; registered by watchBreaker
	breakerTransitions *prometheus.CounterVec // from, to; registered by watchBreaker
	breakers           *prometheus.GaugeVec   // operation, state; registered by watchBreaker

	recommender *recommenderMetrics // nil without RECOMMENDER_URL (recommender_metrics.go)
}

const metricsNamespace = "shopsession"

// Label values of shopsession_search_pages_total.
const (
	outcomeWith    = "with_recommendations"
	outcomeWithout = "without_recommendations"
)

// requestBuckets span a search served from loopback Redis (well under a
// millisecond) up to the Redis timeout and the chaos build's delays.
var requestBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// redisCommandLabels are the commands the service sends (hello: go-redis's
// handshake on each new connection); any other is counted as "other", so a
// label never carries more than these.
var redisCommandLabels = [...]string{"get", "evalsha", "eval", "script", "ping", "hello", "other"}

func newMetrics() *metrics {
	m := &metrics{registry: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "http_requests_total",
		Help: "HTTP requests the shop answered, by route pattern (unmatched: no route), method and status code.",
	}, []string{"route", "method", "code"})
	m.durations = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: metricsNamespace, Name: "http_request_duration_seconds",
		Help:    "Time from the shop's handler receiving a request to its return, by route pattern and method.",
		Buckets: requestBuckets,
	}, []string{"route", "method"})
	m.httpSeries.newSeries = func(k seriesKey) *series {
		route, method := routeLabel(k.pattern), k.method
		return &series{
			requests: m.requests.WithLabelValues(route, method, strconv.Itoa(k.code)),
			duration: m.durations.WithLabelValues(route, method),
		}
	}
	pages := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "search_pages_total",
		Help: "Search pages rendered, by outcome: with_recommendations, or without_recommendations (Redis failed, or the session has no interests yet).",
	}, []string{"outcome"})
	m.searchPages[0], m.searchPages[1] = pages.WithLabelValues(outcomeWithout), pages.WithLabelValues(outcomeWith)
	m.redisCommands = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "redis_commands_total",
		Help: "Redis commands the service issued, by command (get reads a session; evalsha, or eval after NOSCRIPT, writes it).",
	}, []string{"command"})
	m.redisErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "redis_errors_total",
		Help: "Redis commands that failed, by command: connection errors, timeouts and error replies; a missing key is not an error.",
	}, []string{"command"})
	m.casConflicts = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "redis_cas_conflicts_total",
		Help: "Compare-and-set writes of a session's interests refused because another search of the session wrote first; each is retried.",
	})
	m.breakerState = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: metricsNamespace, Name: "redis_breaker_state",
		Help: "1 for the worst state of the circuit breakers around Redis (open, else half-open, else closed), 0 for the others.",
	}, []string{"state"})
	m.breakerTransitions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "redis_breaker_transitions_total",
		Help: "Changes of state of the circuit breakers around Redis, by the state one left and the state it entered.",
	}, []string{"from", "to"})
	m.breakers = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: metricsNamespace, Name: "redis_breakers",
		Help: "Circuit breakers around Redis, one per server for its reads and one for its writes (and a cluster's for its slot table: routing), by what they guard and their state.",
	}, []string{"operation", "state"})
	m.registry.MustRegister(m.requests, m.durations, pages, m.redisCommands, m.redisErrors, m.casConflicts,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// instrumentHTTP counts and times every request next serves. next must be
// (or wrap, without copying the request) the ServeMux, which records the
// route pattern it matched in the request.
func (m *metrics) instrumentHTTP(next http.Handler) http.Handler {
	if m == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := statusWriters.Get().(*statusWriter)
		sw.ResponseWriter, sw.code = w, 0
		next.ServeHTTP(sw, r)
		code := sw.code
		if code == 0 {
			code = http.StatusOK // the handler wrote nothing: net/http sends 200
		}
		sw.ResponseWriter = nil
		statusWriters.Put(sw)
		s := m.httpSeries.get(seriesKey{pattern: r.Pattern, method: methodLabel(r.Method), code: code})
		s.duration.Observe(time.Since(start).Seconds())
		s.requests.Inc()
	})
}

// searchPage counts a rendered search page by whether it recommended
// anything.
func (m *metrics) searchPage(recommended bool) {
	if m == nil {
		return
	}
	if recommended {
		m.searchPages[1].Inc()
	} else {
		m.searchPages[0].Inc()
	}
}

// casConflict counts a compare-and-set write that found the session changed.
func (m *metrics) casConflict() {
	if m == nil {
		return
	}
	m.casConflicts.Inc()
}

// breakerStates are the states of a circuit breaker, as gobreaker names them.
var breakerStates = [...]string{"closed", "half-open", "open"}

// breakerOperations are what a circuit breaker guards (half in breaker.go).
var breakerOperations = [...]string{"read", "write", "routing"}

// watchBreaker exports the state of the circuit breakers around Redis,
// whose worst is now state (gobreaker's State.String()); each breaker's
// OnStateChange then reports its changes to breakerStateChanged. The
// breakers' metrics are registered only when there are breakers to
// describe.
func (m *metrics) watchBreaker(state string) {
	if m == nil {
		return
	}
	for _, op := range breakerOperations {
		for _, state := range breakerStates {
			m.breakers.WithLabelValues(op, state).Add(0)
		}
	}
	m.registry.MustRegister(m.breakerState, m.breakerTransitions, m.breakers)
	m.setBreakerState(state)
}

// breakerAdded counts a new breaker, closed, that guards operation.
func (m *metrics) breakerAdded(operation string) {
	if m == nil {
		return
	}
	m.breakers.WithLabelValues(operation, "closed").Inc()
}

// breakerStateChanged records a change of one breaker's state, which guards
// operation, and the worst state of all of them after it; call it from the
// breaker's OnStateChange with gobreaker's State.String() of each.
func (m *metrics) breakerStateChanged(operation, from, to, worst string) {
	if m == nil {
		return
	}
	m.setBreakerState(worst)
	m.breakerTransitions.WithLabelValues(from, to).Inc()
	m.breakers.WithLabelValues(operation, from).Dec()
	m.breakers.WithLabelValues(operation, to).Inc()
}

func (m *metrics) setBreakerState(current string) {
	for _, state := range breakerStates {
		v := 0.0
		if state == current {
			v = 1
		}
		m.breakerState.WithLabelValues(state).Set(v)
	}
}

// watchDegraded exports whether the service runs degraded: some circuit
// breaker around Redis is not closed, so some pages are served without
// recommendations or without remembering their search.
func (m *metrics) watchDegraded(degraded func() bool) {
	if m == nil {
		return
	}
	m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: metricsNamespace, Name: "degraded",
		Help: "1 while a circuit breaker around Redis is open or half-open, so that some pages are served without recommendations or do not remember their search (/readyz says which), else 0.",
	}, func() float64 {
		if degraded() {
			return 1
		}
		return 0
	}))
}

// watchRedis counts the commands rdb sends and their errors. Call it before
// any other hook is added, so that it sees what those hooks do to a command
// (the chaos build's injected errors among them) as the store sees it.
func (m *metrics) watchRedis(rdb redis.UniversalClient) {
	if m == nil {
		return
	}
	for i, name := range redisCommandLabels {
		m.redisCommandCount[i] = m.redisCommands.WithLabelValues(name)
		m.redisErrorCount[i] = m.redisErrors.WithLabelValues(name)
	}
	rdb.AddHook(&redisMetricsHook{m})
}

// redisMetricsHook counts commands and their errors, by command.
type redisMetricsHook struct{ m *metrics }

var _ redis.Hook = (*redisMetricsHook)(nil)

func (h *redisMetricsHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *redisMetricsHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.count(cmd, err)
		return err
	}
}

func (h *redisMetricsHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, cmd := range cmds {
			h.count(cmd, cmd.Err())
		}
		return err
	}
}

func (h *redisMetricsHook) count(cmd redis.Cmder, err error) {
	i := redisCommandIndex(cmd.Name())
	h.m.redisCommandCount[i].Inc()
	if err != nil && !errors.Is(err, redis.Nil) {
		h.m.redisErrorCount[i].Inc()
	}
}

func redisCommandIndex(name string) int {
	for i, known := range redisCommandLabels[:len(redisCommandLabels)-1] {
		if name == known {
			return i
		}
	}
	return len(redisCommandLabels) - 1
}

// statusWriter remembers the status code a handler sends. Pooled: the shop
// should not allocate for its own bookkeeping on every request.
type statusWriter struct {
	http.ResponseWriter
	code int
}

var statusWriters = sync.Pool{New: func() any { return new(statusWriter) }}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// methodLabel bounds the method label: a client may send any token.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete,
		http.MethodPatch, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "other"
}

// routeLabel is a ServeMux pattern without its method ("GET /search" →
// "/search"), or "unmatched" for a request no route took (404, 405).
func routeLabel(pattern string) string {
	if pattern == "" {
		return "unmatched"
	}
	if _, path, ok := strings.Cut(pattern, " "); ok {
		return path
	}
	return pattern
}

// seriesKey picks one request series; each field comes from a bounded set.
type seriesKey struct {
	pattern string
	method  string
	code    int
}

type series struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// seriesCache resolves a request's label values to its series once: after
// that, a request costs one atomic load and one map lookup, with no locking
// and no allocation. The set of keys is bounded, so a miss, which copies the
// map, happens a few dozen times in a process's life.
type seriesCache struct {
	mu        sync.Mutex
	byKey     atomic.Pointer[map[seriesKey]*series]
	newSeries func(seriesKey) *series
}

func (c *seriesCache) get(k seriesKey) *series {
	if m := c.byKey.Load(); m != nil {
		if s, ok := (*m)[k]; ok {
			return s
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.byKey.Load()
	if old != nil {
		if s, ok := (*old)[k]; ok {
			return s
		}
	}
	next := make(map[seriesKey]*series, 1)
	if old != nil {
		for key, s := range *old {
			next[key] = s
		}
	}
	s := c.newSeries(k)
	next[k] = s
	c.byKey.Store(&next)
	return s
}
