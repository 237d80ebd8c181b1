//go:build chaos

package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
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
	ActiveSince chaosSince    `json:"active_since"`
	Counters    chaosCounters `json:"counters"`
}

type chaosSince struct {
	Latency *time.Time `json:"latency,omitempty"`
	Error   *time.Time `json:"error,omitempty"`
}

type chaosCounters struct {
	RedisRoundTrips int64 `json:"redis_round_trips"`
	InterestReads   int64 `json:"interest_reads"`
	DelaysInjected  int64 `json:"delays_injected"`
	// DelaySecondsInjected is the time the injected delays actually took.
	DelaySecondsInjected float64 `json:"delay_seconds_injected"`
	ErrorsInjected       int64   `json:"errors_injected"`
}

func (e *chaosExperiment) serveStatus(w http.ResponseWriter, r *http.Request) {
	plan := e.active.Load()
	status := chaosStatus{
		Build:       "chaos",
		Warning:     "fault-injection build: not for production",
		chaosConfig: plan.config,
		Counters: chaosCounters{
			RedisRoundTrips:      e.roundTrips.Load(),
			InterestReads:        e.interestReads.Load(),
			DelaysInjected:       e.delaysInjected.Load(),
			DelaySecondsInjected: time.Duration(e.delayNanos.Load()).Seconds(),
			ErrorsInjected:       e.errorsInjected.Load(),
		},
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
	if err != nil {
		http.Error(w, "body: "+err.Error(), http.StatusRequestEntityTooLarge)
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

// loopbackOnly refuses clients that are not on this machine: the debug
// endpoint changes what the service does.
func loopbackOnly(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			http.Error(w, "/debug/chaos answers loopback clients only", http.StatusForbidden)
			return
		}
		next(w, r)
	}
}
