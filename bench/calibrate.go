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

func (b *bench) calibrationScenario(ctx context.Context) (scenario, error) {
	sc := scenario{Name: "calibration", Build: "production vs slow (-tags benchslow)",
		Hypothesis: "the comparison flags the calibration build's known ~2 % of CPU per request, and A/A relabellings of the production runs in at most 5 % of trials"}
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
	// False alarms above 5 % make the method unsound: that fails the bench.
	// A slowdown it cannot see says the runs scatter too much to resolve
	// 2 %, as chaos-off's INCONCLUSIVE does.
	rate := aaFlagRate(aCPU, aaTrials)
	sc.judge(rate <= 0.05, fmt.Sprintf("A/A: %.1f %% of %d random relabellings of the %d production runs flagged a difference", rate*100, aaTrials, len(aCPU)))
	sc.Findings = append(sc.Findings, fmt.Sprintf("slow/production CPU per request %s: %s", slowCI,
		map[bool]string{true: "detected", false: "not detected: the runs scatter too much to resolve it"}[slowCI.Low > 1]))
	if slowCI.Low <= 1 && sc.Verdict == "PASS" {
		sc.Verdict = "INCONCLUSIVE"
	}
	return sc, nil
}

// aaFlagRate splits runs at random into an A B A … A sequence of as many
// pairs as they allow, trials times, and returns the share of comparisons
// whose interval excludes 1.
func aaFlagRate(runs []float64, trials int) float64 {
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
		if bootstrapRatio(neighbourRatios(a, b), rng).differs() {
			flagged++
		}
	}
	return float64(flagged) / float64(trials)
}
