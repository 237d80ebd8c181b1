package main

import (
	"strings"
	"testing"

	"example.com/shopsession/chaos"
)

func TestJudgeBlastRadius(t *testing.T) {
	steady := []measurement{{AB: abResult{MeanMS: 0.4}}, {AB: abResult{MeanMS: 0.44}}}
	run := func(controlMS, experimentServiceMS float64, controlDelays int64) *blastRun {
		return &blastRun{
			ab:         map[string]abResult{"control": {MeanMS: controlMS}, "experiment": {MeanMS: 201}},
			experiment: chaos.GroupFigures{Searches: 10, DelaysInjected: 20, SearchSeconds: experimentServiceMS * 10 / 1000},
			control:    chaos.GroupFigures{Searches: 1000, DelaysInjected: controlDelays, SearchSeconds: 0.3},
		}
	}
	for _, tc := range []struct {
		name                string
		run                 *blastRun
		control, experiment string
	}{
		{"held", run(0.43, 200.5, 0), "PASS", "PASS"},
		{"a fault reached the control group", run(0.43, 200.5, 1), "DEVIATED", "PASS"},
		{"control slower than steady", run(0.5, 200.5, 0), "DEVIATED", "PASS"},
		{"difference 1 % off the prediction", run(0.43, 202.3, 0), "PASS", "DEVIATED"},
	} {
		rows := judgeBlastRadius(nil, steady, []*blastRun{tc.run})
		if rows[0].Verdict != tc.control || rows[1].Verdict != tc.experiment {
			t.Errorf("%s: control %s, experiment %s; want %s, %s\n%s\n%s", tc.name, rows[0].Verdict, rows[1].Verdict, tc.control, tc.experiment,
				strings.Join(rows[0].Findings, "; "), strings.Join(rows[1].Findings, "; "))
		}
	}
}
