package chaos

import (
	"bytes"
	"cmp"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
)

// The report of a ctl run: one HTML file that needs nothing but itself (its
// style and charts are inline, and its policy forbids loading anything), so
// it can be attached to a ticket or opened years later. It is made from the
// journal alone, so a journal cut short by a killed runner still gives one.

//go:embed report.html.tmpl
var reportHTML string

// reportTemplate is parsed when a report is first written, not at start:
// parsed, it is heap that every garbage collection of a chaos build would
// scan, report or none.
var reportTemplate = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("report").Parse(reportHTML))
})

// absent is how the report shows a value the journal has not got.
const absent = "—"

// reportView is what the template shows, every value already written out,
// so that the template holds no logic beyond the order of the page.
type reportView struct {
	Verdict, VerdictClass, Message, Exit string
	Title, Hypothesis, File, Run, Seed   string
	DryRun                               bool
	Start, End, Duration                 string
	Rollback                             string
	Steps                                []*reportStep
	Checks                               []reportCheck
	Instances, Builds                    []string
	Events                               int
}

type reportStep struct {
	N                                     int
	Started                               bool
	Name, Percent, Duration, Version      string
	Metric, MetricLabel                   string
	Prediction, Difference, Interval      string
	Samples, Verdict, VerdictClass, Ended string
	Abort, Would, Config                  string
	Bar, Chart                            template.HTML

	start, end time.Time // end: zero while the journal has no step_end
	begun      *JournalEvent
	samples    []JournalEvent
	abort      *JournalEvent
	judged     *JournalEvent
}

type reportCheck struct {
	Phase, At, Holds, HoldsClass string
	Probes                       []reportProbe
}

type reportProbe struct {
	Name, What, Group, Value, Bounds, Searches, Holds, HoldsClass, Error string
}

