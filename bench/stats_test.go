package main

import (
	"math"
	"math/rand/v2"
	"testing"
)

// alternatedRuns simulates A B A B … A runs of a figure such as CPU per
// request: a slow drift of the machine, run-to-run noise of noise (a
// fraction), and B slower than A by slowdown.
func alternatedRuns(rng *rand.Rand, pairs int, noise, slowdown float64) (a, b []float64) {
	level := 200.0
	for i := range 2*pairs + 1 {
		level *= 1 + 0.003*rng.NormFloat64() // drift
		v := level * (1 + noise*rng.NormFloat64())
		if i%2 == 0 {
			a = append(a, v)
		} else {
			b = append(b, v*(1+slowdown))
		}
	}
	return a, b
}

// flagRate runs trials comparisons and returns the share whose interval
// excludes 1.
func flagRate(pairs int, noise, slowdown float64, trials int) float64 {
	rng := rand.New(rand.NewPCG(1, 2))
	flagged := 0
	for range trials {
		a, b := alternatedRuns(rng, pairs, noise, slowdown)
		if bootstrapRatio(neighbourRatios(a, b), rng).differs() {
			flagged++
		}
	}
	return float64(flagged) / float64(trials)
}

func TestBootstrapRatioFalseAlarms(t *testing.T) {
	// A/A: the same build on both sides flags a difference in at most 5 % of
	// trials (plus the simulation's own 1 % of noise), with as few pairs as
	// the bench allows and with more.
	for _, pairs := range []int{3, 5, 9} {
		rate := flagRate(pairs, 0.02, 0, 2000)
		t.Logf("A/A, %d pairs: %.1f %% of 2000 trials flagged", pairs, rate*100)
		if rate > 0.06 {
			t.Errorf("A/A with %d pairs: %.1f %% of trials flagged, want at most 5 %%", pairs, rate*100)
		}
	}
}

func TestBootstrapRatioDetectsTwoPercent(t *testing.T) {
	// CPU per request moves about 1 % from run to run on this machine: a 2 %
	// slowdown is found with nine pairs in nearly every trial.
	rate := flagRate(9, 0.01, 0.02, 1000)
	t.Logf("2 %% slowdown, 9 pairs: %.1f %% of 1000 trials flagged", rate*100)
	if rate < 0.9 {
		t.Errorf("a 2 %% slowdown flagged in %.1f %% of trials, want at least 90 %%", rate*100)
	}
}

func TestBootstrapRatio(t *testing.T) {
	ci := bootstrapRatio([]float64{1.02, 1.03, 1.01, 1.02, 1.025}, newRand())
	if math.Abs(ci.Ratio-1.021) > 0.001 || !(ci.Low < ci.Ratio && ci.Ratio < ci.High) || !ci.differs() || ci.Pairs != 5 {
		t.Errorf("ci = %v", ci)
	}
	if got := neighbourRatios([]float64{100, 102, 104}, []float64{101, 103}); len(got) != 2 || got[0] != 1 || got[1] != 1 {
		t.Errorf("neighbourRatios = %v", got)
	}
	if ci := bootstrapRatio([]float64{1.5, 1.4}, newRand()); math.Abs(ci.Ratio-1.449) > 0.001 || !math.IsNaN(ci.Low) || ci.differs() {
		t.Errorf("two pairs: %v; want a ratio and no interval", ci)
	}
}
