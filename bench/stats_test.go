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
		if bootstrapRatio(neighbourRatios(a, b), rng).Differs() {
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
	if math.Abs(ci.Ratio-1.021) > 0.001 || !(ci.Low < ci.Ratio && ci.Ratio < ci.High) || !ci.Differs() || ci.Pairs != 5 {
		t.Errorf("ci = %v", ci)
	}
	if got := neighbourRatios([]float64{100, 102, 104}, []float64{101, 103}); len(got) != 2 || got[0] != 1 || got[1] != 1 {
		t.Errorf("neighbourRatios = %v", got)
	}
	if ci := bootstrapRatio([]float64{1.5, 1.4}, newRand()); math.Abs(ci.Ratio-1.449) > 0.001 || !math.IsNaN(ci.Low) || ci.Differs() {
		t.Errorf("two pairs: %v; want a ratio and no interval", ci)
	}
}

func TestIntervalVerdict(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		low, high float64 // the interval
		want      string
	}{
		{0.95, 1.05, "PASS"},
		{0.9, 1.1, "PASS"}, // on the bounds
		{0.85, 1.05, "INCONCLUSIVE"},
		{0.95, 1.15, "INCONCLUSIVE"},
		{0.8, 1.2, "INCONCLUSIVE"},
		{1.11, 1.3, "DEVIATED"},
		{0.7, 0.89, "DEVIATED"},
		{nan, nan, "INCONCLUSIVE"}, // fewer than three pairs
	} {
		ci := ratioCI{Ratio: 1, Low: tc.low, High: tc.high, Pairs: 9}
		if got := intervalVerdict(ci, 0.9, 1.1); got != tc.want {
			t.Errorf("interval %v–%v against 0.9–1.1: %s, want %s", tc.low, tc.high, got, tc.want)
		}
	}
	// chaos-off's one-sided bound: at most 1.02.
	for ci, want := range map[ratioCI]string{
		{Low: 0.95, High: 1.01}: "PASS", {Low: 0.95, High: 1.04}: "INCONCLUSIVE", {Low: 1.03, High: 1.08}: "DEVIATED",
	} {
		if got := intervalVerdict(ci, 0, 1.02); got != want {
			t.Errorf("%v against at most 1.02: %s, want %s", ci, got, want)
		}
	}
}

// TestJudgeIntervalWithOtherFindings: a deviated finding outweighs every
// other; an inconclusive one outweighs a pass.
func TestJudgeIntervalWithOtherFindings(t *testing.T) {
	inside, across, beyond := ratioCI{Low: 0.97, High: 1.03}, ratioCI{Low: 0.85, High: 1.05}, ratioCI{Low: 1.2, High: 1.3}
	for _, tc := range []struct {
		name  string
		steps func(s *scenario)
		want  string
	}{
		{"pass, interval inside", func(s *scenario) { s.judge(true, ""); s.judgeInterval(inside, 0.9, 1.1, "") }, "PASS"},
		{"pass, interval across", func(s *scenario) { s.judge(true, ""); s.judgeInterval(across, 0.9, 1.1, "") }, "INCONCLUSIVE"},
		{"interval across, then pass", func(s *scenario) { s.judgeInterval(across, 0.9, 1.1, ""); s.judge(true, "") }, "INCONCLUSIVE"},
		{"interval across, then deviated", func(s *scenario) { s.judgeInterval(across, 0.9, 1.1, ""); s.judge(false, "") }, "DEVIATED"},
		{"deviated, then interval across", func(s *scenario) { s.judge(false, ""); s.judgeInterval(across, 0.9, 1.1, "") }, "DEVIATED"},
		{"pass, interval beyond", func(s *scenario) { s.judge(true, ""); s.judgeInterval(beyond, 0.9, 1.1, "") }, "DEVIATED"},
	} {
		var s scenario
		tc.steps(&s)
		if s.Verdict != tc.want || s.Ratio == nil {
			t.Errorf("%s: %s (ratio %v), want %s", tc.name, s.Verdict, s.Ratio, tc.want)
		}
	}
}

