package chaos

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"time"

	"example.com/shopsession/internal/stats"
)

// What ctl run measures: the instances' heartbeats, read every second, as
// each group's pages in that second, summed over the instances running the
// step; the probes of the steady state over a window of them; and the
// judgement of a step's prediction on the per-second differences between
// the groups.

const runTick = time.Second

// minCoverage is the share of a step's seconds that must have pages of
// both groups for its judgement to pass.
const minCoverage = 0.6

// tick is one reading's new pages, by group.
type tick struct {
	at     time.Time
	groups map[string]GroupFigures
}

// meter turns the cumulative figures of the instances running one version
// into ticks.
type meter struct {
	version int64
	last    map[string]map[string]GroupFigures
	ticks   []tick
}

func newMeter(version int64) *meter {
	return &meter{version: version, last: map[string]map[string]GroupFigures{}}
}

// read adds the pages the instances counted since the last reading.
func (m *meter) read(st FleetStatus, at time.Time) tick {
	t := tick{at: at, groups: map[string]GroupFigures{}}
	for _, is := range st.Instances {
		if is.Version != m.version {
			continue
		}
		prev := m.last[is.Instance]
		for g, fig := range is.Groups {
			// An instance restarted under the same name counts from 0.
			if fig.Searches < prev[g].Searches {
				prev = nil
			}
			t.groups[g] = sumFigures(t.groups[g], minusFigures(fig, prev[g]))
		}
		m.last[is.Instance] = is.Groups
	}
	m.ticks = append(m.ticks, t)
	return t
}

// since sums the ticks read after from, by group; "all" sums the groups.
func (m *meter) since(from time.Time) map[string]GroupFigures {
	out := map[string]GroupFigures{}
	for _, t := range m.ticks {
		if t.at.After(from) {
			for g, f := range t.groups {
				out[g] = sumFigures(out[g], f)
				out[groupAll] = sumFigures(out[groupAll], f)
			}
		}
	}
	return out
}

const groupAll = "all"

func minusFigures(a, b GroupFigures) GroupFigures {
	return GroupFigures{Searches: a.Searches - b.Searches, FailedReads: a.FailedReads - b.FailedReads,
		DegradedSearches: a.DegradedSearches - b.DegradedSearches, DelaysInjected: a.DelaysInjected - b.DelaysInjected,
		ErrorsInjected: a.ErrorsInjected - b.ErrorsInjected, SearchSeconds: a.SearchSeconds - b.SearchSeconds,
		SearchSquareSeconds: a.SearchSquareSeconds - b.SearchSquareSeconds,
		DelaysWouldInject:   a.DelaysWouldInject - b.DelaysWouldInject, ErrorsWouldInject: a.ErrorsWouldInject - b.ErrorsWouldInject}
}

// sample is a tick as the journal has it, in the prediction's metric.
func sample(t tick, metric string) (exp, ctl *GroupSample) {
	of := func(f GroupFigures) *GroupSample {
		s := &GroupSample{Searches: f.Searches}
		if f.Searches > 0 {
			s.Value = runMetrics[metric](f)
		}
		return s
	}
	return of(t.groups[experimentGroup.String()]), of(t.groups[controlGroup.String()])
}

// judge measures a step's prediction on its ticks: the mean of the
// per-second differences between the groups, with the bootstrap interval,
// against the predicted difference ± its tolerance; a dry run against no
// difference.
//
// A step whose seconds with pages of both groups are fewer than
// minCoverage of its seconds is INCONCLUSIVE whatever its interval: the
// seconds missing may be the ones that would have deviated.
func judge(ticks []tick, p prediction, dry bool, seconds int) JournalEvent {
	var diffs []float64
	for _, t := range ticks {
		exp, ctl := sample(t, p.Metric)
		if exp.Searches > 0 && ctl.Searches > 0 {
			diffs = append(diffs, exp.Value-ctl.Value)
		}
	}
	want := p.Difference
	if dry {
		want = 0
	}
	ci := stats.BootstrapMean(diffs, stats.NewRand())
	verdict := stats.IntervalVerdict(ci.Low, ci.High, want-p.Tolerance, want+p.Tolerance)
	if float64(len(diffs)) < minCoverage*float64(seconds) {
		verdict = stats.Inconclusive
	}
	held := verdict == stats.Pass
	return JournalEvent{Event: "judgement", Metric: p.Metric, Predicted: &want, Tolerance: &p.Tolerance,
		Difference: finite(ci.Mean), Low: finite(ci.Low), High: finite(ci.High), Samples: ci.N, Verdict: verdict, Held: &held}
}

