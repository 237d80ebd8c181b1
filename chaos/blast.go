package chaos

import (
	"cmp"
	"context"
	"errors"
	"math"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// The blast radius and what it is judged by: each request carries in its
// context whom it is for (its unit) and what the experiment did to it; the
// hooks read the unit from there to decide, once per command, whether a
// fault reaches it, and Middleware counts each page by group when it ends.

// group is which side of the blast radius a unit is on.
type group int

const (
	experimentGroup group = iota
	controlGroup
)

func (g group) String() string {
	if g == controlGroup {
		return "control"
	}
	return "experiment"
}

// groupOf tells which group a unit is in: stable for a unit and a seed,
// across requests and across instances.
func (r *run) groupOf(unit string) group {
	if r.allSessions || unitHash(r.seed, unit)>>11 < r.cutoff {
		return experimentGroup
	}
	return controlGroup
}

// unitHash is FNV-1a over the seed and the unit, finished with SplitMix64's
// mixer so that nearby units spread over the whole range.
func unitHash(seed uint64, unit string) uint64 {
	h := uint64(14695981039346656037)
	for i := range 8 {
		h = (h ^ uint64(byte(seed>>(8*i)))) * 1099511628211
	}
	for i := 0; i < len(unit); i++ {
		h = (h ^ uint64(unit[i])) * 1099511628211
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	return h ^ h>>31
}

// reaches reports whether a fault may apply to a command made in ctx: with
// a blast radius, only in a request for a unit of the experiment group.
func (r *run) reaches(ctx context.Context) bool {
	if r.allSessions {
		return true
	}
	unit := requestOf(ctx).unitName()
	return unit != "" && r.groupOf(unit) == experimentGroup
}

// request follows one request through the hooks, in its context.
type request struct {
	unit           atomic.Pointer[string]
	readOK         atomic.Bool
	failed         atomic.Bool // a Redis operation of the request failed
	delaysInjected atomic.Int64
	errorsInjected atomic.Int64
	// What a dry run decided for it and did not inject.
	delaysWouldInject atomic.Int64
	errorsWouldInject atomic.Int64
}

type requestKey struct{}

// requestOf is ctx's request; nil outside Middleware, or while no
// experiment injects. Its methods do nothing on nil.
func requestOf(ctx context.Context) *request {
	r, _ := ctx.Value(requestKey{}).(*request)
	return r
}

func (r *request) unitName() string {
	if r == nil {
		return ""
	}
	if u := r.unit.Load(); u != nil {
		return *u
	}
	return ""
}

// read records that a request read (or found nothing to read).
func (r *request) read(err error) {
	if r != nil && !failed(err) {
		r.readOK.Store(true)
	}
}

// done records the outcome of one of the request's Redis operations.
func (r *request) done(err error) {
	if r != nil && failed(err) {
		r.failed.Store(true)
	}
}

// failed reports whether a command's error failed the operation. redis.Nil
// is an answer: nothing stored. NOSCRIPT is go-redis's Script.Run finding the
// script flushed; it loads it again and retries, and the retry's outcome is
// the operation's.
func failed(err error) bool {
	return err != nil && !errors.Is(err, redis.Nil) && !redis.HasErrorPrefix(err, "NOSCRIPT")
}

func (r *request) delayInjected() {
	if r != nil {
		r.delaysInjected.Add(1)
	}
}

func (r *request) errorInjected() {
	if r != nil {
		r.errorsInjected.Add(1)
	}
}

func (r *request) delayWouldInject() {
	if r != nil {
		r.delaysWouldInject.Add(1)
	}
}

func (r *request) errorWouldInject() {
	if r != nil {
		r.errorsWouldInject.Add(1)
	}
}

// Degraded marks the request whose context ctx is as degraded, for the
// stop conditions, when the service could not give it what it should have
// without a Redis command failing: its circuit breaker skipped the command,
// say. A command that failed marks it already. Outside Middleware, or while
// no experiment injects, it does nothing.
func Degraded(ctx context.Context) {
	if r := requestOf(ctx); r != nil {
		r.failed.Store(true)
	}
}

// SetUnit names the unit of the request whose context ctx is, when the
// handler assigns one during the request (a new visitor's session): the
// commands after it, and the page's count, go by that unit. Outside
// Middleware, or while no experiment injects, it does nothing.
func SetUnit(ctx context.Context, unit string) {
	if r := requestOf(ctx); r != nil {
		r.unit.Store(&unit)
	}
}

// Middleware wraps the service's handler: while an experiment injects, it
// puts each request's unit (the Unit option) in its context for the hooks,
// and counts each page (the Pages option) by group for the status, the
// metrics and the stop conditions, whatever it answers, a panic included,
// which it passes on as it came. While none injects it costs a request one
// atomic load.
func (e *Experiment) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := e.active.Load()
		if !p.injects() {
			next.ServeHTTP(w, r)
			return
		}
		req := &request{}
		if e.opts.Unit != nil {
			if unit := e.opts.Unit(r); unit != "" {
				req.unit.Store(&unit)
			}
		}
		r = r.WithContext(context.WithValue(r.Context(), requestKey{}, req))
		if !e.opts.isPage(r) {
			next.ServeHTTP(w, r)
			return
		}
		if p.run.window != nil {
			p.run.window.begin(req, e.now())
		}
		rec := &statusRecorder{ResponseWriter: w}
		start := time.Now()
		defer func() {
			// recover only here, where the page is counted: net/http then
			// handles the same panic as it would have without Middleware.
			if v := recover(); v != nil {
				e.pageEnded(p, req, 0, time.Since(start))
				panic(v)
			}
		}()
		next.ServeHTTP(rec, r)
		e.pageEnded(p, req, cmp.Or(rec.status, http.StatusOK), time.Since(start))
	})
}

