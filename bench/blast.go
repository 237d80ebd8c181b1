package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"example.com/shopsession/chaos"
)

// The blast-radius scenario: one chaos process delays the Redis round trips
// of half the sessions; two ab clients, one with a session in each group,
// search at the same time for the same seconds. Measured side by side, the
// comparison is free of the machine's drift between sequential runs. It runs
// BENCH_PAIRS times, between production steady runs.
const (
	blastPercent = 50
	blastSeed    = 14
	// blastControlTolerance bounds the control group's mean against the
	// steady state's; blastDeltaTolerance bounds the experiment group's
	// excess over the control group against the predicted delay.
	blastControlTolerance = 0.10
	blastDeltaTolerance   = 0.005
)

// blastRadiusScenarios returns a row for each group. The blast runs
// alternate with steady runs of the production build (A B A … A), and each
// control-group mean is compared with the steady runs either side of it, as
// the chaos-off runs are: on a shared machine, sub-millisecond means drift by
// more than the 10 % the hypothesis allows between runs minutes apart, so
// the control group's verdict is judged on those ratios over BENCH_PAIRS
// runs (judgePairs), and scatter makes it INCONCLUSIVE, not DEVIATED.
func (b *bench) blastRadiusScenarios(ctx context.Context) ([]scenario, error) {
	env := []string{"CHAOS=latency", "CHAOS_DELAY_SECONDS=" + formatSeconds(latencyDelay),
		"CHAOS_SESSIONS_PERCENT=" + strconv.Itoa(blastPercent), "CHAOS_SEED=" + strconv.Itoa(blastSeed)}
	app, err := b.start(ctx, b.chaosBinary, env)
	if err != nil {
		return nil, fmt.Errorf("blast radius: %w", err)
	}
	defer app.stop()
	cookies, err := cookiesByGroup(app)
	if err != nil {
		return nil, err
	}
	var steady []measurement
	var runs []*blastRun
	for i := range b.pairs + 1 {
		m, err := b.measure(ctx, fmt.Sprintf("blast radius: steady %d/%d", i+1, b.pairs+1), b.prodBinary, nil)
		if err != nil {
			return nil, err
		}
		steady = append(steady, m)
		if i == b.pairs {
			break
		}
		run, err := b.blastRadiusRun(ctx, app, cookies, fmt.Sprintf("blast radius %d/%d (two clients at once)", i+1, b.pairs))
		if err != nil {
			return nil, err
		}
		runs = append(runs, run)
	}
	if err := app.stop(); err != nil {
		return nil, fmt.Errorf("blast radius: stop: %w", err)
	}
	setup := append(env, fmt.Sprintf("two ab clients at once: %s and %s", cookies["experiment"], cookies["control"]))
	return judgeBlastRadius(setup, steady, runs), nil
}

// cookiesByGroup finds one session in each group, by asking the service.
func cookiesByGroup(app *appProcess) (map[string]string, error) {
	cookies := map[string]string{}
	for i := 0; len(cookies) < 2; i++ {
		if i == 1000 {
			return nil, fmt.Errorf("blast radius: no session of 1000 in each group: %v", cookies)
		}
		id := fmt.Sprintf("blast-%d", i)
		g, err := app.chaosStatus(id)
		if err != nil {
			return nil, fmt.Errorf("blast radius: %w", err)
		}
		if g.Session == nil {
			return nil, fmt.Errorf("blast radius: GET /debug/chaos?session=%s does not say the group", id)
		}
		if _, seen := cookies[g.Session.Group]; !seen {
			cookies[g.Session.Group] = "sessionID=" + id
		}
	}
	return cookies, nil
}

// blastRun is what the two clients measured, and the service's counters of
// each group over the same seconds.
type blastRun struct {
	ab                  map[string]abResult
	experiment, control chaos.GroupFigures
}

