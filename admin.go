package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync"
	"time"

	"example.com/shopsession/internal/localonly"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The admin listener serves what operators read and change, on its own
// address (ADMIN_ADDR, loopback by default), never on the shop's: behind a
// reverse proxy every visitor would reach the shop's listener, and a proxy
// that forwards from the same host makes every visitor look local.

// adminWriteTimeout leaves room for pprof's default 30-second CPU profile;
// pprof refuses a profile longer than the server's write timeout.
const adminWriteTimeout = 2 * time.Minute

// newAdminHandler returns the admin listener's routes, all of them:
// /metrics, /debug/pprof/ and, in the chaos build, /debug/chaos.
func newAdminHandler(m *metrics, experiment *experiment, logger *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", adminIndex)
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	}))
	// pprof's handlers, mounted here rather than through its import side
	// effect on http.DefaultServeMux, which nothing serves. Not cmdline: a
	// -redis-url on the command line may carry a password.
	gate := newPprofGate()
	mux.Handle("GET /debug/pprof/", gate.named(http.HandlerFunc(pprof.Index)))
	mux.HandleFunc("GET /debug/pprof/cmdline", http.NotFound)
	mux.Handle("GET /debug/pprof/profile", gate.capture(http.HandlerFunc(pprof.Profile), 30))
	mux.Handle("GET /debug/pprof/symbol", gate.snapshot(http.HandlerFunc(pprof.Symbol)))
	// Symbol builds its whole answer in memory from a body of any size:
	// two 180 MB lookups took the process to 1.07 GB.
	mux.Handle("POST /debug/pprof/symbol", limitBody(symbolBodyLimit, gate.snapshot(wholeBody(http.HandlerFunc(pprof.Symbol)))))
	mux.Handle("GET /debug/pprof/trace", gate.capture(http.HandlerFunc(pprof.Trace), 1))
	experiment.mountControl(mux)
	return securityHeaders(adminGuard(limitBody(adminBodyLimit, mux)))
}

// adminGuard gives every path the guard of /debug/chaos
// (internal/localonly): pprof costs the shop's CPU and shows its insides,
// and without it any page in an operator's browser could fetch a profile
// (<img src=http://127.0.0.1:6060/debug/pprof/heap?gc=1>). One exception:
// /metrics reached through an address other than loopback. The operator
// bound the listener there for a scraper on another host, which names that
// address or its own name for this host as Host; a scrape is a cheap GET.
func adminGuard(next http.Handler) http.Handler {
	guarded := localonly.Handler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" && !arrivedOnLoopback(r) {
			next.ServeHTTP(w, r)
			return
		}
		guarded.ServeHTTP(w, r)
	})
}

// arrivedOnLoopback reports whether the connection of r came in on a
// loopback address of this machine; a request without one, built by a
// test, counts as loopback, the stricter case.
func arrivedOnLoopback(r *http.Request) bool {
	addr, ok := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr)
	return !ok || addr.IP.IsLoopback()
}

const (
	// adminBodyLimit is the largest body any admin handler reads: an
	// experiment for PUT /debug/chaos (whose own limit it is).
	adminBodyLimit = 64 << 10
	// symbolBodyLimit holds a lookup of some 400 addresses. Go's profiles
	// carry their symbols, so go tool pprof does not ask for them.
	symbolBodyLimit = 4 << 10
)

// limitBody refuses a body that says it is over limit, and cuts one that
// does not say at limit.
func limitBody(limit int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > limit {
			bodyTooLarge(w, limit)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		next.ServeHTTP(w, r)
	})
}

