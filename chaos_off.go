//go:build !chaos

package main

import (
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// This is the production twin of chaos_on.go: the same identifiers with
// nothing in them, so the compiler drops every call and the binary carries no
// experiment code. omission_test.go proves it.

const chaosBuild = false

type chaosExperiment struct{}

func newChaosExperiment(getenv func(string) string) (*chaosExperiment, error) { return nil, nil }

func (*chaosExperiment) attach(logger *slog.Logger, rdb redis.UniversalClient) {}

func (*chaosExperiment) mountControl(admin *http.ServeMux) {}

func (*chaosExperiment) registerMetrics(reg prometheus.Registerer) {}
