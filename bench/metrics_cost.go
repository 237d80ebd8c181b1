package main

import (
	"context"
	"fmt"
	"math"
	"strings"
)

const (
	// metricsCostTolerance bounds what the metrics may cost the shop's
	// throughput.
	metricsCostTolerance   = 0.02
	metricsCostConcurrency = 16
)

// metricsCostScenarios measures what recording the metrics costs: the
// production build at -c 16 with its admin listener (and so its metrics)
// against the same build with ADMIN_ADDR=off, which records nothing. Runs
// alternate off, on, off, …, off; each "on" run is compared with the mean of
// the "off" runs either side of it, which cancels the machine's slow drift.
func (b *bench) metricsCostScenarios(ctx context.Context) (scenario, scenario, error) {
	c := metricsCostConcurrency
	off := scenario{Name: fmt.Sprintf("metrics off -c %d", c), Build: "production", Setup: []string{"ADMIN_ADDR=off"}}
	on := scenario{Name: fmt.Sprintf("metrics on -c %d", c), Build: "production", Hypothesis: fmt.Sprintf(
		"metrics cost under %.0f %% of throughput: deviated only if every run's req/s is that much below the mean of the metrics-off runs either side of it; held if the 95 %% interval of the ratio lies above %.2f, else inconclusive", metricsCostTolerance*100, 1-metricsCostTolerance)}
	for i := range b.pairs + 1 {
		m, err := b.measureThen(ctx, runSpec{label: fmt.Sprintf("metrics off %d/%d", i+1, b.pairs+1),
			binary: b.prodBinary, env: off.Setup, concurrency: c})
		if err != nil {
			return off, on, err
		}
		off.Runs = append(off.Runs, m)
		if i == b.pairs {
			break
		}
		if m, err = b.measureThen(ctx, runSpec{label: fmt.Sprintf("metrics on %d/%d", i+1, b.pairs),
			binary: b.prodBinary, concurrency: c}); err != nil {
			return off, on, err
		}
		on.Runs = append(on.Runs, m)
	}
	off.Summary, on.Summary = summarize(off.Runs), summarize(on.Runs)

	cpuPerRequest := func(m measurement) float64 { return m.CPUSeconds / float64(m.AB.Complete) }
	throughput := make([]float64, len(on.Runs))
	cpu := make([]float64, len(on.Runs))
	var cpuUS []string
	for i, m := range on.Runs {
		before, after := off.Runs[i], off.Runs[i+1]
		throughput[i] = m.AB.RequestsPerS / ((before.AB.RequestsPerS + after.AB.RequestsPerS) / 2)
		cpu[i] = cpuPerRequest(m) / ((cpuPerRequest(before) + cpuPerRequest(after)) / 2)
		cpuUS = append(cpuUS, fmt.Sprintf("%.1f", cpuPerRequest(m)*1e6))
	}
	var offCPUUS []string
	for _, m := range off.Runs {
		offCPUUS = append(offCPUUS, fmt.Sprintf("%.1f", cpuPerRequest(m)*1e6))
	}
	judgeMetricsCost(&on, throughput)
	on.Findings = append(on.Findings, fmt.Sprintf(
		"CPU per request (utime+stime ÷ requests): on %s µs, off %s µs; on/off ratio median %.4f of %s",
		strings.Join(cpuUS, ", "), strings.Join(offCPUUS, ", "), median(cpu), formatRatios(cpu)))
	on.judgeSteadyRecommended()
	return off, on, nil
}

// judgeMetricsCost judges the metrics-on runs' req/s, each against the
// metrics-off runs either side of it (throughput), by judgePairs: a 2 % cost
// is well inside the runs' scatter (5 to 18 % a run on the build machine),
// so the verdict is DEVIATED only when every run is more than 2 % slower,
// PASS when the interval of the ratio lies above 0.98, and INCONCLUSIVE
// otherwise: the runs cannot tell the cost from 2 %.
func judgeMetricsCost(on *scenario, throughput []float64) {
	on.judgePairs(throughput, 1-metricsCostTolerance, math.Inf(1), "on/off req/s ratio")
}
