package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func fakeScenario(name string, ms float64, predicted *float64) scenario {
	p := map[string]float64{}
	for i := range 101 {
		p[strconv.Itoa(i)] = ms + float64(i)/100
	}
	s := scenario{Name: name, Build: "chaos", Summary: abResult{Complete: 10, MeanMS: ms, Percentiles: p}}
	if predicted != nil {
		s.PredictedMS, s.DeltaMS, s.DelaySeconds = predicted, ptr(*predicted+0.5), *predicted/2000
	}
	return s
}

// TestReportWritesAndRedraws writes a report and draws its chart again from
// the saved JSON.
func TestReportWritesAndRedraws(t *testing.T) {
	r := &report{Concurrency: 1, Scenarios: []scenario{
		fakeScenario("steady", 0.5, nil),
		fakeScenario("sweep 0.01", 20.5, ptr(20)),
		fakeScenario("sweep 0.1", 200.5, ptr(200)),
	}}
	r.Scenarios[2].judge(false, "measured 3 against 2")
	r.Scenarios[0].Build = "production"
	r.Scenarios[0].Runs = []measurement{{Pages: &pageCounts{WithRecommendations: 9990, WithoutRecommendations: 10}}}
	r.Scenarios[0].judgeSteadyRecommended()
	dir := t.TempDir()
	var out bytes.Buffer
	if err := r.write(&out, dir); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "| steady | production | 10 |") || !strings.Contains(out.String(), "+200.500 ms | +200.000 ms | — |") ||
		!strings.Contains(out.String(), "| 99.90 % | PASS |") ||
		!strings.HasSuffix(out.String(), "\nVerdicts: 1 PASS, 1 DEVIATED\nDEVIATED: sweep 0.1: measured 3 against 2\n") {
		t.Errorf("markdown:\n%s", out.String())
	}
	var saved report
	data, err := os.ReadFile(filepath.Join(dir, "latest.json"))
	if err != nil || json.Unmarshal(data, &saved) != nil || len(saved.Scenarios) != 3 {
		t.Fatalf("latest.json: %v, %d scenarios", err, len(saved.Scenarios))
	}
	os.Remove(filepath.Join(dir, "latest.svg"))
	if err := redraw(filepath.Join(dir, "latest.json")); err != nil {
		t.Fatal(err)
	}
	svg, err := os.ReadFile(filepath.Join(dir, "latest.svg"))
	if err != nil || !bytes.Contains(svg, []byte("<svg")) || !bytes.Contains(svg, []byte("Latency sweep")) {
		t.Errorf("redrawn chart: %v, %d bytes", err, len(svg))
	}
}

// TestJudgeRecommended: the share of pages with recommendations is summed
// over the runs and judged against its bounds.
func TestJudgeRecommended(t *testing.T) {
	pages := func(with, without int64) measurement {
		return measurement{Pages: &pageCounts{WithRecommendations: with, WithoutRecommendations: without}}
	}
	for _, tc := range []struct {
		runs         []measurement
		lowest, high float64
		verdict      string
		share        float64
	}{
		{[]measurement{pages(5000, 4990), pages(10, 0)}, 0.495, 0.505, "PASS", 0.501},
		{[]measurement{pages(4900, 5100)}, 0.495, 0.505, "DEVIATED", 0.49},
		{[]measurement{pages(5100, 4900)}, 0.495, 0.505, "DEVIATED", 0.51},
		{[]measurement{pages(9989, 11)}, 0.999, 1, "DEVIATED", 0.9989},
		{[]measurement{pages(0, 0)}, 0.999, 1, "DEVIATED", -1},
		{[]measurement{{}}, 0.999, 1, "", -1}, // no /metrics: not judged
	} {
		s := scenario{Runs: tc.runs}
		s.judgeRecommended(tc.lowest, tc.high, "bounds")
		got := -1.0
		if s.RecommendedShare != nil {
			got = *s.RecommendedShare
		}
		if s.Verdict != tc.verdict || math.Abs(got-tc.share) > 1e-9 {
			t.Errorf("runs %+v: verdict %q share %v, want %q %v (%q)", tc.runs, s.Verdict, got, tc.verdict, tc.share, s.Findings)
		}
	}
}