// pageEnded counts a page of p's run that answered status (0: it panicked)
// after took, and ends p if the stop conditions say so.
func (e *Experiment) pageEnded(p *plan, req *request, status int, took time.Duration) {
	run := p.run
	g := run.groupOf(req.unitName())
	o := outcome{failedRead: !req.readOK.Load(), took: took}
	o.degraded = o.failedRead || req.failed.Load() || status < 200 || status > 299
	for _, c := range []*groupCounters{&run.groups[g], &e.groupTotals[g]} {
		c.add(req, o)
	}
	if run.window != nil {
		if abort := run.window.add(req, g, o, e.now()); abort != nil {
			e.end(p, abort)
		}
	}
}

// statusRecorder keeps the status a page answered first (the one sent).
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 && code >= 200 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// groupCounters count the pages of one group.
type groupCounters struct {
	searches         atomic.Int64
	failedReads      atomic.Int64
	degradedSearches atomic.Int64
	searchNanos      atomic.Int64
	searchSquares    atomicFloat // seconds²
	delaysInjected   atomic.Int64
	errorsInjected   atomic.Int64
	// A dry run's: what it would have injected.
	delaysWouldInject atomic.Int64
	errorsWouldInject atomic.Int64
}

func (g *groupCounters) add(r *request, o outcome) {
	g.searches.Add(1)
	g.searchNanos.Add(int64(o.took))
	g.searchSquares.add(o.took.Seconds() * o.took.Seconds())
	g.delaysInjected.Add(r.delaysInjected.Load())
	g.errorsInjected.Add(r.errorsInjected.Load())
	g.delaysWouldInject.Add(r.delaysWouldInject.Load())
	g.errorsWouldInject.Add(r.errorsWouldInject.Load())
	if o.failedRead {
		g.failedReads.Add(1)
	}
	if o.degraded {
		g.degradedSearches.Add(1)
	}
}

// atomicFloat is a float64 added to by many pages at once: a sum of squares
// of nanoseconds would overflow an int64 within a day of long pages.
type atomicFloat struct{ bits atomic.Uint64 }

func (f *atomicFloat) add(v float64) {
	for {
		old := f.bits.Load()
		if f.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

func (f *atomicFloat) load() float64 { return math.Float64frombits(f.bits.Load()) }

func (g *groupCounters) figures() GroupFigures {
	f := GroupFigures{Searches: g.searches.Load(), FailedReads: g.failedReads.Load(), DegradedSearches: g.degradedSearches.Load(),
		DelaysInjected: g.delaysInjected.Load(), ErrorsInjected: g.errorsInjected.Load(),
		DelaysWouldInject: g.delaysWouldInject.Load(), ErrorsWouldInject: g.errorsWouldInject.Load(),
		SearchSeconds: time.Duration(g.searchNanos.Load()).Seconds(), SearchSquareSeconds: g.searchSquares.load()}
	if f.Searches > 0 {
		f.MeanSearchMS = f.SearchSeconds * 1000 / float64(f.Searches)
	}
	return f
}
