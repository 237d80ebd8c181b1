//go:build chaos

package main

import (
	"context"
	"log/slog"
	"net/http"
	"strings"

	"example.com/shopsession/chaos"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// The chaos build's half of the twin: it hands every call on to package
// chaos with what is particular to the shop. chaos_off.go declares the same
// names empty, so that the production build links nothing of the package
// (omission_test.go proves it).

const chaosBuild = true

type experiment struct {
	*chaos.Experiment
	fleet bool // join the fleet's control plane (CHAOS_FLEET)
}

// shopCommands are the Redis commands the shop sends: its read, the
// compare-and-set script (EVALSHA, EVAL after a NOSCRIPT, SCRIPT LOAD at
// start), PING (for whoever names it), the handshake of each connection
// (HELLO, AUTH, SELECT, CLIENT SETNAME) and, on a cluster, go-redis's own
// (CLUSTER SLOTS, COMMAND, READONLY, ASKING).
var shopCommands = []string{"get", "evalsha", "eval", "script", "ping", "hello", "auth", "select", "client",
	"cluster", "command", "readonly", "asking"}

// newExperiment reads the experiment the environment asks for, and the
// control token (none: chaos.New writes one to the file it logs).
// httpDependencies are the HTTP dependencies this process calls (the
// recommender, with RECOMMENDER_URL): an experiment may name no other, so
// that one naming a dependency the process never calls is refused, not
// shown as running while it injects nothing.
func newExperiment(getenv func(string) string, logger *slog.Logger, httpDependencies ...string) (*experiment, error) {
	cfg, err := chaos.FromEnv(getenv)
	if err != nil {
		return nil, usageError(err.Error())
	}
	token, err := chaos.TokenFromEnv(getenv)
	if err != nil {
		return nil, usageError(err.Error())
	}
	fleet, err := fleetWanted(getenv)
	if err != nil {
		return nil, err
	}
	e, err := chaos.New(cfg, chaos.Options{
		Logger:    logger,
		Namespace: metricsNamespace,
		Token:     token,
		Commands:  shopCommands,
		// The shop's HTTP dependency, which dependencies may name besides
		// redis when the shop calls it.
		HTTPDependencies: httpDependencies,
		// /readyz's call, as its Redis canaries: the breaker's canary is
		// faulted as pages are, so an experiment keeps it open as an outage does.
		SparedHTTP: func(r *http.Request) bool { return recommenderProbe(r) == "readiness" },
		// The error experiment fails the read of a session's interests.
		Reads: func(c chaos.Command) bool { return c.Name == "get" && strings.HasPrefix(c.Key, sessionKeyPrefix) },
		// /readyz's canaries: a probe that waits for them must not fail.
		Spared: func(c chaos.Command) bool { return c.Key == readyKey || strings.HasPrefix(c.Key, readyKeyPrefix) },
		// The guardrails judge the search page, the one that reads.
		Pages: func(r *http.Request) bool { return r.URL.Path == "/search" },
		// "": a new visitor, whose session the handler names when it issues one.
		Unit: requestSessionID,
		ValidUnit: func(id string) (bool, string) {
			return validSessionID(id), "want a session id of 1 to 64 characters from A-Z a-z 0-9 . _ -"
		},
	})
	if err != nil {
		return nil, usageError(err.Error())
	}
	return &experiment{e, fleet}, nil
}

// withRunID is the shop's logger with the run id of the experiment running,
// if it has one, on every line: the access and the Redis errors' lines say
// which run they were written during.
func (e *experiment) withRunID(logger *slog.Logger) *slog.Logger {
	return slog.New(e.LogHandler(logger.Handler()))
}

func (e *experiment) instrument(rdb redis.UniversalClient) { e.Instrument(rdb) }

// instrumentHTTP hands the client of an HTTP dependency ("recommender") to
// the experiment, which may wrap its Transport; the client comes back to be
// used in its place: its Transport wrapped (chaos.Experiment.Transport), so
// that the experiments that name the dependency fault its calls. Not
// inlined, small as it is: the omission proof's positive control must find
// it in the chaos binary.
//
//go:noinline
func (e *experiment) instrumentHTTP(dependency string, client *http.Client) *http.Client {
	client.Transport = e.Transport(dependency, client.Transport)
	return client
}

func (e *experiment) observe(shop http.Handler) http.Handler { return e.Middleware(shop) }

func (e *experiment) mountControl(admin *http.ServeMux) { admin.Handle("/debug/chaos", e.Handler()) }

func (e *experiment) registerMetrics(reg prometheus.Registerer) {
	if err := e.Register(reg); err != nil {
		panic(err) // a fresh registry of the shop's own: a clash is a bug
	}
}

// pageDegraded tells the experiment that a page lacks what Redis should have
// given it, whether or not a Redis command failed.
func pageDegraded(ctx context.Context) { chaos.Degraded(ctx) }

// sessionIssued tells the experiment the session of a request that had none.
func sessionIssued(ctx context.Context, id string) { chaos.SetUnit(ctx, id) }
