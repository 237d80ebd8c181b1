package chaos

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Register adds the experiment's metrics to reg, all of them, named
// Namespace_chaos_…. They read the counters the hooks already keep, at
// scrape time, so exporting them adds nothing to a command's path.
func (e *Experiment) Register(reg prometheus.Registerer) error {
	ns := e.opts.Namespace
	gauge := func(name, help string, labels prometheus.Labels, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: "chaos", Name: name, Help: help, ConstLabels: labels}, f)
	}
	counter := func(name, help string, labels prometheus.Labels, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Subsystem: "chaos", Name: name, Help: help, ConstLabels: labels}, f)
	}
	count := func(v *atomic.Int64) func() float64 { return func() float64 { return float64(v.Load()) } }
	seconds := func(v *atomic.Int64) func() float64 {
		return func() float64 { return time.Duration(v.Load()).Seconds() }
	}
	oneIf := func(on func(*plan) bool) func() float64 {
		return func() float64 {
			if on(e.active.Load()) {
				return 1
			}
			return 0
		}
	}
	cs := []prometheus.Collector{
		gauge("experiment_active", "1 while the chaos build injects the fault kind named by experiment (latency or error), else 0.",
			prometheus.Labels{"experiment": "latency"}, oneIf((*plan).latency)),
		gauge("experiment_active", "1 while the chaos build injects the fault kind named by experiment (latency or error), else 0.",
			prometheus.Labels{"experiment": "error"}, oneIf((*plan).failure)),
		counter("delays_injected_total", "Redis round trips the latency experiment delayed, at either layer.", nil, count(&e.delaysInjected)),
		gauge("delays_in_progress", "Delays of the latency experiment waiting now, at either layer.", nil, count(&e.delaysInProgress)),
		counter("delay_seconds_total", "Time the latency experiment's delays actually waited, at either layer, including delays cut short by a request's deadline or by the end of their experiment.",
			nil, seconds(&e.delayedNanos)),
		counter("errors_injected_total", "Reads the error experiment failed, at either layer: the injected CHAOS error or error reply, or a dropped connection.", nil, count(&e.errorsInjected)),

		gauge("connection_layer", "1 while the experiment injects on go-redis's connections (CHAOS_LAYER=connection), 0 while around its commands.",
			nil, oneIf(func(p *plan) bool { return p.config.Layer == LayerConnection })),
		counter("connection_delays_injected_total", "Replies the connection layer held back, holding their pooled connection.", nil, count(&e.conn.delays)),
		counter("connections_dropped_total", "Reads the connection layer failed by closing their connection.", nil, count(&e.conn.drops)),
		counter("error_replies_injected_total", "Reads the connection layer answered with a Redis error reply (CHAOS_ERROR_REPLY).", nil, count(&e.conn.errorReplies)),
	}
	for _, g := range []group{experimentGroup, controlGroup} {
		c, labels := &e.groupTotals[g], prometheus.Labels{"chaos_group": g.String()}
		cs = append(cs,
			counter("group_searches_total", "Pages served while an experiment injected, by side of the blast radius.", labels, count(&c.searches)),
			counter("group_failed_reads_total", "Pages that could not read while an experiment injected, by side of the blast radius.", labels, count(&c.failedReads)),
			counter("group_degraded_searches_total", "Pages degraded while an experiment injected (a Redis operation failed, or a non-2xx answer, or a panic), by side of the blast radius.",
				labels, count(&c.degradedSearches)),
			counter("group_delays_injected_total", "Delays injected into the pages of each side of the blast radius; the connection layer's are all the experiment group's.", labels, count(&c.delaysInjected)),
			counter("group_errors_injected_total", "Errors injected into the pages of each side of the blast radius; the connection layer's are all the experiment group's.", labels, count(&c.errorsInjected)),
			counter("group_search_seconds_total", "Time the service spent on the pages of each side of the blast radius while an experiment injected.",
				labels, seconds(&c.searchNanos)),
		)
	}
	var errs []error
	for _, c := range cs {
		errs = append(errs, reg.Register(c))
	}
	return errors.Join(errs...)
}
