package main

import (
	"math/rand/v2"

	"example.com/shopsession/internal/stats"
)

// Statistics for comparing two builds from alternated runs: A B A B … A, each
// B judged against the mean of the A runs either side of it, which cancels
// the machine's slow drift.

// The bench's names for the shared statistics (internal/stats), which the
// experiment runner of the chaos package judges by too.
type ratioCI = stats.RatioCI

const (
	verdictPass         = stats.Pass
	verdictDeviated     = stats.Deviated
	verdictInconclusive = stats.Inconclusive
)

// neighbourRatios returns b[i] / mean(a[i], a[i+1]) for each i; a has one
// run more than b.
func neighbourRatios(a, b []float64) []float64 {
	out := make([]float64, 0, len(b))
	for i := range b {
		if i+1 >= len(a) {
			break
		}
		out = append(out, b[i]/((a[i]+a[i+1])/2))
	}
	return out
}

func bootstrapRatio(ratios []float64, rng *rand.Rand) ratioCI {
	return stats.BootstrapRatio(ratios, rng)
}

func bootstrapRatioAt(ratios []float64, rng *rand.Rand, level float64) ratioCI {
	return stats.BootstrapRatioAt(ratios, rng, level)
}

func newRand() *rand.Rand { return stats.NewRand() }

// intervalVerdict judges a ratio between alternated runs by its 95 %
// interval (stats.IntervalVerdict): run-to-run noise makes a verdict
// INCONCLUSIVE, which does not fail the bench, and not DEVIATED.
func intervalVerdict(ci ratioCI, low, high float64) string {
	return stats.IntervalVerdict(ci.Low, ci.High, low, high)
}

// pairsVerdict judges the ratios of alternated runs, each against the
// reference runs either side of it, against the bounds [low, high]:
//   - PASS when their 95 % interval (ci, bootstrapRatio of ratios) lies
//     within the bounds;
//   - DEVIATED when every ratio lies beyond the same bound, a sign test:
//     when the truth sits on the bound that happens by chance in 0.5ⁿ of
//     runs (0.2 % with CI's nine pairs; a little more, as neighbouring
//     ratios share a reference run), and less the further inside it is,
//     whatever the runs' scatter. The interval's own "wholly beyond" would
//     in 2.5 %, and in 0.5–1 % of runs 5–8 % inside a 10 % bound at 10 %
//     scatter (TestPairsVerdictDoesNotFlap);
//   - INCONCLUSIVE otherwise, and with fewer than three ratios: the runs
//     cannot tell, which does not fail the bench.
func pairsVerdict(ratios []float64, ci ratioCI, low, high float64) string {
	if len(ratios) < 3 {
		return verdictInconclusive
	}
	above, below := 0, 0
	for _, r := range ratios {
		if r > high {
			above++
		}
		if r < low {
			below++
		}
	}
	switch {
	case above == len(ratios) || below == len(ratios):
		return verdictDeviated
	case intervalVerdict(ci, low, high) == verdictPass:
		return verdictPass
	default:
		return verdictInconclusive
	}
}
