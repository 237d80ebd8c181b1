package stats

import (
	"math"
	"math/rand/v2"
	"strings"
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

// TestStudentT holds the computed quantiles to the printed tables: the
// 97.5th percentile to the one StudentT answers from (three decimals), the
// 98.75th to published values, and the normal's to its own.
func TestStudentT(t *testing.T) {
	for df := 1; df < len(studentT975); df++ {
		if got, want := studentTQuantile(0.975, df), studentT975[df]; math.Abs(got-want) > 0.002 {
			t.Errorf("studentTQuantile(0.975, %d) = %.4f, want the table's %.3f", df, got, want)
		}
	}
	for _, c := range []struct {
		df   int
		want float64
	}{{31, 2.0395}, {40, 2.0211}, {60, 2.0003}, {120, 1.9799}} {
		if got := StudentT975(c.df); math.Abs(got-c.want) > 0.0005 {
			t.Errorf("StudentT975(%d) = %.4f, want %.4f", c.df, got, c.want)
		}
	}
	for _, c := range []struct {
		df   int
		want float64
	}{{1, 25.452}, {2, 6.205}, {3, 4.177}, {5, 3.163}, {10, 2.634}, {30, 2.360}} {
		if got := StudentT(0.9875, c.df); math.Abs(got-c.want) > 0.002 {
			t.Errorf("StudentT(0.9875, %d) = %.4f, want %.3f", c.df, got, c.want)
		}
	}
	for _, c := range []struct{ p, want float64 }{{0.975, 1.959964}, {0.9875, 2.241403}, {0.995, 2.575829}} {
		if got := NormalQuantile(c.p); math.Abs(got-c.want) > 1e-6 {
			t.Errorf("NormalQuantile(%v) = %.6f, want %.6f", c.p, got, c.want)
		}
	}
}

// TestBootstrapRatioAtIsWider: the same ratios give a wider interval at a
// higher level, and the 95 % one is BootstrapRatio's.
func TestBootstrapRatioAtIsWider(t *testing.T) {
	ratios := []float64{1.01, 0.99, 1.02, 1.00, 0.98, 1.015, 1.005}
	ci95, at95 := BootstrapRatio(ratios, NewRand()), BootstrapRatioAt(ratios, NewRand(), 0.95)
	if ci95 != at95 {
		t.Errorf("BootstrapRatioAt(0.95) = %v, BootstrapRatio %v", at95, ci95)
	}
	wide := BootstrapRatioAt(ratios, NewRand(), 0.975)
	if !(wide.Low < ci95.Low && wide.High > ci95.High) || wide.Level != 0.975 {
		t.Errorf("97.5 %% interval %v is not wider than the 95 %% one %v", wide, ci95)
	}
	if s := wide.String(); !strings.Contains(s, "97.5 % CI") {
		t.Errorf("String() = %q, want it to name 97.5 %%", s)
	}
}
