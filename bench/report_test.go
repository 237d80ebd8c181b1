package main

import (
	"bytes"
	"encoding/json"
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
	r.Scenarios[0].Build = "production"
	dir := t.TempDir()
	var out bytes.Buffer
	if err := r.write(&out, dir); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "| steady | production | 10 |") || !strings.Contains(out.String(), "+200.500 ms | +200.000 ms") {
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