func TestPairsVerdict(t *testing.T) {
	for _, tc := range []struct {
		ratios []float64
		want   string
	}{
		{[]float64{1.01, 0.99, 1.02, 1.0, 0.98, 1.01, 1.0, 0.99, 1.02}, "PASS"},
		{[]float64{1.2, 1.15, 1.3, 1.12, 1.25, 1.18, 1.11, 1.4, 1.2}, "DEVIATED"},
		{[]float64{0.8, 0.85, 0.7, 0.88, 0.75, 0.82, 0.89, 0.6, 0.8}, "DEVIATED"},
		// Eight of nine beyond: the interval lies wholly above too, but the
		// sign test wants every run.
		{[]float64{1.3, 1.3, 1.3, 1.3, 1.05, 1.3, 1.3, 1.3, 1.3}, "INCONCLUSIVE"},
		// Beyond both bounds, half each way: no agreement.
		{[]float64{0.8, 1.2, 0.8, 1.2, 0.8, 1.2, 0.8, 1.2, 0.8}, "INCONCLUSIVE"},
		{[]float64{1.3, 1.3}, "INCONCLUSIVE"}, // too few
	} {
		ci := bootstrapRatio(tc.ratios, newRand())
		if got := pairsVerdict(tc.ratios, ci, 0.9, 1.1); got != tc.want {
			t.Errorf("%v (%v) against 0.9–1.1: %s, want %s", tc.ratios, ci, got, tc.want)
		}
	}
	// One-sided, as the metrics' cost is judged: at least 0.98.
	if got := pairsVerdict([]float64{0.97, 0.96, 0.95, 0.97, 0.9}, bootstrapRatio([]float64{0.97, 0.96, 0.95, 0.97, 0.9}, newRand()), 0.98, math.Inf(1)); got != "DEVIATED" {
		t.Errorf("every run below 0.98: %s", got)
	}
}

// TestPairsVerdictDoesNotFlap: over CI's nine pairs, with each run's figure
// scattered by 10 % (sub-millisecond means at -c 1 and CPU-bound -c 64 runs
// on a shared 2-core machine moved by that much and more), a ratio inside
// ±10 % is DEVIATED in well under 0.5 % of trials, even close to the bound;
// a ratio 30 % beyond it is DEVIATED in nearly all trials with 5 % scatter.
func TestPairsVerdictDoesNotFlap(t *testing.T) {
	rate := func(noise, slowdown float64, trials int) (pairs, interval float64) {
		rng := rand.New(rand.NewPCG(5, 6))
		var p, i int
		for range trials {
			a, b := alternatedRuns(rng, 9, noise, slowdown)
			ratios := neighbourRatios(a, b)
			ci := bootstrapRatio(ratios, rng)
			if pairsVerdict(ratios, ci, 0.9, 1.1) == verdictDeviated {
				p++
			}
			if intervalVerdict(ci, 0.9, 1.1) == verdictDeviated {
				i++
			}
		}
		return float64(p) / float64(trials), float64(i) / float64(trials)
	}
	for _, slowdown := range []float64{0, 0.05, 0.08} {
		p, i := rate(0.10, slowdown, 600)
		t.Logf("%+.0f %%, 10 %% scatter: DEVIATED in %.2f %% of trials (the interval alone: %.2f %%)", slowdown*100, p*100, i*100)
		if p > 0.005 {
			t.Errorf("%+.0f %%, 10 %% scatter: DEVIATED in %.2f %% of trials, want under 0.5 %%", slowdown*100, p*100)
		}
	}
	if p, _ := rate(0.05, 0.30, 300); p < 0.9 {
		t.Errorf("30 %% slower, 5 %% scatter: DEVIATED in %.1f %% of trials, want at least 90 %%", p*100)
	}
}
