package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Statistics for comparing two builds from alternated runs: A B A B … A, each
// B judged against the mean of the A runs either side of it, which cancels
// the machine's slow drift.

// bootstrapResamples is enough for the 2.5th and 97.5th percentiles to move
// by well under 0.1 % between runs of the bench, and takes milliseconds.
const bootstrapResamples = 4000

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

// ratioCI is a ratio between two builds with its 95 % confidence interval.
type ratioCI struct {
	Ratio float64 `json:"ratio"`
	Low   float64 `json:"ci95_low"`
	High  float64 `json:"ci95_high"`
	Pairs int     `json:"pairs"`
}

func (c ratioCI) String() string {
	return fmt.Sprintf("%.4f (95 %% CI %.4f–%.4f, %d pairs)", c.Ratio, c.Low, c.High, c.Pairs)
}

// differs reports whether the interval excludes 1: the builds differ.
func (c ratioCI) differs() bool { return c.Low > 1 || c.High < 1 }

// bootstrapRatio estimates the typical ratio as the geometric mean of the
// per-pair ratios, with a percentile bootstrap interval over the pairs.
//
// The plain percentile interval is too narrow here, for three reasons, and
// the resampled means are spread about the observed one to undo each:
//   - with a handful of pairs the sample's spread underestimates the
//     population's by √((n−1)/n), and a normal quantile stands in for
//     Student's t, taken with n−2 degrees of freedom since neighbouring
//     ratios are not independent: × √(n/(n−1)) × t/z;
//   - neighbouring ratios share an A run, so they are correlated (ρ = 1/6
//     when runs vary independently), which the resampling ignores and
//     which also shrinks the sample's spread:
//     × √((1 + 2ρ(n−1)/n) / (1 − 2ρ/n)).
//
// TestBootstrapRatioFalseAlarms checks the result: A/A comparisons flag a
// difference in at most 5 % of trials.
func bootstrapRatio(ratios []float64, rng *rand.Rand) ratioCI {
	n := len(ratios)
	ci := ratioCI{Pairs: n, Ratio: math.NaN(), Low: math.NaN(), High: math.NaN()}
	if n == 0 {
		return ci
	}
	logs := make([]float64, n)
	for i, r := range ratios {
		logs[i] = math.Log(r)
	}
	mean := meanOf(logs)
	ci.Ratio = math.Exp(mean)
	if n < 3 {
		return ci
	}
	nf := float64(n)
	stretch := math.Sqrt(nf/(nf-1)) * studentT975(n-2) / 1.959964 * math.Sqrt((1+(nf-1)/(3*nf))/(1-1/(3*nf)))
	means := make([]float64, bootstrapResamples)
	for k := range means {
		sum := 0.0
		for range n {
			sum += logs[rng.IntN(n)]
		}
		means[k] = mean + (sum/float64(n)-mean)*stretch
	}
	slices.Sort(means)
	ci.Low = math.Exp(quantileSorted(means, 0.025))
	ci.High = math.Exp(quantileSorted(means, 0.975))
	return ci
}

func meanOf(v []float64) float64 {
	sum := 0.0
	for _, x := range v {
		sum += x
	}
	return sum / float64(len(v))
}

// quantileSorted interpolates the q-quantile of sorted values.
func quantileSorted(sorted []float64, q float64) float64 {
	pos := q * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	if lo+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	return sorted[lo] + (pos-float64(lo))*(sorted[lo+1]-sorted[lo])
}

// studentT975 is the 97.5th percentile of Student's t with df degrees of
// freedom.
func studentT975(df int) float64 {
	table := []float64{0, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
		2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
		2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042}
	switch {
	case df < 1:
		return math.Inf(1)
	case df < len(table):
		return table[df]
	default:
		return 1.959964 + 2.4/float64(df) // within 0.002 of the exact value from 30 up
	}
}

// newRand is the bench's seeded source: the same figures give the same
// interval.
func newRand() *rand.Rand { return rand.New(rand.NewPCG(16, 16)) }

// The verdicts of a hypothesis.
const (
	verdictPass         = "PASS"
	verdictDeviated     = "DEVIATED"
	verdictInconclusive = "INCONCLUSIVE"
)

// intervalVerdict judges a ratio between alternated runs by its 95 %
// interval against the bounds the hypothesis allows, [low, high]: PASS when
// the interval lies within them, DEVIATED when it lies wholly beyond one of
// them, INCONCLUSIVE when it straddles a bound or there is no interval
// (fewer than three pairs). Run-to-run noise widens the interval, so it
// makes a verdict INCONCLUSIVE, which does not fail the bench, and not
// DEVIATED: that takes a ratio beyond the bound by more than the noise.
func intervalVerdict(ci ratioCI, low, high float64) string {
	switch {
	case ci.Low >= low && ci.High <= high:
		return verdictPass
	case ci.Low > high || ci.High < low:
		return verdictDeviated
	default:
		return verdictInconclusive
	}
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
