package main

import (
	"context"
	"fmt"
	"math/rand/v2"
)

// The chaos-off comparison is judged on CPU per request, from alternated
// runs, by the interval of bootstrapRatio. calibrationScenario shows that the
// method is sound on this machine in the same bench run: the production
// build against the calibration build (production plus knownSlowdown, about
// 2 %), alternated as chaos-off is, must be flagged; and the production runs
// among themselves, relabelled at random into A B A … A sequences, must be
// flagged in at most 5 % of the trials.

const aaTrials = 1000

// The A/A check's bounds. A sound method flags at most aaSoundRate of the
// relabellings; the share over one bench run's production runs scatters
// about the method's own rate, though: on simulated runs (5 % noise: normal,
// heavy-tailed, drifting, bimodal, with an outlier; 1 000 relabellings of
// each of 280 sets of ten runs) the worst set gave 5.3 %, where the interval
// without its corrections gave 17 %. So a share up to aaUnsoundRate is
// INCONCLUSIVE, and only a share above it, which noise does not make,
// fails the bench.
const (
	aaSoundRate   = 0.05
	aaUnsoundRate = 0.10
)

// aaVerdict judges the share of A/A relabellings flagged.
func aaVerdict(rate float64) string {
	switch {
	case rate <= aaSoundRate:
		return verdictPass
	case rate > aaUnsoundRate:
		return verdictDeviated
	default:
		return verdictInconclusive
	}
}

func (b *bench) calibrationScenario(ctx context.Context) (scenario, error) {
	sc := scenario{Name: "calibration", Build: "production vs slow (-tags benchslow)",
		Hypothesis: fmt.Sprintf("the comparison flags the calibration build's known ~2 %% of CPU per request, and A/A relabellings of the production runs in at most %.0f %% of trials (above %.0f %%: unsound)", aaSoundRate*100, aaUnsoundRate*100)}
	prod, err := b.start(ctx, b.prodBinary, nil)
	if err != nil {
		return sc, fmt.Errorf("calibration: %w", err)
	}
	defer prod.stop()
	slow, err := b.start(ctx, b.slowBinary, nil)
	if err != nil {
		return sc, fmt.Errorf("calibration: %w", err)
	}
	defer slow.stop()
	var a, s []measurement
	for i := range b.pairs + 1 {
		m, err := b.measureOn(ctx, prod, runSpec{label: fmt.Sprintf("calibration production %d/%d", i+1, b.pairs+1)})
		if err != nil {
			return sc, err
		}
		a = append(a, m)
		if i == b.pairs {
			break
		}
		if m, err = b.measureOn(ctx, slow, runSpec{label: fmt.Sprintf("calibration slow %d/%d", i+1, b.pairs)}); err != nil {
			return sc, err
		}
		s = append(s, m)
	}
	sc.Runs, sc.Summary = s, summarize(s)
	cpu := func(m measurement) float64 { return m.CPUPerRequestUS }
	aCPU, sCPU := figures(a, cpu), figures(s, cpu)
	sc.CPUPerRequestUS = median(sCPU)
	slowCI := bootstrapRatio(neighbourRatios(aCPU, sCPU), newRand())
	// False alarms clearly above 5 % make the method unsound: that fails the
	// bench (aaVerdict). A slowdown it cannot see says the runs scatter too
	// much to resolve 2 %, as chaos-off's INCONCLUSIVE does.
	rate := aaFlagRate(aCPU, aaTrials)
	judgeCalibration(&sc, rate, len(aCPU), slowCI)
	return sc, nil
}

// judgeCalibration records the A/A share flagged, over aaTrials
// relabellings of runs production runs, and whether the calibration build's
// slowdown was detected.
func judgeCalibration(sc *scenario, rate float64, runs int, slowCI ratioCI) {
	finding := fmt.Sprintf("A/A: %.1f %% of %d random relabellings of the %d production runs flagged a difference", rate*100, aaTrials, runs)
	switch aaVerdict(rate) {
	case verdictPass:
		sc.judge(true, finding)
	case verdictDeviated:
		sc.judge(false, finding+fmt.Sprintf(", above %.0f %%: the method is unsound here", aaUnsoundRate*100))
	default:
		sc.inconclusive(finding + fmt.Sprintf(", above %.0f %% but within the scatter of one run's share (up to %.0f %%)", aaSoundRate*100, aaUnsoundRate*100))
	}
	if slowCI.Low > 1 {
		sc.Findings = append(sc.Findings, fmt.Sprintf("slow/production CPU per request %s: detected", slowCI))
	} else {
		sc.inconclusive(fmt.Sprintf("slow/production CPU per request %s: not detected: the runs scatter too much to resolve it", slowCI))
	}
}

// aaFlagRate splits runs at random into an A B A … A sequence of as many
// pairs as they allow, trials times, and returns the share of comparisons
// whose interval excludes 1.
func aaFlagRate(runs []float64, trials int) float64 { return aaFlagRateAt(runs, trials, 0.95) }

// aaFlagRateAt is aaFlagRate for the interval at level.
func aaFlagRateAt(runs []float64, trials int, level float64) float64 {
	rng := rand.New(rand.NewPCG(1, 16))
	pairs := (len(runs) - 1) / 2
	if pairs < 3 {
		return 0
	}
	flagged := 0
	shuffled := append([]float64(nil), runs...)
	for range trials {
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		var a, b []float64
		for i := range 2*pairs + 1 {
			if i%2 == 0 {
				a = append(a, shuffled[i])
			} else {
				b = append(b, shuffled[i])
			}
		}
		if bootstrapRatioAt(neighbourRatios(a, b), rng, level).Differs() {
			flagged++
		}
	}
	return float64(flagged) / float64(trials)
}
