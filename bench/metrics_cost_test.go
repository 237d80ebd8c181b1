package main

import (
	"math/rand/v2"
	"strings"
	"testing"
)

func TestJudgeMetricsCost(t *testing.T) {
	for _, tc := range []struct {
		name       string
		throughput []float64
		want       string
	}{
		{"the same throughput, runs close", []float64{1.01, 0.995, 1.0, 1.005, 0.99, 1.0, 1.01, 0.998, 1.002}, "PASS"},
		{"the same throughput, runs scattered", []float64{0.85, 1.15, 0.9, 1.12, 0.95, 1.05, 0.88, 1.1, 1.0}, "INCONCLUSIVE"},
		{"every run 3 % slower", []float64{0.97, 0.965, 0.975, 0.97, 0.96, 0.972, 0.968, 0.97, 0.971}, "DEVIATED"},
		{"eight of nine runs 10 % slower", []float64{0.9, 0.9, 0.9, 0.9, 1.0, 0.9, 0.9, 0.9, 0.9}, "INCONCLUSIVE"},
	} {
		var sc scenario
		judgeMetricsCost(&sc, tc.throughput)
		if sc.Verdict != tc.want || sc.Ratio == nil || sc.Ratio.Pairs != len(tc.throughput) {
			t.Errorf("%s: %s, want %s: %s", tc.name, sc.Verdict, tc.want, strings.Join(sc.Findings, "; "))
		}
	}
}

// TestMetricsCostDoesNotFlap: with a true cost of exactly 2 %, CI's nine
// pairs are DEVIATED in under 1 % of trials, whatever the runs' scatter.
func TestMetricsCostDoesNotFlap(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, noise := range []float64{0.03, 0.05, 0.10} {
		deviated := 0
		const trials = 600
		for range trials {
			a, b := alternatedRuns(rng, 9, noise, -metricsCostTolerance)
			var sc scenario
			judgeMetricsCost(&sc, neighbourRatios(a, b))
			if sc.Verdict == verdictDeviated {
				deviated++
			}
		}
		rate := float64(deviated) / trials
		t.Logf("2 %% cost, %.0f %% noise: DEVIATED in %.2f %% of trials", noise*100, rate*100)
		if rate > 0.01 {
			t.Errorf("2 %% cost, %.0f %% noise: DEVIATED in %.2f %% of trials, want under 1 %%", noise*100, rate*100)
		}
	}
}
