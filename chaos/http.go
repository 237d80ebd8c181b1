package chaos

import (
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// The HTTP adapter: the experiments of the Redis client, on the calls the
// service makes to its HTTP dependencies (Options.HTTPDependencies) through
// the round tripper Transport returns. A Config's dependencies say which it
// faults. Whom a fault reaches is decided once per call, as for a Redis
// command: the call's target (http_hosts, http_paths), the blast radius by
// the unit of the page whose context the call carries, then the every Nth
// or the rate of failed calls, or else the latency's draw. The faults are
// each in a file of their own: http_latency.go (before the request, or
// holding the body after the headers), http_error.go, http_status.go and
// http_hang.go.

// Transport returns next (nil: http.DefaultTransport) wrapped so that the
// experiments that name dependency (one of Options.HTTPDependencies) fault
// its calls; set it as the http.Client's Transport. Make each call with the
// context of the page it serves (http.NewRequestWithContext with the
// request's context, or one derived from it): the blast radius, the
// counts by group and the stop conditions read the page there. While no
// experiment faults the dependency a call costs one atomic load and one
// count. An unregistered dependency is logged and gets next as it is:
// nothing could ever fault it.
func (e *Experiment) Transport(dependency string, next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	name := lowerTrimmed(dependency)
	counters := e.httpCalls[name]
	if counters == nil {
		e.logger.Error("chaos: Transport of a dependency that chaos.Options.HTTPDependencies does not name: no experiment can fault its calls",
			"dependency", dependency, "registered", strings.Join(e.opts.HTTPDependencies, ","))
		return next
	}
	counters.wrapped.Store(true)
	return &faultyTransport{e: e, dependency: name, counters: counters, next: next}
}

// faultyTransport is one dependency's round tripper.
type faultyTransport struct {
	e          *Experiment
	dependency string
	counters   *httpCounters
	next       http.RoundTripper
}

func (t *faultyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.counters.calls.Add(1)
	ctx := req.Context()
	r := requestOf(ctx)
	p := t.e.active.Load()
	f := p.http[t.dependency]
	if f == nil || !f.targets(req.URL) || !p.run.reaches(ctx) || t.e.opts.SparedHTTP != nil && t.e.opts.SparedHTTP(req) {
		return r.called(t.next.RoundTrip(req))
	}
	fails, delay := f.decide()
	switch {
	case fails && p.dryRun:
		t.counters.errorsWouldInject.Add(1)
		r.errorWouldInject()
	case fails:
		t.counters.errorsInjected.Add(1)
		r.errorInjected()
		return r.called(f.fail.inject(t, p, req))
	case delay > 0 && p.dryRun:
		t.counters.delaysWouldInject.Add(1)
		r.delayWouldInject()
	case delay > 0:
		t.counters.delaysInjected.Add(1)
		r.delayInjected()
		if f.afterHeaders {
			return r.called(t.holdBody(p, req, delay))
		}
		if err := t.delayRequest(p, req, delay); err != nil {
			closeBody(req)
			return r.called(nil, err)
		}
	}
	return r.called(t.next.RoundTrip(req))
}

// CloseIdleConnections closes next's, so that http.Client's reaches the pool.
func (t *faultyTransport) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// called records a call's outcome in its page, for the stop conditions: a
// call that got no answer, or a 5xx, is a failed operation of the page, as
// a failed Redis command is.
func (r *request) called(resp *http.Response, err error) (*http.Response, error) {
	if r != nil && (err != nil || resp.StatusCode >= 500) {
		r.failed.Store(true)
	}
	return resp, err
}

// closeBody closes a request's body that will not be sent, as a round
// tripper must.
func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// httpFaults are what a plan injects into one dependency's calls: each its
// own count of calls for error_every and its own draws, so that one
// dependency's calls do not move another's.
type httpFaults struct {
	latency      *latency
	failure      *failure
	fail         httpFailure
	afterHeaders bool
	hosts, paths []string
}

// httpFailure is what a failed call gets instead of its dependency's answer.
type httpFailure interface {
	inject(t *faultyTransport, p *plan, req *http.Request) (*http.Response, error)
}

// The values of http_fault.
const (
	httpFaultError  = "error"
	httpFaultStatus = "status"
	httpFaultHang   = "hang"
)

// httpFailures make each http_fault's failure from a checked Config; ""
// reads as error.
var httpFailures = map[string]func(Config) httpFailure{
	"":              func(Config) httpFailure { return transportFailure{} },
	httpFaultError:  func(Config) httpFailure { return transportFailure{} },
	httpFaultStatus: func(c Config) httpFailure { return statusFailure{code: c.HTTPStatus} },
	httpFaultHang:   func(Config) httpFailure { return hangFailure{} },
}

// newHTTPFaults returns c's faults of each HTTP dependency it names, or nil
// when it names none or has no fault.
func newHTTPFaults(c Config) map[string]*httpFaults {
	deps := c.httpDependencies()
	if len(deps) == 0 || !c.latency() && !c.failsReads() {
		return nil
	}
	m := map[string]*httpFaults{}
	for _, d := range deps {
		f := &httpFaults{latency: newLatency(c), failure: newFailure(c), fail: httpFailures[c.HTTPFault](c),
			afterHeaders: c.DelayAfterHeaders, hosts: c.HTTPHosts, paths: c.HTTPPaths}
		if f.latency != nil {
			f.latency.draws = rand.New(rand.NewPCG(c.Seed, unitHash(2, d)))
		}
		if f.failure != nil {
			f.failure.draws = rand.New(rand.NewPCG(c.Seed, unitHash(1, d)))
		}
		m[d] = f
	}
	return m
}

// httpKind is one dependency's faults: every dependency's are of the same
// kinds.
func (p *plan) httpKind() *httpFaults {
	for _, f := range p.http {
		return f
	}
	return nil
}

// targets reports whether a call to u is one the faults apply to.
func (f *httpFaults) targets(u *url.URL) bool {
	if len(f.hosts) > 0 && !slices.ContainsFunc(f.hosts, func(h string) bool {
		return strings.EqualFold(h, u.Host) || strings.EqualFold(h, u.Hostname())
	}) {
		return false
	}
	return len(f.paths) == 0 || slices.ContainsFunc(f.paths, func(prefix string) bool { return strings.HasPrefix(u.Path, prefix) })
}

// decide is the one decision of a targeted call: it fails, or else it is
// delayed by the latency's draw (0: not). A failed call draws no delay, as
// a failed Redis read never reaches the latency, so that a dry run's draws
// stay a real run's.
func (f *httpFaults) decide() (fails bool, delay time.Duration) {
	if f.failure != nil && f.failure.fails() {
		return true, 0
	}
	if f.latency != nil {
		return false, f.latency.next()
	}
	return false, 0
}

// httpCounters count one dependency's calls and what the experiments did to
// them, since the experiment was made.
type httpCounters struct {
	calls             atomic.Int64
	delaysInjected    atomic.Int64
	errorsInjected    atomic.Int64
	delaysWouldInject atomic.Int64
	errorsWouldInject atomic.Int64
	inProgress        atomic.Int64 // delays and hangs waiting now
	delayedNanos      atomic.Int64
	wrapped           atomic.Bool // Transport made a round tripper for it
}

// HTTPCounters are what the experiments did to one HTTP dependency's calls.
type HTTPCounters struct {
	// Calls are every call through Transport, faulted or not.
	Calls int64 `json:"calls"`
	// DelaysInjected are the delayed calls, before the request or after
	// the response's headers; ErrorsInjected the failed ones, whatever
	// http_fault they got.
	DelaysInjected    int64 `json:"delays_injected"`
	ErrorsInjected    int64 `json:"errors_injected"`
	DelaysWouldInject int64 `json:"delays_would_inject"`
	ErrorsWouldInject int64 `json:"errors_would_inject"`
	// FaultsInProgress are the delays and hangs waiting now: each ends at
	// its time, with its call's context, or at once when its plan stops.
	FaultsInProgress     int64   `json:"faults_in_progress"`
	DelaySecondsInjected float64 `json:"delay_seconds_injected"`
}

// httpStatus is the counters of every HTTP dependency whose calls the
// service wraps; nil: none.
func (e *Experiment) httpStatus() map[string]HTTPCounters {
	var m map[string]HTTPCounters
	for name, c := range e.httpCalls {
		if !c.wrapped.Load() {
			continue
		}
		if m == nil {
			m = map[string]HTTPCounters{}
		}
		m[name] = HTTPCounters{Calls: c.calls.Load(), DelaysInjected: c.delaysInjected.Load(), ErrorsInjected: c.errorsInjected.Load(),
			DelaysWouldInject: c.delaysWouldInject.Load(), ErrorsWouldInject: c.errorsWouldInject.Load(),
			FaultsInProgress: c.inProgress.Load(), DelaySecondsInjected: time.Duration(c.delayedNanos.Load()).Seconds()}
	}
	return m
}