// writeReport writes the HTML report of the run that events journal, in the
// order they happened; any prefix of a journal makes a report.
func writeReport(w io.Writer, events []JournalEvent) error {
	var buf bytes.Buffer
	if err := reportTemplate().Execute(&buf, buildReport(events)); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

func buildReport(events []JournalEvent) *reportView {
	v := &reportView{Events: len(events), Title: absent, File: absent, Run: absent, Seed: absent,
		Start: absent, End: absent, Duration: absent, Rollback: absent}
	if len(events) == 0 {
		v.Verdict, v.VerdictClass = "DID NOT FINISH", "unfinished"
		v.Message = "The journal has no events: the runner stopped before it wrote any."
		return v
	}
	t0 := events[0].At
	var end *JournalEvent
	probeMetric := map[string]string{} // an abort names its probe; its unit is the probe's metric's
	steps := map[int]*reportStep{}
	var current *reportStep // the step started last
	planned := 0
	for i := range events {
		ev := &events[i]
		v.Instances = appendNew(v.Instances, ev.Instances...)
		v.Builds = appendNew(v.Builds, ev.Builds...)
		v.Run, v.Seed, v.DryRun = ev.Run, fmt.Sprint(ev.Seed), v.DryRun || ev.DryRun
		if ev.Step > 0 {
			st := steps[ev.Step]
			if st == nil {
				st = &reportStep{N: ev.Step}
				steps[ev.Step] = st
			}
			st.add(ev)
			if ev.Event == "step_start" {
				current = st
			}
			continue
		}
		switch ev.Event {
		case "run_start":
			t0 = ev.At
			v.Title, v.Hypothesis, v.File, planned = ev.Title, ev.Hypothesis, ev.File, ev.Steps
		case "steady_state":
			for _, p := range ev.Probes {
				if p.Metric != "" {
					probeMetric[p.Name] = p.Metric
				}
			}
			v.Checks = append(v.Checks, steadyCheck(ev))
		case "rollback":
			// The runner writes no step_end for the step the run ends in:
			// the rollback ends it.
			if current != nil && current.end.IsZero() {
				current.end, current.Ended = ev.At, "stopped by the rollback"
			}
			v.Rollback = ev.Reason
			if ev.StoppedVersion != 0 {
				v.Rollback += fmt.Sprintf(" (stopped version %d)", ev.StoppedVersion)
			}
		case "run_end":
			end = ev
		}
	}
	v.Start = reportTime(t0)
	last := events[len(events)-1].At
	v.End = reportTime(last)
	v.Duration = fmt.Sprintf("%.1f s", last.Sub(t0).Seconds())
	if end != nil {
		v.Verdict, v.Message = cmp.Or(end.Verdict, "UNKNOWN"), end.Message
		if end.Exit != nil {
			v.Exit = fmt.Sprintf("exit %d", *end.Exit)
		}
	} else {
		v.Verdict, v.VerdictClass = "DID NOT FINISH", "unfinished"
		v.Message = fmt.Sprintf("The journal ends at %s with %s and no run_end: the runner was killed, or is still running. Check that the experiment was stopped (ctl status).",
			reportTime(last), events[len(events)-1].Event)
		v.End = absent + " (last event " + reportTime(last) + ")"
	}
	if v.VerdictClass == "" {
		v.VerdictClass = strings.ToLower(v.Verdict)
	}
	// The steps the file has and the run never reached are listed too; the
	// cap keeps a corrupt count from listing millions.
	for n := 1; n <= min(planned, 1000); n++ {
		if steps[n] == nil {
			steps[n] = &reportStep{N: n}
		}
	}
	for _, n := range slices.Sorted(maps.Keys(steps)) {
		steps[n].fill(t0, v.DryRun, probeMetric)
		v.Steps = append(v.Steps, steps[n])
	}
	return v
}

// add takes in one event of the step.
func (st *reportStep) add(ev *JournalEvent) {
	switch ev.Event {
	case "step_start":
		st.Started, st.start, st.Name, st.begun, st.Metric = true, ev.At, ev.Name, ev, ev.Metric
		st.Percent = fmt.Sprintf("%g %%", ev.SessionsPercent)
		st.Duration = fmt.Sprintf("%g s", ev.DurationSeconds)
		st.Version = fmt.Sprint(ev.Version)
		st.Config = indentJSON(ev.Config)
	case "sample":
		st.samples = append(st.samples, *ev)
		st.Metric = cmp.Or(st.Metric, ev.Metric)
	case "abort":
		st.abort = ev
	case "judgement":
		st.judged, st.Metric = ev, ev.Metric
	case "step_end":
		st.end, st.Ended = ev.At, ev.Reason
	}
}

// fill turns a step's events into what the report shows of it.
func (st *reportStep) fill(t0 time.Time, dryRun bool, probeMetric map[string]string) {
	for _, p := range []*string{&st.Name, &st.Percent, &st.Duration, &st.Version, &st.Prediction,
		&st.Difference, &st.Interval, &st.Samples} {
		if *p == "" {
			*p = absent
		}
	}
	if !st.Started {
		st.Name, st.Verdict, st.VerdictClass = "not run", "NOT RUN", "none"
		return
	}
	if j := st.judged; j != nil {
		st.Prediction, st.MetricLabel = predictionText(j, dryRun), metricLabel(j.Metric)
		st.Difference = formatValue(j.Metric, j.Difference, true)
		st.Interval = formatInterval(j.Metric, j.Low, j.High)
		st.Samples = fmt.Sprint(j.Samples)
		st.Verdict = j.Verdict
		st.Bar = intervalBar(j, dryRun)
	} else {
		st.Verdict = "NOT JUDGED"
		if st.abort != nil {
			st.Verdict = "ABORTED"
		}
		st.Samples = fmt.Sprint(len(st.samples))
		if b := st.begun; b.Predicted != nil || b.Tolerance != nil { // a step_start may carry its prediction
			st.Prediction, st.MetricLabel = predictionText(b, dryRun), metricLabel(b.Metric)
		}
	}
	st.VerdictClass = strings.ToLower(strings.ReplaceAll(st.Verdict, " ", "-"))
	end := st.end
	if end.IsZero() {
		st.Ended = "no step_end in the journal: the step did not finish"
		if n := len(st.samples); n > 0 {
			end = st.samples[n-1].At
		}
	}
	var bound *float64 // drawn when the abort's probe measured the chart's metric
	if a := st.abort; a != nil {
		m := probeMetric[a.Probe]
		if m == st.Metric {
			bound = a.Bound
		}
		over := "over the " + a.Group + " group"
		if a.Group == "prometheus" {
			over = "from Prometheus"
		}
		st.Abort = fmt.Sprintf("Aborted at %.1f s: probe %q %s measured %s, beyond its bound %s.",
			a.At.Sub(t0).Seconds(), a.Probe, over, formatValue(m, a.Value, false), formatValue(m, a.Bound, false))
		if a.Probe == "" { // not a stop condition: the step's experiment ended under it
			st.Abort = fmt.Sprintf("Aborted at %.1f s: %s.", a.At.Sub(t0).Seconds(), cmp.Or(a.Reason, "no reason given"))
		}
	}
	if dryRun {
		var d, e int64
		for _, s := range st.samples {
			if s.Would != nil {
				d, e = d+s.Would.Delays, e+s.Would.Errors
			}
		}
		st.Would = fmt.Sprintf("%d delays and %d errors", d, e)
	}
	st.Chart = seriesChart(st, t0, end, bound)
}

func predictionText(j *JournalEvent, dryRun bool) string {
	tol := formatValue(j.Metric, j.Tolerance, false)
	if j.Tolerance != nil && j.Predicted != nil && *j.Predicted != 0 && j.Metric == "search_ms" {
		tol += fmt.Sprintf(" (%.3g %%)", 100**j.Tolerance/math.Abs(*j.Predicted))
	}
	if dryRun {
		return "no difference ± " + tol
	}
	return formatValue(j.Metric, j.Predicted, true) + " ± " + tol
}

func steadyCheck(ev *JournalEvent) reportCheck {
	c := reportCheck{Phase: ev.Phase, At: reportTime(ev.At), Holds: absent, HoldsClass: "none"}
	if ev.Holds != nil {
		c.Holds, c.HoldsClass = holdsTag(*ev.Holds)
	}
	for _, p := range ev.Probes {
		r := reportProbe{Name: p.Name, What: p.Metric, Group: p.Group, Value: formatValue(p.Metric, p.Value, false),
			Bounds: bounds(p.Metric, p.Min, p.Max), Searches: absent, Error: p.Error}
		if p.Query != "" {
			r.What = "PromQL: " + p.Query
		}
		if p.Searches > 0 {
			r.Searches = fmt.Sprint(p.Searches)
		}
		r.Holds, r.HoldsClass = holdsTag(p.Holds)
		c.Probes = append(c.Probes, r)
	}
	return c
}

func holdsTag(ok bool) (string, string) {
	if ok {
		return "holds", "pass"
	}
	return "does not hold", "deviated"
}

func bounds(metric string, lo, hi *float64) string {
	switch {
	case lo != nil && hi != nil:
		return formatValue(metric, lo, false) + " to " + formatValue(metric, hi, false)
	case lo != nil:
		return "≥ " + formatValue(metric, lo, false)
	case hi != nil:
		return "≤ " + formatValue(metric, hi, false)
	}
	return absent
}

func reportTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000 MST") }

func indentJSON(raw json.RawMessage) string {
	var buf bytes.Buffer
	if json.Indent(&buf, raw, "", "  ") != nil {
		return string(raw)
	}
	return buf.String()
}

func appendNew(list []string, more ...string) []string {
	for _, s := range more {
		if !slices.Contains(list, s) {
			list = append(list, s)
		}
	}
	return list
}
