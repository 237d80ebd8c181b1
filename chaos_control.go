//go:build chaos

package main

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// The HTTP control of the running experiment: GET, PUT and DELETE
// /debug/chaos, and the guards in front of them.

// chaosStatus is the body of GET /debug/chaos: the running experiment, with
// the fields a PUT takes, and what has happened since the process started.
type chaosStatus struct {
	Build   string `json:"build"`
	Warning string `json:"warning"`
	chaosConfig
	chaosGuardStatus
	ActiveSince chaosSince    `json:"active_since"`
	Counters    chaosCounters `json:"counters"`
	// go-redis's pool since the process started: what the connection layer
	// does to it, and the command layer does not (chaos_conn.go).
	RedisPool chaosPoolStatus `json:"redis_pool"`
}

type chaosSince struct {
	Latency *time.Time `json:"latency,omitempty"`
	Error   *time.Time `json:"error,omitempty"`
}

type chaosCounters struct {
	RedisRoundTrips int64 `json:"redis_round_trips"`
	InterestReads   int64 `json:"interest_reads"`
	DelaysInjected  int64 `json:"delays_injected"`
	ErrorsInjected  int64 `json:"errors_injected"`
	// DelaySecondsInjected is the time the injected delays actually took.
	DelaySecondsInjected float64 `json:"delay_seconds_injected"`
	// What the connection layer did; the fields above count the command layer.
	Connection chaosConnStatus `json:"connection_layer"`
}

func (e *chaosExperiment) serveStatus(w http.ResponseWriter, r *http.Request) {
	sessionID := r.URL.Query().Get("session")
	if r.URL.Query().Has("session") && !validSessionID(sessionID) {
		http.Error(w, "invalid session: want a session id of 1 to 64 characters from A-Z a-z 0-9 . _ -", http.StatusBadRequest)
		return
	}
	plan := e.active.Load()
	status := chaosStatus{
		Build:            "chaos",
		Warning:          "fault-injection build: not for production",
		chaosConfig:      plan.config,
		chaosGuardStatus: guardStatus(plan, sessionID),
		Counters: chaosCounters{
			RedisRoundTrips:      e.roundTrips.Load(),
			InterestReads:        e.interestReads.Load(),
			DelaysInjected:       e.delaysInjected.Load(),
			DelaySecondsInjected: time.Duration(e.delayedNanos.Load()).Seconds(),
			ErrorsInjected:       e.errorsInjected.Load(),
			Connection:           e.conn.status(),
		},
		RedisPool: poolStatus(e.rdb),
	}
	if plan.latency {
		status.ActiveSince.Latency = &plan.latencySince
	}
	if plan.failReads {
		status.ActiveSince.Error = &plan.errorSince
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(status)
}

// replace serves PUT /debug/chaos: a valid body becomes the running
// experiment; an invalid one is refused and changes nothing.
func (e *chaosExperiment) replace(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		http.Error(w, "body is larger than 64 KiB", http.StatusRequestEntityTooLarge)
		return
	}
	if err != nil {
		http.Error(w, "malformed body: "+err.Error(), http.StatusBadRequest)
		return
	}
	cfg, err := chaosConfigFromJSON(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	e.use(cfg)
	e.serveStatus(w, r)
}

// stop serves DELETE /debug/chaos: no injection until the next PUT.
func (e *chaosExperiment) stop(w http.ResponseWriter, r *http.Request) {
	off := chaosDefaults
	off.check(func(field string) string { return field }) // the defaults are valid; this fills the seed
	e.use(off)
	e.serveStatus(w, r)
}

// controlHandler serves GET, PUT and DELETE /debug/chaos behind
// chaosControlGuard, for whichever listener mounts it.
func (e *chaosExperiment) controlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/chaos", e.serveStatus)
	mux.HandleFunc("PUT /debug/chaos", e.replace)
	mux.HandleFunc("DELETE /debug/chaos", e.stop)
	return chaosControlGuard(mux)
}

// chaosControlGuard lets through only requests that a person on this machine
// sent straight to the service: the debug endpoint changes what the service
// does. A loopback peer alone does not prove that: a proxy on this machine
// forwards other people's requests (and says so in forwarding headers), and a
// page in a local browser can rebind its own host name to 127.0.0.1 (and then
// sends that name as Host). Every answer, refusals included, carries the
// shop's security headers and is never cached.
func chaosControlGuard(next http.Handler) http.Handler {
	return securityHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Cache-Control"] = noStore
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if ip, parseErr := netip.ParseAddr(host); err != nil || parseErr != nil || !ip.Unmap().IsLoopback() {
			http.Error(w, "/debug/chaos answers loopback clients only", http.StatusForbidden)
			return
		}
		if !loopbackHost(r.Host) {
			http.Error(w, "/debug/chaos answers requests for localhost or a loopback address only", http.StatusForbidden)
			return
		}
		for name := range r.Header {
			if forwardingHeader(name) {
				http.Error(w, "/debug/chaos refuses forwarded requests ("+name+")", http.StatusForbidden)
				return
			}
		}
		next.ServeHTTP(w, r)
	}))
}

// loopbackHost reports whether a Host header names this machine: localhost
// or a loopback address, with or without a port.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	return err == nil && ip.Unmap().IsLoopback()
}

// forwardingHeader reports whether a (canonical) header name is one that
// proxies add to say whom they forward for.
func forwardingHeader(name string) bool {
	switch name {
	case "Forwarded", "Via", "X-Real-Ip", "X-Client-Ip", "True-Client-Ip", "Cf-Connecting-Ip", "Fastly-Client-Ip", "X-Cluster-Client-Ip":
		return true
	}
	return strings.HasPrefix(name, "X-Forwarded-")
}
