//go:build !chaos

package main

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// This is the production twin of chaos_on.go: the same identifiers with
// nothing in them, so the compiler drops every call and the binary links
// nothing of package chaos. omission_test.go proves it.

const chaosBuild = false

type experiment struct{}

func newExperiment(getenv func(string) string, logger *slog.Logger, httpDependencies ...string) (*experiment, error) {
	return nil, nil
}

func (*experiment) withRunID(logger *slog.Logger) *slog.Logger { return logger }

func (*experiment) instrument(rdb redis.UniversalClient) {}

func (*experiment) instrumentHTTP(dependency string, client *http.Client) *http.Client { return client }

func (*experiment) observe(shop http.Handler) http.Handler { return shop }

func (*experiment) mountControl(admin *http.ServeMux) {}

func (*experiment) registerMetrics(reg prometheus.Registerer) {}

func pageDegraded(ctx context.Context) {}

func sessionIssued(ctx context.Context, id string) {}
