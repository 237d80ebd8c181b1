//go:build chaos

package main

import (
	"log/slog"
	"net/http"

	"example.com/shopsession/chaos"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// The chaos build's half of the pair: it hands each call on to package
// chaos with what is particular to this service. chaos_off.go declares the
// same names empty.

type experiment struct{ *chaos.Experiment }

// commands are the Redis commands this service sends.
var commands = []string{"incr", "ping", "hello", "client"}

// newExperiment starts the experiment that CHAOS and CHAOS_* ask for.
func newExperiment(getenv func(string) string, logger *slog.Logger) (*experiment, error) {
	cfg, err := chaos.FromEnv(getenv)
	if err != nil {
		return nil, err
	}
	// CHAOS_CONTROL_TOKEN(_FILE); none: New writes one to the file it logs.
	token, err := chaos.TokenFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	e, err := chaos.New(cfg, chaos.Options{
		Logger:    logger,
		Namespace: "visits", // visits_chaos_delays_injected_total, …
		Token:     token,    // PUT, PATCH and DELETE need it
		Commands:  commands, // a latency on any other would do nothing
		// The error experiment fails the counter's one command.
		Reads: func(c chaos.Command) bool { return c.Name == "incr" },
		// The guardrails count and judge the one page.
		Pages: func(r *http.Request) bool { return r.URL.Path == "/visits" },
		// A blast radius picks users.
		Unit:      userOf,
		ValidUnit: func(u string) (bool, string) { return validUser(u), "want 1 to 64 letters, digits or _" },
	})
	if err != nil {
		return nil, err
	}
	return &experiment{e}, nil
}

func (e *experiment) instrument(rdb *redis.Client) { e.Instrument(rdb) }

func (e *experiment) observe(h http.Handler) http.Handler { return e.Middleware(h) }

// mountControl serves the experiment's GET, PUT, PATCH and DELETE, to loopback only.
func (e *experiment) mountControl(mux *http.ServeMux) { mux.Handle("/debug/chaos", e.Handler()) }

func (e *experiment) registerMetrics(reg prometheus.Registerer) error { return e.Register(reg) }
