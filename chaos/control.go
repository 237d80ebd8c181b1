package chaos

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"example.com/shopsession/internal/localonly"
)

// Handler serves the experiment's control on whichever path it is mounted
// (the shop mounts it at /debug/chaos on its admin listener): GET shows the
// Status; PUT with a JSON Config replaces the running experiment whole (the
// fields it leaves out take their defaults); PATCH changes only the fields
// its body names, of an experiment that is running; DELETE stops it. It
// answers only requests that a person on this machine sent straight to it,
// and PUT, PATCH and DELETE only with the control token (Options.Token) as
// Authorization: Bearer, checked before the body is read. None is ever
// cached.
func (e *Experiment) Handler() http.Handler {
	return localonly.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			e.serveStatus(w, r)
			return
		case http.MethodPut, http.MethodPatch, http.MethodDelete:
		default:
			w.Header().Set("Allow", "DELETE, GET, HEAD, PATCH, PUT")
			http.Error(w, "method not allowed: want GET, PUT, PATCH or DELETE", http.StatusMethodNotAllowed)
			return
		}
		if ok, refusal := e.authorized(r); !ok {
			w.Header().Set("WWW-Authenticate", "Bearer")
			http.Error(w, refusal, http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodDelete {
			e.Stop()
			e.serveStatus(w, r)
			return
		}
		body, ok := readBody(w, r)
		if !ok {
			return
		}
		var err error
		code := http.StatusBadRequest
		if r.Method == http.MethodPut {
			var cfg Config
			if cfg, err = FromJSON(body); err == nil {
				err = e.Use(cfg)
			}
			var refused *refusal
			if errors.As(err, &refused) {
				code = http.StatusConflict
			}
		} else {
			code, err = e.patch(body)
		}
		if err != nil {
			http.Error(w, err.Error(), code)
			return
		}
		e.serveStatus(w, r)
	}))
}

func (e *Experiment) serveStatus(w http.ResponseWriter, r *http.Request) {
	unit := r.URL.Query().Get("session")
	if r.URL.Query().Has("session") {
		if ok, want := e.opts.validUnit(unit); !ok {
			http.Error(w, "invalid session: "+want, http.StatusBadRequest)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(e.Status(unit))
}

// readBody reads a PUT or PATCH body of up to 64 KiB; when it cannot, it
// has answered.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		http.Error(w, "body is larger than 64 KiB", http.StatusRequestEntityTooLarge)
		return nil, false
	}
	if err != nil {
		http.Error(w, "malformed body: "+err.Error(), http.StatusBadRequest)
		return nil, false
	}
	return body, true
}

// patch serves PATCH: the body's fields onto the running experiment, which
// keeps the rest, its end time included unless the body names the
// duration; the result is checked whole. A PATCH of the faults alone
// continues the run (its pages, its stop conditions' window, its end); one
// that names what the run is made of (the blast radius, the seed, a stop
// condition, a dry run, the run id) starts a new run, as a PUT does, with
// the same end. Nothing
// running is a conflict: an experiment that ended or was stopped is not
// resumed, as on AWS FIS; a PUT starts a new one.
func (e *Experiment) patch(body []byte) (int, error) {
	e.swap.Lock()
	defer e.swap.Unlock()
	p := e.active.Load()
	if err := e.fleetOwns(); err != nil {
		return http.StatusConflict, err
	}
	if !p.injects() {
		return http.StatusConflict, errors.New("no experiment is running (" + e.Status("").State + "): PATCH changes a running one; start one with PUT")
	}
	if !p.run.end().After(e.now()) {
		// Its end has come and end() waits for e.swap: it is over.
		return http.StatusConflict, errors.New("the experiment's duration has run out: PATCH changes a running one; start one with PUT")
	}
	// A copy: decoding writes into slices and through pointers, which the
	// running plan's hooks read.
	cfg := p.config.clone()
	fields, err := decodeOnto(&cfg, body)
	if err != nil {
		return http.StatusBadRequest, err
	}
	if err := e.check(&cfg); err != nil {
		return http.StatusBadRequest, err
	}
	if cfg.Experiment == "none" {
		return http.StatusBadRequest, errors.New(`PATCH does not stop an experiment: DELETE does (experiment "none")`)
	}
	for _, field := range runFields {
		if names(fields, field) {
			var end time.Time
			if !names(fields, "duration_seconds") {
				end = p.run.end()
			}
			e.install(cfg, end, 0)
			return http.StatusOK, nil
		}
	}
	var end time.Time
	if names(fields, "duration_seconds") {
		end = e.now().Add(time.Duration(cfg.DurationSeconds * float64(time.Second)))
	}
	e.continueRun(cfg, end, 0)
	return http.StatusOK, nil
}

// runFields are the fields a run is made of: a PATCH that names one starts
// a new run. The others change what is injected, not whom, nor how it is
// judged. A dry run's figures are of faults it would have injected, a real
// run's of faults it did: one run never holds both.
var runFields = []string{"sessions_percent", "seed", "stop_window_searches", "stop_min_searches",
	"stop_failed_reads_share", "stop_degraded_share", "stop_search_p99_seconds", "dry_run", "run_id"}
