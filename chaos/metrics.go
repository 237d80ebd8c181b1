package chaos

import (
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Register adds the experiment's metrics to reg, all of them, named
// Namespace_chaos_…, each with a run_id label: the run id of the experiment
// running, "" when none runs or it has none, so that what a run did can be
// told apart on a dashboard. They read the counters the hooks already keep,
// at scrape time, so exporting them adds nothing to a command's path.
func (e *Experiment) Register(reg prometheus.Registerer) error {
	return reg.Register(&collector{e: e, series: e.series()})
}

// collector is the package's metrics as one prometheus.Collector, which
// makes each series at scrape time with the run id then current: a label's
// value that changes with each run cannot be a constant label.
type collector struct {
	e      *Experiment
	series []series
}

// series is one series of the metrics: its family's desc, its labels'
// names in the desc's order, their values but run_id's, and how to read
// its value.
type series struct {
	desc   *prometheus.Desc
	kind   prometheus.ValueType
	labels []string
	fixed  prometheus.Labels
	value  func() float64
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for i, s := range c.series {
		// A family's series share its desc: send each once.
		if i == 0 || c.series[i-1].desc != s.desc {
			ch <- s.desc
		}
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	id := c.e.active.Load().runID
	for _, s := range c.series {
		values := make([]string, len(s.labels))
		for i, l := range s.labels {
			values[i] = s.fixed[l]
			if l == "run_id" {
				values[i] = id
			}
		}
		ch <- prometheus.MustNewConstMetric(s.desc, s.kind, s.value(), values...)
	}
}

// point is a series as the table below gives it: its labels but run_id,
// and its value.
type point struct {
	labels prometheus.Labels
	value  func() float64
}

// series are every series of the package's metrics, a family's next to
// each other.
func (e *Experiment) series() []series {
	ns := e.opts.Namespace
	var out []series
	// family adds the series of one family, which all have the same labels.
	family := func(kind prometheus.ValueType, o prometheus.Opts, points []point) {
		withRun := prometheus.Labels{"run_id": ""}
		maps.Copy(withRun, points[0].labels)
		labels := slices.Sorted(maps.Keys(withRun))
		desc := prometheus.NewDesc(prometheus.BuildFQName(o.Namespace, o.Subsystem, o.Name), o.Help, labels, nil)
		for _, p := range points {
			out = append(out, series{desc: desc, kind: kind, labels: labels, fixed: p.labels, value: p.value})
		}
	}
	gauge := func(name, help string, points ...point) {
		family(prometheus.GaugeValue, prometheus.Opts{Namespace: ns, Subsystem: "chaos", Name: name, Help: help}, points)
	}
	counter := func(name, help string, points ...point) {
		family(prometheus.CounterValue, prometheus.Opts{Namespace: ns, Subsystem: "chaos", Name: name, Help: help}, points)
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
	// byKind is one series for each fault kind, 1 while on(plan, the kind's
	// test) holds.
	byKind := func(on func(p *plan, kind func(*plan) bool) bool) []point {
		return []point{
			{prometheus.Labels{"experiment": "latency"}, oneIf(func(p *plan) bool { return on(p, (*plan).latency) })},
			{prometheus.Labels{"experiment": "error"}, oneIf(func(p *plan) bool { return on(p, (*plan).failure) })},
		}
	}
	// byGroup is one series for each side of the blast radius, reading what
	// field is of its counters since the experiment was made.
	byGroup := func(field func(*groupCounters) *atomic.Int64, read func(*atomic.Int64) func() float64) []point {
		var points []point
		for _, g := range []group{experimentGroup, controlGroup} {
			points = append(points, point{prometheus.Labels{"chaos_group": g.String()}, read(field(&e.groupTotals[g]))})
		}
		return points
	}

	gauge("experiment_active", "1 while the chaos build injects the fault kind named by experiment (latency or error), else 0.",
		byKind(func(p *plan, kind func(*plan) bool) bool { return !p.dryRun && kind(p) })...)
	gauge("dry_run", "1 while a dry run of the fault kind named by experiment (latency or error) runs: decided as a real run would, injected nowhere; else 0.",
		byKind(func(p *plan, kind func(*plan) bool) bool { return p.dryRun && kind(p) })...)
	counter("delays_injected_total", "Redis round trips the latency experiment delayed, at either layer.", point{value: count(&e.delaysInjected)})
	gauge("delays_in_progress", "Delays of the latency experiment waiting now, at either layer.", point{value: count(&e.delaysInProgress)})
	counter("delay_seconds_total", "Time the latency experiment's delays actually waited, at either layer, including delays cut short by a request's deadline or by the end of their experiment.",
		point{value: seconds(&e.delayedNanos)})
	counter("errors_injected_total", "Reads the error experiment failed, at either layer: the injected CHAOS error or error reply, or a dropped connection.", point{value: count(&e.errorsInjected)})
	counter("delays_would_inject_total", "Redis round trips a dry run of the latency experiment would have delayed, at either layer, and did not.", point{value: count(&e.delaysWouldInject)})
	counter("errors_would_inject_total", "Reads a dry run of the error experiment would have failed, at either layer, and did not.", point{value: count(&e.errorsWouldInject)})

	gauge("connection_layer", "1 while the experiment injects on go-redis's connections (CHAOS_LAYER=connection), 0 while around its commands.",
		point{value: oneIf(func(p *plan) bool { return p.config.Layer == LayerConnection })})
	counter("connection_delays_injected_total", "Replies the connection layer held back, holding their pooled connection.", point{value: count(&e.conn.delays)})
	counter("connections_dropped_total", "Reads the connection layer failed by closing their connection.", point{value: count(&e.conn.drops)})
	counter("error_replies_injected_total", "Commands the connection layer answered with a Redis error reply (CHAOS_ERROR_REPLY).", point{value: count(&e.conn.errorReplies)})

	counter("group_searches_total", "Pages served while an experiment injected, by side of the blast radius.",
		byGroup(func(c *groupCounters) *atomic.Int64 { return &c.searches }, count)...)
	counter("group_failed_reads_total", "Pages that could not read while an experiment injected, by side of the blast radius.",
		byGroup(func(c *groupCounters) *atomic.Int64 { return &c.failedReads }, count)...)
	counter("group_degraded_searches_total", "Pages degraded while an experiment injected (a Redis operation failed, or a non-2xx answer, or a panic), by side of the blast radius.",
		byGroup(func(c *groupCounters) *atomic.Int64 { return &c.degradedSearches }, count)...)
	counter("group_delays_injected_total", "Delays injected into the pages of each side of the blast radius; the connection layer's are all the experiment group's.",
		byGroup(func(c *groupCounters) *atomic.Int64 { return &c.delaysInjected }, count)...)
	counter("group_errors_injected_total", "Errors injected into the pages of each side of the blast radius; the connection layer's are all the experiment group's.",
		byGroup(func(c *groupCounters) *atomic.Int64 { return &c.errorsInjected }, count)...)
	counter("group_delays_would_inject_total", "Delays a dry run would have injected into the pages of each side of the blast radius, and did not.",
		byGroup(func(c *groupCounters) *atomic.Int64 { return &c.delaysWouldInject }, count)...)
	counter("group_errors_would_inject_total", "Errors a dry run would have injected into the pages of each side of the blast radius, and did not.",
		byGroup(func(c *groupCounters) *atomic.Int64 { return &c.errorsWouldInject }, count)...)
	counter("group_search_seconds_total", "Time the service spent on the pages of each side of the blast radius while an experiment injected.",
		byGroup(func(c *groupCounters) *atomic.Int64 { return &c.searchNanos }, seconds)...)
	return out
}
