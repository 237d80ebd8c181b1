//go:build chaos

package main

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The experiments' own metrics, exported only by the chaos build. They read
// the counters the hooks already keep, at scrape time, so exporting them
// adds nothing to a command's path.

// registerMetrics adds the experiment's metrics to reg.
func (e *chaosExperiment) registerMetrics(reg prometheus.Registerer) {
	active := func(kind string, on func(*chaosPlan) bool) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "shopsession_chaos_experiment_active",
			Help:        "1 while the chaos build injects the fault kind named by experiment (latency or error), else 0.",
			ConstLabels: prometheus.Labels{"experiment": kind},
		}, func() float64 {
			if on(e.active.Load()) {
				return 1
			}
			return 0
		})
	}
	count := func(name, help string, read func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, read)
	}
	reg.MustRegister(
		active("latency", func(p *chaosPlan) bool { return p.latency }),
		active("error", func(p *chaosPlan) bool { return p.failReads }),
		count("shopsession_chaos_delays_injected_total",
			"Redis round trips the latency experiment delayed.",
			func() float64 { return float64(e.delaysInjected.Load()) }),
		count("shopsession_chaos_delay_seconds_total",
			"Time the latency experiment's delays actually waited, including delays cut short by a request's deadline.",
			func() float64 { return time.Duration(e.delayedNanos.Load()).Seconds() }),
		count("shopsession_chaos_errors_injected_total",
			"Reads of a session's interests the error experiment failed with the injected CHAOS error.",
			func() float64 { return float64(e.errorsInjected.Load()) }),
	)
}
