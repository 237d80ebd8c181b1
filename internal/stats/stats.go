// Package stats is the one implementation of the intervals the bench and
// the chaos package's experiment runner judge hypotheses by: a percentile
// bootstrap, stretched for the few samples either has.
package stats

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
)

// Resamples is enough for the 2.5th and 97.5th percentiles to move by well
// under 0.1 % between runs, and takes milliseconds.
const Resamples = 4000

// The verdicts of a hypothesis.
const (
	Pass         = "PASS"
	Deviated     = "DEVIATED"
	Inconclusive = "INCONCLUSIVE"
)

// NewRand is a seeded source: the same figures give the same interval.
func NewRand() *rand.Rand { return rand.New(rand.NewPCG(16, 16)) }

// RatioCI is a ratio between two builds with its confidence interval: 95 %
// unless Level says otherwise (the JSON keeps its names for either).
type RatioCI struct {
	Ratio float64 `json:"ratio"`
	Low   float64 `json:"ci95_low"`
	High  float64 `json:"ci95_high"`
	Pairs int     `json:"pairs"`
	Level float64 `json:"level,omitempty"` // 0: 95 %
}

func (c RatioCI) String() string {
	level := 95.0
	if c.Level != 0 {
		level = c.Level * 100
	}
	return fmt.Sprintf("%.4f (%s %% CI %.4f–%.4f, %d pairs)", c.Ratio, strconv.FormatFloat(level, 'f', -1, 64), c.Low, c.High, c.Pairs)
}

// Differs reports whether the interval excludes 1: the builds differ.
func (c RatioCI) Differs() bool { return c.Low > 1 || c.High < 1 }

// BootstrapRatio estimates the typical ratio of alternated runs (each B
// run over the mean of the A runs either side of it) as the geometric mean
// of the per-pair ratios, with a percentile bootstrap interval over the
// pairs.
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
// The bench's TestBootstrapRatioFalseAlarms checks the result: A/A
// comparisons flag a difference in at most 5 % of trials.
func BootstrapRatio(ratios []float64, rng *rand.Rand) RatioCI {
	return BootstrapRatioAt(ratios, rng, 0.95)
}

// BootstrapRatioAt is BootstrapRatio's interval at another level, such as
// 0.975: one that must keep its false alarms below 5 % on each run's own
// data, and not only on average over runs, is taken wider than 95 %.
func BootstrapRatioAt(ratios []float64, rng *rand.Rand, level float64) RatioCI {
	n := len(ratios)
	ci := RatioCI{Pairs: n, Ratio: math.NaN(), Low: math.NaN(), High: math.NaN()}
	if level != 0.95 {
		ci.Level = level
	}
	if n == 0 {
		return ci
	}
	logs := make([]float64, n)
	for i, r := range ratios {
		logs[i] = math.Log(r)
	}
	nf := float64(n)
	p := (1 + level) / 2
	stretch := math.Sqrt(nf/(nf-1)) * StudentT(p, n-2) / NormalQuantile(p) * math.Sqrt((1+(nf-1)/(3*nf))/(1-1/(3*nf)))
	mean, low, high := bootstrap(logs, stretch, level, rng)
	ci.Ratio, ci.Low, ci.High = math.Exp(mean), math.Exp(low), math.Exp(high)
	return ci
}

// MeanCI is a mean with its 95 % confidence interval.
type MeanCI struct {
	Mean float64 `json:"mean"`
	Low  float64 `json:"ci95_low"`
	High float64 `json:"ci95_high"`
	N    int     `json:"n"`
}

// BootstrapMean is the mean of independent samples, such as the runner's
// per-second differences between an experiment group and a control group
// measured in the same second, with a percentile bootstrap interval,
// stretched by √(n/(n−1)) × t/z for the few samples (n−1 degrees of
// freedom). Fewer than three samples have no interval (NaN bounds).
func BootstrapMean(samples []float64, rng *rand.Rand) MeanCI {
	n := len(samples)
	ci := MeanCI{N: n, Mean: math.NaN(), Low: math.NaN(), High: math.NaN()}
	if n == 0 {
		return ci
	}
	nf := float64(n)
	ci.Mean, ci.Low, ci.High = bootstrap(samples, math.Sqrt(nf/(nf-1))*StudentT975(n-1)/1.959964, 0.95, rng)
	return ci
}

