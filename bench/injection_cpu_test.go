package main

import (
	"strings"
	"testing"
)

// TestJudgeInjectionCPU: the latency runs' CPU a search is reported against
// the steady runs either side of each, with the CPU a second of both, and
// never judged.
func TestJudgeInjectionCPU(t *testing.T) {
	run := func(cpuSeconds float64, requests int) measurement {
		return measurement{AB: abResult{Complete: requests}, CPUSeconds: cpuSeconds, CPUPerRequestUS: cpuSeconds * 1e6 / float64(requests)}
	}
	// Steady: 100 µs a search at 20 000 searches a run; latency: 150 µs at 1 600.
	steady := scenario{Runs: []measurement{run(2, 20000), run(2, 20000), run(2, 20000)}}
	latency := scenario{Runs: []measurement{run(0.24, 1600), run(0.24, 1600)}}
	judgeInjectionCPU(&steady, &latency, 10)
	findings := strings.Join(latency.Findings, "; ")
	if latency.Verdict != "REPORTED" || latency.Ratio == nil || latency.Ratio.Pairs != 2 || latency.Ratio.Ratio < 1.49 || latency.Ratio.Ratio > 1.51 {
		t.Errorf("verdict %s, ratio %+v; want REPORTED, 1.5 over 2 pairs", latency.Verdict, latency.Ratio)
	}
	for _, want := range []string{"latency 150.0 µs, steady 100.0 µs", "latency runs 24.0, 24.0 ms, steady runs 200.0, 200.0, 200.0 ms"} {
		if !strings.Contains(findings, want) {
			t.Errorf("findings %q, want %q", findings, want)
		}
	}
	if steady.Verdict != "" || steady.CPUPerRequestUS != 100 || latency.Summary.Complete != 3200 {
		t.Errorf("steady verdict %q, CPU %v; latency requests %d", steady.Verdict, steady.CPUPerRequestUS, latency.Summary.Complete)
	}
}