// blastRadiusRun runs the two clients at once against the chaos process.
func (b *bench) blastRadiusRun(ctx context.Context, app *appProcess, cookies map[string]string, label string) (*blastRun, error) {
	if err := b.redis.flush(ctx); err != nil {
		return nil, fmt.Errorf("blast radius: clear the service's keys: %w", err)
	}
	for _, cookie := range cookies {
		for range warmUpRequests / 10 {
			if _, _, err := app.search("Apples", cookie); err != nil {
				return nil, fmt.Errorf("blast radius: warm-up: %w", err)
			}
		}
	}
	before, err := app.chaosStatus("")
	if err != nil {
		return nil, fmt.Errorf("blast radius: %w", err)
	}

	type abDone struct {
		group string
		ab    abResult
		err   error
	}
	done := make(chan abDone, 2)
	b.progress.start(label, b.seconds)
	for group, cookie := range cookies {
		dir := filepath.Join(b.workDir, "blast-"+group)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		go func() {
			r, err := runAB(ctx, abOptions{url: app.url + "/search", seconds: b.seconds, concurrency: b.concurrency,
				postFile: b.postFile, cookie: cookie}, dir)
			done <- abDone{group, r, err}
		}()
	}
	results := map[string]abResult{}
	for range 2 {
		d := <-done
		if d.err != nil {
			b.progress.stop()
			return nil, fmt.Errorf("blast radius %s: %w", d.group, d.err)
		}
		results[d.group] = d.ab
	}
	b.progress.stop()
	after, err := app.chaosStatus("")
	if err != nil {
		return nil, fmt.Errorf("blast radius: %w", err)
	}
	run := &blastRun{ab: results,
		experiment: groupBetween(after.Groups["experiment"], before.Groups["experiment"]),
		control:    groupBetween(after.Groups["control"], before.Groups["control"])}
	if run.experiment.Searches == 0 || run.control.Searches == 0 {
		return nil, fmt.Errorf("blast radius: the chaos build counted %d searches in the experiment group and %d in the control group", run.experiment.Searches, run.control.Searches)
	}
	return run, nil
}

// judgeBlastRadius makes the two rows and their verdicts.
func judgeBlastRadius(setup []string, steady []measurement, runs []*blastRun) []scenario {
	var exp, ctl chaos.GroupFigures
	control := scenario{Name: "blast radius: control", Build: "chaos", Setup: setup,
		Hypothesis: fmt.Sprintf("no fault reaches the control group, and its mean is within %.0f %% of the steady state's, over %d runs, each against the production runs either side of it: held if the 95 %% interval of the ratio lies within %.2f–%.2f, deviated if every run lies beyond the same bound, else inconclusive",
			blastControlTolerance*100, len(runs), 1-blastControlTolerance, 1+blastControlTolerance)}
	experiment := scenario{Name: "blast radius: experiment", Build: "chaos", Setup: setup, DelaySeconds: latencyDelay,
		Hypothesis: fmt.Sprintf("the experiment group's mean time per search minus the control group's, in the same seconds, = %s s × round trips per search, within ±%.1f %% by its 95 %% interval",
			formatSeconds(latencyDelay), blastDeltaTolerance*100)}
	for _, run := range runs {
		exp, ctl = groupSum(exp, run.experiment), groupSum(ctl, run.control)
		control.Runs = append(control.Runs, measurement{AB: run.ab["control"]})
		experiment.Runs = append(experiment.Runs, measurement{AB: run.ab["experiment"]})
	}
	mean := func(m measurement) float64 { return m.AB.MeanMS }
	ratios := neighbourRatios(figures(steady, mean), figures(control.Runs, mean))
	steadySummary := summarize(steady)
	control.Summary, experiment.Summary = summarize(control.Runs), summarize(experiment.Runs)
	control.DeltaMS = ptr(control.Summary.MeanMS - steadySummary.MeanMS)
	control.judge(ctl.Searches > 0 && ctl.DelaysInjected == 0 && ctl.ErrorsInjected == 0 && ctl.FailedReads == 0, fmt.Sprintf(
		"control group: %d searches, %d delays, %d errors injected, %d failed reads", ctl.Searches, ctl.DelaysInjected, ctl.ErrorsInjected, ctl.FailedReads))
	control.judgePairs(ratios, 1-blastControlTolerance, 1+blastControlTolerance, fmt.Sprintf(
		"ab mean against the steady runs either side (steady median %.3f ms):", steadySummary.MeanMS))

	// The service's own time per search, per group: ab's mean divides its
	// whole -t by the requests it completed, so the request in flight when
	// time runs out adds up to one delay over n, too much for ±0.5 %.
	if exp.Searches == 0 || ctl.Searches == 0 {
		experiment.judge(false, fmt.Sprintf("the chaos build counted %d searches in the experiment group and %d in the control group", exp.Searches, ctl.Searches))
		return []scenario{control, experiment}
	}
	perSearch := float64(exp.DelaysInjected) / float64(exp.Searches)
	predicted := latencyDelay * 1000 * perSearch
	experiment.DeltaMS, experiment.PredictedMS = ptr(experiment.Summary.MeanMS-steadySummary.MeanMS), &predicted
	delta, low, high := searchDifference(exp, ctl)
	experiment.judgeDifference(delta, low, high, predicted, blastDeltaTolerance, fmt.Sprintf(
		"service time per search: experiment %.3f ms (%d searches, %.2f delays each), control %.3f ms (%d searches); ab medians %.3f and %.3f ms",
		exp.MeanSearchMS, exp.Searches, perSearch, ctl.MeanSearchMS, ctl.Searches, experiment.Summary.MeanMS, control.Summary.MeanMS))
	return []scenario{control, experiment}
}
