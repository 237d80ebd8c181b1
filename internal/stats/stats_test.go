package stats

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestBootstrapMeanFalseAlarms: with the few per-second samples of a
// runner's step, an interval about no difference excludes it in about 5 %
// of trials, not the plain percentile interval's 10 % or more.
func TestBootstrapMeanFalseAlarms(t *testing.T) {
	data := rand.New(rand.NewPCG(1, 2))
	rng := NewRand()
	for _, n := range []int{4, 9, 30} {
		const trials = 1000
		alarms := 0
		for range trials {
			v := make([]float64, n)
			for i := range v {
				v[i] = data.NormFloat64()
			}
			if ci := BootstrapMean(v, rng); ci.Low > 0 || ci.High < 0 {
				alarms++
			}
		}
		if share := float64(alarms) / trials; share > 0.075 || share < 0.01 {
			t.Errorf("%d samples: %d of %d intervals excluded the true mean (%.1f %%): want about 5 %%", n, alarms, trials, share*100)
		}
	}
}

func TestBootstrapMeanOfFewSamples(t *testing.T) {
	ci := BootstrapMean([]float64{200.4, 201.1}, NewRand())
	if math.Abs(ci.Mean-200.75) > 1e-9 || !math.IsNaN(ci.Low) || ci.N != 2 {
		t.Fatalf("two samples: %+v, want mean 200.75 and no interval", ci)
	}
	ci = BootstrapMean([]float64{200.4, 201.1, 199.8, 200.6, 200.9}, NewRand())
	if !(ci.Low < ci.Mean && ci.Mean < ci.High) || ci.High-ci.Low > 3 || ci.Low < 198 {
		t.Fatalf("five samples: %+v, want an interval of a few tenths about 200.56", ci)
	}
	if v := IntervalVerdict(ci.Low, ci.High, 190, 210); v != Pass {
		t.Errorf("within 200 ± 10: %s", v)
	}
	if v := IntervalVerdict(ci.Low, ci.High, 90, 110); v != Deviated {
		t.Errorf("against 100 ± 10: %s", v)
	}
	if v := IntervalVerdict(ci.Low, ci.High, 195, 200.5); v != Inconclusive {
		t.Errorf("straddling 200.5: %s", v)
	}
}
