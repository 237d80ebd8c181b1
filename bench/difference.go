package main

import (
	"fmt"
	"math"

	"example.com/shopsession/chaos"
	"example.com/shopsession/internal/stats"
)

// searchDifference is the experiment group's mean service time per search
// minus the control group's, in ms, with its 95 % interval (Welch's t from
// the groups' sums of squares). A quick bench counts a handful of delayed
// searches, and one page a loaded machine held back for 15 ms moves their
// mean by more than the ±0.5 % judged: the interval says so instead of the
// verdict.
func searchDifference(exp, ctl chaos.GroupFigures) (delta, low, high float64) {
	delta = (exp.SearchSeconds/float64(exp.Searches) - ctl.SearchSeconds/float64(ctl.Searches)) * 1000
	if exp.Searches < 2 || ctl.Searches < 2 {
		return delta, math.Inf(-1), math.Inf(1)
	}
	ve, vc := meanVariance(exp), meanVariance(ctl)
	se := math.Sqrt(ve + vc)
	if se == 0 {
		return delta, delta, delta
	}
	// Welch–Satterthwaite degrees of freedom.
	df := (ve + vc) * (ve + vc) / (ve*ve/float64(exp.Searches-1) + vc*vc/float64(ctl.Searches-1))
	half := stats.StudentT975(int(df)) * se * 1000
	return delta, delta - half, delta + half
}

// meanVariance is the variance of a group's mean search time, in s².
func meanVariance(g chaos.GroupFigures) float64 {
	n := float64(g.Searches)
	mean := g.SearchSeconds / n
	return max(0, (g.SearchSquareSeconds-n*mean*mean)/(n-1)) / n
}

// judgeDifference judges a searchDifference against predicted ms within
// ±tolerance of it, as stats.IntervalVerdict judges an interval.
func (s *scenario) judgeDifference(delta, low, high, predicted, tolerance float64, what string) {
	finding := fmt.Sprintf("%s; difference %.3f ms (95 %% CI %.3f to %.3f), predicted %.3f ms (%+.3f %%, want within ±%.1f %%)",
		what, delta, low, high, predicted, (delta-predicted)/predicted*100, tolerance*100)
	s.judgeByInterval(stats.IntervalVerdict(low, high, predicted*(1-tolerance), predicted*(1+tolerance)), finding,
		"too few searches, or too noisy a machine, to tell")
}
