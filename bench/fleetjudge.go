package main

import (
	"fmt"
	"strings"
)

// judgeFleet makes a row for each instance, with its verdict.
func judgeFleet(setup []string, groups fleetGroupCheck, runs []fleetInstanceRun) []scenario {
	predicted := fleetRoundTrips * latencyDelay * 1000
	var rows []scenario
	for i, run := range runs {
		timing := run.timing
		sc := scenario{Name: fmt.Sprintf("fleet: instance %d", i+1), Build: "chaos", Setup: setup, DelaySeconds: latencyDelay,
			Hypothesis: fleetHypothesis, Summary: run.ab["experiment"], Fleet: &timing,
			Runs: []measurement{{AB: run.ab["experiment"]}, {AB: run.ab["control"]}}}
		if len(groups.differ) == 0 {
			sc.judge(true, fmt.Sprintf("%d sessions asked, each in the same group on every instance", groups.asked))
		} else {
			sc.judge(false, fmt.Sprintf("%d of %d sessions asked in different groups on different instances: %s",
				len(groups.differ), groups.asked, strings.Join(groups.differ, ", ")))
		}
		sc.judge(timing.FirstDelayMS != nil && *timing.FirstDelayMS <= ms(fleetReact), fmt.Sprintf(
			"instance %s: ctl start wrote version %d in %.1f ms; the instance applied it at %s and delayed its first page at %s after ctl start began",
			timing.Instance, timing.Version, timing.RecordStartMS, msOrNone(timing.AppliedMS), msOrNone(timing.FirstDelayMS)))
		sc.judge(timing.LastDelayEndMS != nil && *timing.LastDelayEndMS <= ms(fleetReact), fmt.Sprintf(
			"after ctl start's SIGTERM: the instance dropped the version at %s and its last delay had ended at %s; ctl exited at %.1f ms",
			msOrNone(timing.VersionGoneMS), msOrNone(timing.LastDelayEndMS), timing.CtlExitedMS))
		failed := 0
		for _, ab := range run.ab {
			failed += ab.FailedConnect + ab.FailedReceive + ab.FailedExcept + ab.Non2xx
		}
		sc.judge(failed == 0, fmt.Sprintf("%d failed or non-2xx responses", failed))
		exp, ctl := run.experiment, run.control
		sc.judge(ctl.DelaysInjected == 0 && ctl.ErrorsInjected == 0, fmt.Sprintf("control group: %d searches, %d delays, %d errors injected", ctl.Searches, ctl.DelaysInjected, ctl.ErrorsInjected))
		if exp.Searches == 0 || ctl.Searches == 0 {
			sc.judge(false, fmt.Sprintf("the instance counted %d searches in the experiment group and %d in the control group", exp.Searches, ctl.Searches))
			rows = append(rows, sc)
			continue
		}
		// The service's own time per search, as in the blast radius: ab's
		// mean here spans the seconds before the start and after the stop.
		delta, low, high := searchDifference(exp, ctl)
		sc.DeltaMS, sc.PredictedMS = &delta, &predicted
		sc.judgeDifference(delta, low, high, predicted, fleetDeltaTolerance, fmt.Sprintf(
			"service time per search: experiment %.3f ms (%d searches, %.2f delays each), control %.3f ms (%d searches)",
			exp.MeanSearchMS, exp.Searches, float64(exp.DelaysInjected)/float64(exp.Searches), ctl.MeanSearchMS, ctl.Searches))
		rows = append(rows, sc)
	}
	return rows
}

func msOrNone(v *float64) string {
	if v == nil {
		return fmt.Sprintf("— (not within the %g s of readings)", fleetReadings.Seconds())
	}
	return fmt.Sprintf("%.1f ms", *v)
}
