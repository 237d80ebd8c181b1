//go:build chaos

package main

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The experiments' own metrics, exported only by the chaos build. They read
// the counters the hooks already keep, at scrape time, so exporting them
// adds nothing to a command's path. Names are written whole, with no
// Namespace, so that omission_test.go can look for them in the binaries.

// registerMetrics adds the experiment's metrics to reg.
func (e *chaosExperiment) registerMetrics(reg prometheus.Registerer) {
	for _, kind := range []struct {
		experiment string
		on         func(*chaosPlan) bool
	}{
		{"latency", func(p *chaosPlan) bool { return p.latency }},
		{"error", func(p *chaosPlan) bool { return p.failReads }},
	} {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "shopsession_chaos_experiment_active",
			Help:        "1 while the chaos build injects the fault kind named by experiment (latency or error), else 0.",
			ConstLabels: prometheus.Labels{"experiment": kind.experiment},
		}, func() float64 {
			if kind.on(e.active.Load()) {
				return 1
			}
			return 0
		}))
	}
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "shopsession_chaos_delays_injected_total",
			Help: "Redis round trips the latency experiment delayed.",
		}, func() float64 { return float64(e.delaysInjected.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "shopsession_chaos_delay_seconds_total",
			Help: "Time the latency experiment's delays actually waited, including delays cut short by a request's deadline.",
		}, func() float64 { return time.Duration(e.delayedNanos.Load()).Seconds() }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "shopsession_chaos_errors_injected_total",
			Help: "Reads of a session's interests the error experiment failed with the injected CHAOS error.",
		}, func() float64 { return float64(e.errorsInjected.Load()) }),
	)
	e.registerConnMetrics(reg)
}