// bootstrap is the resampling both intervals share: the mean of v, and the
// percentiles of the resampled means spread about it by stretch that hold
// level between them (the 2.5th and 97.5th for 0.95); NaN bounds below
// three values.
func bootstrap(v []float64, stretch, level float64, rng *rand.Rand) (mean, low, high float64) {
	n := len(v)
	mean = Mean(v)
	if n < 3 {
		return mean, math.NaN(), math.NaN()
	}
	means := make([]float64, Resamples)
	for k := range means {
		sum := 0.0
		for range n {
			sum += v[rng.IntN(n)]
		}
		means[k] = mean + (sum/float64(n)-mean)*stretch
	}
	slices.Sort(means)
	return mean, Quantile(means, (1-level)/2), Quantile(means, (1+level)/2)
}

// IntervalVerdict judges a 95 % interval [low, high] against the bounds a
// hypothesis allows, [lo, hi]: PASS when the interval lies within them,
// DEVIATED when it lies wholly beyond one of them, INCONCLUSIVE when it
// straddles a bound or there is no interval. Noise widens the interval, so
// it makes a verdict INCONCLUSIVE, not DEVIATED: that takes a value beyond
// the bound by more than the noise.
func IntervalVerdict(low, high, lo, hi float64) string {
	switch {
	case low >= lo && high <= hi:
		return Pass
	case low > hi || high < lo:
		return Deviated
	default:
		return Inconclusive
	}
}

// Mean is the arithmetic mean of v.
func Mean(v []float64) float64 {
	sum := 0.0
	for _, x := range v {
		sum += x
	}
	return sum / float64(len(v))
}

// Quantile interpolates the q-quantile of sorted values.
func Quantile(sorted []float64, q float64) float64 {
	pos := q * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	if lo+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	return sorted[lo] + (pos-float64(lo))*(sorted[lo+1]-sorted[lo])
}

// StudentT975 is the 97.5th percentile of Student's t with df degrees of
// freedom.
func StudentT975(df int) float64 { return StudentT(0.975, df) }

// studentT975 is the printed table of StudentT975 up to 30 degrees of
// freedom, which StudentT answers from: the intervals at 95 % keep the
// values they were first judged by.
var studentT975 = []float64{0, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
	2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
	2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042}

// StudentT is the p-quantile (p > 0.5) of Student's t with df degrees of
// freedom: the printed table at 0.975 up to 30, otherwise by bisecting the
// distribution function, integrated by Simpson's rule, once per level and
// df.
func StudentT(p float64, df int) float64 {
	switch {
	case df < 1:
		return math.Inf(1)
	case p == 0.975 && df < len(studentT975):
		return studentT975[df]
	}
	key := tKey{p, df}
	if q, ok := tQuantiles.Load(key); ok {
		return q.(float64)
	}
	q := studentTQuantile(p, df)
	tQuantiles.Store(key, q)
	return q
}

// studentTQuantile computes StudentT's quantile.
func studentTQuantile(p float64, df int) float64 {
	nu := float64(df)
	lg1, _ := math.Lgamma((nu + 1) / 2)
	lg2, _ := math.Lgamma(nu / 2)
	c := math.Exp(lg1-lg2) / math.Sqrt(nu*math.Pi)
	density := func(x float64) float64 { return c * math.Pow(1+x*x/nu, -(nu+1)/2) }
	return quantile(p, func(x float64) float64 { return 0.5 + simpson(density, x) })
}

type tKey struct {
	p  float64
	df int
}

var tQuantiles sync.Map // tKey → float64

// NormalQuantile is the p-quantile (p > 0.5) of the standard normal.
func NormalQuantile(p float64) float64 {
	return quantile(p, func(x float64) float64 { return 0.5 * math.Erfc(-x/math.Sqrt2) })
}

// quantile bisects an increasing distribution function for the x > 0 at
// which it reaches p.
func quantile(p float64, cdf func(float64) float64) float64 {
	lo, hi := 0.0, 1.0
	for cdf(hi) < p {
		lo, hi = hi, hi*2
	}
	for range 60 {
		if mid := (lo + hi) / 2; cdf(mid) < p {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}

// simpson integrates f from 0 to x.
func simpson(f func(float64) float64, x float64) float64 {
	const steps = 2000
	h := x / steps
	sum := f(0) + f(x)
	for i := 1; i < steps; i++ {
		w := 2.0
		if i%2 == 1 {
			w = 4
		}
		sum += w * f(float64(i)*h)
	}
	return sum * h / 3
}