// wholeBody reads a body limitBody bounded before its handler does, so
// that a chunked one over the limit is refused rather than answered in
// part (Symbol answers 200 whatever its reading of the body says).
func wholeBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			bodyTooLarge(w, tooLarge.Limit)
			return
		}
		if err != nil {
			http.Error(w, "malformed body: "+err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

func bodyTooLarge(w http.ResponseWriter, limit int64) {
	http.Error(w, fmt.Sprintf("body is larger than %d KiB", limit>>10), http.StatusRequestEntityTooLarge)
}

// The shop's CPU is pprof's too: four clients looping on
// /debug/pprof/allocs?debug=1 cut the shop from 4 970 to 174 req/s. So
// pprof serves at most two requests at a time, one in each lane:
//   - a snapshot (a named profile, the index, symbol) works flat out while
//     it runs, so snapshots also share a budget: each one's time is repaid
//     at 1/pprofShare of the wall clock, which holds them to 1/pprofShare of
//     one CPU over time, with pprofBurst to start with, so an operator's
//     few profiles in a row all pass;
//   - a capture (profile, trace, or a named profile with seconds=) mostly
//     waits while the runtime records, so it has no budget, but the runtime
//     records one CPU profile and one trace at a time anyway.
//
// A request beyond that is refused with 429 and Retry-After, after a pause
// of up to pprofRefusalPause: four clients that asked again at once, each
// refusal answered at once, made 5 500 refusals a second and cost the shop
// 40 % of its throughput; paused, they ask a few times a second. Each
// paused refusal holds one of the admin listener's connections meanwhile.
const (
	pprofShare        = 50
	pprofBurst        = 100 * time.Millisecond
	pprofRefusalPause = time.Second
	// pprofLongestRest bounds what one slow snapshot (a client that reads
	// its answer slowly, the time counted against the budget) can make the
	// next wait.
	pprofLongestRest = 10 * time.Second
)

type pprofGate struct {
	mu           sync.Mutex
	snapshotting bool
	credit       time.Duration // snapshot time the budget allows now; below zero, what is owed
	updated      time.Time     // when credit was last brought up to date
	captureEnds  time.Time     // when the running capture should end; zero when none runs
}

func newPprofGate() *pprofGate {
	return &pprofGate{credit: pprofBurst, updated: time.Now()}
}

// named routes pprof.Index's requests: a named profile with seconds= is a
// delta over that long, a capture; everything else a snapshot.
func (g *pprofGate) named(next http.Handler) http.Handler {
	snapshot, capture := g.snapshot(next), g.capture(next, 1)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("seconds") {
			capture.ServeHTTP(w, r)
			return
		}
		snapshot.ServeHTTP(w, r)
	})
}

func (g *pprofGate) snapshot(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		now := time.Now()
		g.credit = min(pprofBurst, g.credit+now.Sub(g.updated)/pprofShare)
		g.updated = now
		busy, owed := g.snapshotting, -g.credit
		if !busy && owed < 0 {
			g.snapshotting = true
		}
		g.mu.Unlock()
		if busy {
			pprofBusy(w, r, time.Second, "another profile is being served, and pprof serves one at a time")
			return
		}
		if owed >= 0 {
			pprofBusy(w, r, owed*pprofShare, fmt.Sprintf("profiles have had their share of the CPU (1/%d of one)", pprofShare))
			return
		}
		defer func() {
			g.mu.Lock()
			g.credit = max(g.credit-time.Since(now), -pprofLongestRest/pprofShare)
			g.snapshotting = false
			g.mu.Unlock()
		}()
		next.ServeHTTP(w, r)
	})
}

// capture serves next, which records for the request's seconds (or
// defaultSeconds), one at a time.
func (g *pprofGate) capture(next http.Handler, defaultSeconds float64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seconds, err := strconv.ParseFloat(r.URL.Query().Get("seconds"), 64)
		if err != nil || !(seconds > 0) || seconds > adminWriteTimeout.Seconds() {
			seconds = defaultSeconds
		}
		g.mu.Lock()
		now := time.Now()
		ends := g.captureEnds
		if ends.IsZero() {
			g.captureEnds = now.Add(time.Duration(seconds * float64(time.Second)))
		}
		g.mu.Unlock()
		if !ends.IsZero() {
			pprofBusy(w, r, ends.Sub(now), "a CPU profile, trace or delta profile is being recorded, and pprof records one at a time")
			return
		}
		defer func() {
			g.mu.Lock()
			g.captureEnds = time.Time{}
			g.mu.Unlock()
		}()
		next.ServeHTTP(w, r)
	})
}

// pprofBusy refuses r, whose lane is free again in wait, after the pause.
func pprofBusy(w http.ResponseWriter, r *http.Request, wait time.Duration, why string) {
	pause := time.NewTimer(min(wait, pprofRefusalPause))
	select {
	case <-pause.C:
	case <-r.Context().Done():
		pause.Stop()
		return
	}
	seconds := max(1, int(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(seconds))
	http.Error(w, fmt.Sprintf("%s: retry in %d s", why, seconds), http.StatusTooManyRequests)
}

func adminIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	body := "shopsession admin listener\n/metrics        Prometheus metrics\n/debug/pprof/   Go profiles (loopback clients only; one at a time)\n"
	if chaosBuild {
		body += "/debug/chaos    the running experiment: GET, PUT, PATCH, DELETE (loopback clients only; PUT, PATCH and DELETE need the control token as Authorization: Bearer)\n"
	}
	w.Write([]byte(body))
}