// finite is v, or nil when it is not a number (too few samples).
func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// probeAt judges one probe: a fleet probe on group's figures, against the
// experiment group's bounds when group is it; a Prometheus probe by its
// query. judged is false when there were too few pages to say.
func (r *runner) probeAt(ctx context.Context, pr probe, figs map[string]GroupFigures, group string) (res ProbeResult, judged bool) {
	res = ProbeResult{Name: pr.Name, Metric: pr.Metric, Query: pr.PromQuery, Group: group, Min: pr.Min, Max: pr.Max}
	if group == experimentGroup.String() {
		res.Min, res.Max = pr.ExpMin, pr.ExpMax
	}
	var v float64
	if pr.PromQuery != "" {
		res.Group = "prometheus"
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var err error
		v, err = queryPrometheus(qctx, http.DefaultClient, pr.PromURL, pr.PromQuery)
		cancel()
		if err != nil {
			res.Error = err.Error()
			return res, true
		}
	} else {
		f := figs[group]
		res.Searches = f.Searches
		if f.Searches < r.f.Steady.MinSearches {
			res.Error = fmt.Sprintf("%d pages measured, want %d to judge", f.Searches, r.f.Steady.MinSearches)
			return res, false
		}
		v = runMetrics[pr.Metric](f)
	}
	res.Value = &v
	res.Holds = (res.Min == nil || v >= *res.Min) && (res.Max == nil || v <= *res.Max)
	return res, true
}

// steadyHolds judges every probe over all pages, as before the first step
// and after the rollback: a probe that could not be judged does not hold.
func (r *runner) steadyHolds(ctx context.Context, figs map[string]GroupFigures) ([]ProbeResult, bool) {
	holds := true
	var out []ProbeResult
	for _, pr := range r.f.Steady.Probes {
		res, _ := r.probeAt(ctx, pr, figs, groupAll)
		holds = holds && res.Holds
		out = append(out, res)
	}
	return out, holds
}

// stopCondition judges the probes during a step: the control group against
// the steady state, the experiment group against its own bounds. It returns
// the first that does not hold, judged on enough pages.
func (r *runner) stopCondition(ctx context.Context, figs map[string]GroupFigures) *ProbeResult {
	for _, pr := range r.f.Steady.Probes {
		groups := []string{controlGroup.String()}
		if pr.ExpMin != nil || pr.ExpMax != nil {
			groups = append(groups, experimentGroup.String())
		}
		if pr.PromQuery != "" {
			groups = groups[:1]
		}
		for _, g := range groups {
			if res, judged := r.probeAt(ctx, pr, figs, g); judged && !res.Holds {
				return &res
			}
		}
	}
	return nil
}

func describeProbes(res []ProbeResult) string {
	s := ""
	for i, p := range res {
		if i > 0 {
			s += ", "
		}
		s += describeProbe(p)
	}
	return s
}

func describeProbe(p ProbeResult) string {
	what := p.Name
	if p.Value == nil {
		return fmt.Sprintf("%s: %s", what, p.Error)
	}
	s := fmt.Sprintf("%s %s %.4g", what, p.Group, *p.Value)
	if p.Min != nil {
		s += fmt.Sprintf(" ≥ %.4g", *p.Min)
	}
	if p.Max != nil {
		s += fmt.Sprintf(" ≤ %.4g", *p.Max)
	}
	if !p.Holds {
		s += " (does not hold)"
	}
	return s
}
