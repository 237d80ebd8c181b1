//go:build !chaos

package main

import (
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// The production half of the pair: chaos_on.go's names with nothing in
// them, so the compiler drops every call and links nothing of package chaos.

type experiment struct{}

func newExperiment(getenv func(string) string, logger *slog.Logger) (*experiment, error) {
	return nil, nil
}

func (*experiment) instrument(rdb *redis.Client) {}

func (*experiment) observe(h http.Handler) http.Handler { return h }

func (*experiment) mountControl(mux *http.ServeMux) {}

func (*experiment) registerMetrics(reg prometheus.Registerer) error { return nil }
