package main

import (
	"math/rand/v2"
	"strings"
	"testing"
)

func TestJudgeCalibration(t *testing.T) {
	detected, missed := ratioCI{Ratio: 1.03, Low: 1.01, High: 1.05, Pairs: 9}, ratioCI{Ratio: 1.02, Low: 0.97, High: 1.07, Pairs: 9}
	for _, tc := range []struct {
		rate float64
		slow ratioCI
		want string
	}{
		{0.027, detected, "PASS"},
		{0.05, detected, "PASS"},
		{0.053, detected, "INCONCLUSIVE"}, // within one run's scatter
		{0.10, detected, "INCONCLUSIVE"},
		{0.17, detected, "DEVIATED"}, // what the interval without its corrections flags
		{0.027, missed, "INCONCLUSIVE"},
		{0.17, missed, "DEVIATED"},
	} {
		var sc scenario
		judgeCalibration(&sc, tc.rate, 10, tc.slow)
		if sc.Verdict != tc.want {
			t.Errorf("A/A %.3f, slow %v: %s, want %s: %s", tc.rate, tc.slow, sc.Verdict, tc.want, strings.Join(sc.Findings, "; "))
		}
	}
}

// TestAAFlagRateStaysBelowUnsound: the share of relabellings flagged over
// one run's ten production runs, which CI's nine pairs give, stays below
// aaUnsoundRate whatever the runs' shape, so the A/A check does not fail
// the bench on noise.
func TestAAFlagRateStaysBelowUnsound(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	worst := 0.0
	for i := range 3 {
		a, _ := alternatedRuns(rng, 9, 0.05, 0)
		switch i % 3 {
		case 1: // bimodal: half the runs 12 % slower
			for j := range a {
				if rng.IntN(2) == 0 {
					a[j] *= 1.12
				}
			}
		case 2: // one outlier
			a[rng.IntN(len(a))] *= 1.4
		}
		worst = max(worst, aaFlagRate(a, aaTrials))
	}
	t.Logf("worst A/A share of 3 sets: %.1f %%", worst*100)
	if worst > aaUnsoundRate {
		t.Errorf("an A/A share of %.1f %%, above the %.0f %% that fails the bench", worst*100, aaUnsoundRate*100)
	}
}
