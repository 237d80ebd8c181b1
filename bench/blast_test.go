package main

import (
	"strings"
	"testing"

	"example.com/shopsession/chaos"
)

func TestJudgeBlastRadius(t *testing.T) {
	const pairs = 9
	// Steady means of 0.40 and 0.44 ms in turn; each control mean is
	// controlMS × its run's entry of scatter.
	steady := make([]measurement, pairs+1)
	for i := range steady {
		steady[i] = measurement{AB: abResult{MeanMS: 0.4 + 0.04*float64(i%2)}}
	}
	even := make([]float64, pairs)
	for i := range even {
		even[i] = 1
	}
	wide := []float64{0.8, 1.25, 0.85, 1.3, 0.9, 1.2, 0.82, 1.28, 1.0}
	runs := func(controlMS, experimentServiceMS float64, controlDelays int64, scatter []float64) []*blastRun {
		var out []*blastRun
		for _, s := range scatter {
			out = append(out, &blastRun{
				ab:         map[string]abResult{"control": {MeanMS: controlMS * s}, "experiment": {MeanMS: 201}},
				experiment: chaos.GroupFigures{Searches: 10, DelaysInjected: 20, SearchSeconds: experimentServiceMS * 10 / 1000},
				control:    chaos.GroupFigures{Searches: 1000, DelaysInjected: controlDelays, SearchSeconds: 0.3},
			})
		}
		return out
	}
	for _, tc := range []struct {
		name                string
		runs                []*blastRun
		control, experiment string
	}{
		{"held", runs(0.43, 200.5, 0, even), "PASS", "PASS"},
		{"a fault reached the control group", runs(0.43, 200.5, 1, even), "DEVIATED", "PASS"},
		{"control slower than steady in every run", runs(0.5, 200.5, 0, even), "DEVIATED", "PASS"},
		{"control runs scattered ±25 % about steady", runs(0.42, 200.5, 0, wide), "INCONCLUSIVE", "PASS"},
		{"scattered, and a fault reached the control group", runs(0.42, 200.5, 1, wide), "DEVIATED", "PASS"},
		{"too few runs for an interval", runs(0.43, 200.5, 0, even[:2]), "INCONCLUSIVE", "PASS"},
		{"difference 1 % off the prediction", runs(0.43, 202.3, 0, even), "PASS", "DEVIATED"},
	} {
		rows := judgeBlastRadius(nil, steady[:len(tc.runs)+1], tc.runs)
		if rows[0].Verdict != tc.control || rows[1].Verdict != tc.experiment {
			t.Errorf("%s: control %s, experiment %s; want %s, %s\n%s\n%s", tc.name, rows[0].Verdict, rows[1].Verdict, tc.control, tc.experiment,
				strings.Join(rows[0].Findings, "; "), strings.Join(rows[1].Findings, "; "))
		}
	}
}
