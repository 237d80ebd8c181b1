package chaos

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// An experiment file (YAML, or JSON, which is YAML too) as ctl run reads
// it, checked whole before anything runs; an error names the file, the line
// and the field. docs/experiment-files.md is its reference.

// runFile is an experiment file.
type runFile struct {
	path       string
	Title      string
	Hypothesis string
	Seed       uint64
	DryRun     bool
	Lease      time.Duration
	Steady     steadyState
	Steps      []runStep
	Rollback   time.Duration // how long the steady state may take to come back
}

type steadyState struct {
	Window      time.Duration
	MinSearches int64
	Probes      []probe
}

// probe is one measure of the steady state and its tolerance. A fleet
// probe reads a metric of the instances' heartbeats: over all pages before
// the first step and after the rollback, over the control group during the
// steps, and over the experiment group against ExpMin/ExpMax, the stop
// condition. A Prometheus probe is judged as its query reads, always.
type probe struct {
	Name           string
	Metric         string
	PromURL        string
	PromQuery      string
	Min, Max       *float64
	ExpMin, ExpMax *float64
}

type runStep struct {
	Name            string
	Duration        time.Duration
	SessionsPercent float64
	fault           map[string]any
	Prediction      prediction
}

// prediction is the experiment group's expected difference from the
// control group in a metric, with its tolerance, in the metric's unit.
type prediction struct {
	Metric     string
	Difference float64
	Tolerance  float64
}

// The metrics of the heartbeats a probe or a prediction reads.
var runMetrics = map[string]func(GroupFigures) float64{
	"search_ms":             func(f GroupFigures) float64 { return f.SearchSeconds / float64(f.Searches) * 1000 },
	"degraded_share":        func(f GroupFigures) float64 { return float64(f.DegradedSearches) / float64(f.Searches) },
	"failed_read_share":     func(f GroupFigures) float64 { return float64(f.FailedReads) / float64(f.Searches) },
	"recommendations_share": func(f GroupFigures) float64 { return 1 - float64(f.FailedReads)/float64(f.Searches) },
}

const metricNames = "search_ms, degraded_share, failed_read_share or recommendations_share"

func isShare(metric string) bool { return metric != "search_ms" && metric != "" }

// The fields a step's fault may not name: the step and the file set them.
var runOwned = []string{"seed", "duration_seconds", "sessions_percent", "dry_run", "run_id"}

// fileError is an error in an experiment file, at a line.
type fileError struct {
	path string
	line int
	msg  string
}

func (e *fileError) Error() string { return fmt.Sprintf("%s:%d: %s", e.path, e.line, e.msg) }

// readRunFile reads and checks an experiment file.
func readRunFile(path string) (*runFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(data) > 1<<20 {
		return nil, fmt.Errorf("%s is larger than 1 MiB", path)
	}
	return parseRunFile(path, data)
}

func parseRunFile(path string, data []byte) (*runFile, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && err != io.EOF {
		return nil, fmt.Errorf("%s: %v", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var more yaml.Node
	if err := dec.Decode(&more); err != io.EOF {
		return nil, &fileError{path, more.Line, "a second YAML document: an experiment file holds one"}
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s: empty: want an experiment (title, steady_state, steps)", path)
	}
	p := &fileParser{path: path}
	f := &runFile{path: path, Lease: 10 * time.Second, Rollback: 30 * time.Second,
		Steady: steadyState{Window: 3 * time.Second, MinSearches: 20}}
	root := doc.Content[0]
	p.fields(root, "", map[string]func(*yaml.Node, string){
		"title":      func(n *yaml.Node, at string) { f.Title = p.text(n, at) },
		"hypothesis": func(n *yaml.Node, at string) { f.Hypothesis = p.text(n, at) },
		"seed":       func(n *yaml.Node, at string) { f.Seed = p.seed(n, at) },
		"dry_run":    func(n *yaml.Node, at string) { f.DryRun = p.boolean(n, at) },
		"lease":      func(n *yaml.Node, at string) { f.Lease = p.duration(n, at, minLease, maxLease) },
		"steady_state": func(n *yaml.Node, at string) {
			p.fields(n, at, map[string]func(*yaml.Node, string){
				"window":       func(n *yaml.Node, at string) { f.Steady.Window = p.duration(n, at, time.Second, 10*time.Minute) },
				"min_searches": func(n *yaml.Node, at string) { f.Steady.MinSearches = int64(p.number(n, at, 1, 1e6, true)) },
				"probes": func(n *yaml.Node, at string) {
					p.list(n, at, func(n *yaml.Node, at string) { f.Steady.Probes = append(f.Steady.Probes, p.probe(n, at)) })
				},
			})
		},
		"steps": func(n *yaml.Node, at string) {
			p.list(n, at, func(n *yaml.Node, at string) { f.Steps = append(f.Steps, p.step(n, at)) })
		},
		"rollback": func(n *yaml.Node, at string) {
			p.fields(n, at, map[string]func(*yaml.Node, string){
				"timeout": func(n *yaml.Node, at string) { f.Rollback = p.duration(n, at, time.Second, time.Hour) },
			})
		},
	})
	switch {
	case p.err != nil:
	case strings.TrimSpace(f.Title) == "":
		p.fail(root, "title", "is required: say what the experiment is")
	case len(f.Steady.Probes) == 0:
		p.fail(root, "steady_state.probes", "is required: at least one probe says what the steady state is")
	case len(f.Steps) == 0:
		p.fail(root, "steps", "is required: at least one step injects a fault")
	}
	if p.err != nil {
		return nil, p.err
	}
	return f, nil
}

// fileParser walks the file's nodes, keeping the first error.
type fileParser struct {
	path string
	err  error
}

func (p *fileParser) fail(n *yaml.Node, at, format string, a ...any) {
	if p.err == nil {
		if at != "" {
			at += ": "
		}
		p.err = &fileError{p.path, n.Line, at + fmt.Sprintf(format, a...)}
	}
}

func join(at, name string) string {
	if at == "" {
		return name
	}
	return at + "." + name
}

// fields reads a mapping whose keys must be among known.
func (p *fileParser) fields(n *yaml.Node, at string, known map[string]func(*yaml.Node, string)) {
	if n.Kind != yaml.MappingNode {
		p.fail(n, at, "want a mapping of fields")
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		field := join(at, k.Value)
		read, ok := known[k.Value]
		switch {
		case !ok:
			p.fail(k, field, "unknown field: want one of %s", strings.Join(slices.Sorted(maps.Keys(known)), ", "))
		case seen[k.Value]:
			p.fail(k, field, "given twice")
		default:
			seen[k.Value] = true
			read(v, field)
		}
	}
}

func (p *fileParser) list(n *yaml.Node, at string, each func(*yaml.Node, string)) {
	if n.Kind != yaml.SequenceNode {
		p.fail(n, at, "want a list")
		return
	}
	for i, item := range n.Content {
		each(item, fmt.Sprintf("%s[%d]", at, i))
	}
}

func (p *fileParser) scalar(n *yaml.Node, at, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		p.fail(n, at, "want %s", want)
		return "", false
	}
	return n.Value, true
}

func (p *fileParser) text(n *yaml.Node, at string) string {
	s, _ := p.scalar(n, at, "text")
	return s
}

func (p *fileParser) boolean(n *yaml.Node, at string) bool {
	s, ok := p.scalar(n, at, "true or false")
	b, err := strconv.ParseBool(s)
	if ok && err != nil {
		p.fail(n, at, "%q: want true or false", s)
	}
	return b
}

func (p *fileParser) seed(n *yaml.Node, at string) uint64 {
	s, ok := p.scalar(n, at, "a whole number")
	v, err := strconv.ParseUint(s, 10, 64)
	if ok && err != nil {
		p.fail(n, at, "%q: want a whole number from 0 (drawn) to 2^64−1", s)
	}
	return v
}

func (p *fileParser) number(n *yaml.Node, at string, lo, hi float64, whole bool) float64 {
	s, ok := p.scalar(n, at, "a number")
	v, err := strconv.ParseFloat(s, 64)
	if ok && (err != nil || v < lo || v > hi || math.IsNaN(v) || whole && v != math.Trunc(v)) {
		kind := "a number"
		if whole {
			kind = "a whole number"
		}
		p.fail(n, at, "%q: want %s from %g to %g", s, kind, lo, hi)
	}
	return v
}

func (p *fileParser) duration(n *yaml.Node, at string, lo, hi time.Duration) time.Duration {
	s, ok := p.scalar(n, at, "a duration")
	d, err := time.ParseDuration(s)
	if ok && (err != nil || d < lo || d > hi) {
		p.fail(n, at, "%q: want a duration from %s to %s, such as 10s", s, lo, hi)
	}
	return d
}

// bound reads a probe's tolerance in the metric's unit: search_ms in ms (a
// number, or a duration such as 50ms); a share as 0.01 or 1%.
func (p *fileParser) bound(n *yaml.Node, at, metric string) *float64 {
	s, ok := p.scalar(n, at, "a number")
	v, err := metricValue(s, metric, metric == "")
	if ok && err != nil {
		p.fail(n, at, "%q: %v", s, err)
	}
	return &v
}

// metricValue reads a figure of metric: search_ms as milliseconds or a
// duration, a share as a fraction or a percentage; signed when a
// difference.
func metricValue(s, metric string, signed bool) (float64, error) {
	var v float64
	var err error
	switch {
	case metric == "":
		v, err = strconv.ParseFloat(s, 64)
	case !isShare(metric):
		var d time.Duration
		if d, err = time.ParseDuration(strings.TrimPrefix(s, "+")); err == nil {
			v = float64(d) / float64(time.Millisecond)
		} else if v, err = strconv.ParseFloat(s, 64); err != nil {
			return 0, errors.New("want milliseconds, such as 200 or 200ms")
		}
	case strings.HasSuffix(s, "%"):
		v, err = strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		v /= 100
	default:
		v, err = strconv.ParseFloat(s, 64)
	}
	switch {
	case err != nil || math.IsNaN(v) || math.IsInf(v, 0):
		return 0, errors.New("want a number")
	case isShare(metric) && math.Abs(v) > 1:
		return 0, errors.New("want a share from 0 to 1, or 0% to 100%")
	case metric == "search_ms" && math.Abs(v) > float64(time.Hour/time.Millisecond):
		return 0, errors.New("want milliseconds up to an hour")
	case !signed && v < 0:
		return 0, errors.New("want a figure of 0 or more")
	}
	return v, nil
}

func (p *fileParser) metric(n *yaml.Node, at string) string {
	s, ok := p.scalar(n, at, "a metric")
	if _, known := runMetrics[s]; ok && !known {
		p.fail(n, at, "%q: want %s", s, metricNames)
	}
	return s
}

func (p *fileParser) probe(n *yaml.Node, at string) probe {
	var pr probe
	// The metric comes first: the bounds are read in its unit.
	metricNode, metricAt := n, at
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "metric" {
				metricNode, metricAt = n.Content[i+1], join(at, "metric")
				pr.Metric = p.metric(metricNode, metricAt)
			}
		}
	}
	bound := func(dst **float64) func(*yaml.Node, string) {
		return func(n *yaml.Node, at string) { *dst = p.bound(n, at, pr.Metric) }
	}
	p.fields(n, at, map[string]func(*yaml.Node, string){
		"name":   func(n *yaml.Node, at string) { pr.Name = p.text(n, at) },
		"metric": func(*yaml.Node, string) {},
		"prometheus": func(n *yaml.Node, at string) {
			p.fields(n, at, map[string]func(*yaml.Node, string){
				"url":   func(n *yaml.Node, at string) { pr.PromURL = p.text(n, at) },
				"query": func(n *yaml.Node, at string) { pr.PromQuery = p.text(n, at) },
			})
			if err := checkPrometheusProbe(pr.PromURL, pr.PromQuery); err != nil {
				p.fail(n, at, "%v", err)
			}
		},
		"min": bound(&pr.Min), "max": bound(&pr.Max),
		"experiment_min": bound(&pr.ExpMin), "experiment_max": bound(&pr.ExpMax),
	})
	switch {
	case pr.Metric == "" && pr.PromQuery == "" && pr.PromURL == "":
		p.fail(metricNode, metricAt, "want metric (%s) or prometheus (url, query)", metricNames)
	case pr.Metric != "" && (pr.PromQuery != "" || pr.PromURL != ""):
		p.fail(n, at, "metric and prometheus both given: a probe reads one")
	case pr.Min == nil && pr.Max == nil:
		p.fail(n, at, "want min or max: the tolerance the steady state holds within")
	case pr.Min != nil && pr.Max != nil && *pr.Min > *pr.Max, pr.ExpMin != nil && pr.ExpMax != nil && *pr.ExpMin > *pr.ExpMax:
		p.fail(n, at, "a minimum above its maximum: the probe could never hold")
	case pr.Metric == "" && (pr.ExpMin != nil || pr.ExpMax != nil):
		p.fail(n, at, "experiment_min and experiment_max bound a fleet metric's experiment group; a Prometheus probe's query says what it reads")
	}
	if pr.Name == "" {
		pr.Name = pr.Metric + pr.PromQuery
	}
	return pr
}

func (p *fileParser) step(n *yaml.Node, at string) runStep {
	var st runStep
	var faultNode, predNode *yaml.Node
	p.fields(n, at, map[string]func(*yaml.Node, string){
		"name":     func(n *yaml.Node, at string) { st.Name = p.text(n, at) },
		"duration": func(n *yaml.Node, at string) { st.Duration = p.duration(n, at, minStep, time.Hour) },
		"sessions_percent": func(n *yaml.Node, at string) {
			if st.SessionsPercent = p.number(n, at, 0.001, 100, false); st.SessionsPercent == 100 {
				p.fail(n, at, "100: want a share below 100: the control group is what the experiment group is judged against")
			}
		},
		"fault":      func(n *yaml.Node, at string) { faultNode = n; st.fault = p.fault(n, at) },
		"prediction": func(n *yaml.Node, at string) { predNode = n; st.Prediction = p.prediction(n, at) },
	})
	switch {
	case p.err != nil:
	case st.Duration == 0:
		p.fail(n, join(at, "duration"), "is required, such as 10s")
	case st.SessionsPercent == 0:
		p.fail(n, join(at, "sessions_percent"), "is required: the share of the sessions in the experiment group, below 100")
	case faultNode == nil:
		p.fail(n, join(at, "fault"), "is required: the fields of PUT /debug/chaos")
	case predNode == nil:
		p.fail(n, join(at, "prediction"), "is required: the difference the experiment group is expected to show")
	default:
		// The fault as the instances will get it: what PUT would refuse,
		// the file refuses now.
		body, _ := json.Marshal(st.faultBody(1, st.Duration, false, ""))
		cfg, err := FromJSON(body)
		if err == nil && cfg.Experiment == "none" {
			err = errors.New(`experiment "none" injects nothing: a step injects a fault`)
		}
		if err != nil {
			p.fail(faultNode, join(at, "fault"), "%v", err)
		}
	}
	if st.Name == "" {
		st.Name = "step " + strings.Trim(strings.TrimPrefix(at, "steps"), "[]")
	}
	return st
}

// minStep is the shortest step: a judgement needs three seconds of both
// groups, and the stop conditions a window.
const minStep = 5 * time.Second

// fault reads a step's fault: a mapping whose keys are exactly the JSON
// fields of Config, but those the step and the file set. Exactly: Go's JSON
// decoding matches keys regardless of case (even "ſeed" for "seed"), and a
// key the file could not see as an owned one must not set one.
func (p *fileParser) fault(n *yaml.Node, at string) map[string]any {
	if n.Kind != yaml.MappingNode {
		p.fail(n, at, "want the fields of PUT /debug/chaos, such as {experiment: latency, delay_seconds: 0.1}")
		return nil
	}
	var fault map[string]any
	if err := n.Decode(&fault); err != nil {
		p.fail(n, at, "%v", strings.TrimPrefix(err.Error(), "yaml: "))
		return nil
	}
	fields := configFields()
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		switch {
		case slices.Contains(runOwned, k.Value):
			p.fail(k, join(at, k.Value), "the step and the file set it, not the fault")
		case !slices.Contains(fields, k.Value):
			p.fail(k, join(at, k.Value), "unknown field: want one of %s", strings.Join(fields, ", "))
		}
	}
	return fault
}

// configFields are the JSON names of Config's fields that a fault may set.
func configFields() []string {
	var names []string
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Anonymous {
				walk(f.Type)
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if f.IsExported() && name != "" && name != "-" && !slices.Contains(runOwned, name) {
				names = append(names, name)
			}
		}
	}
	walk(reflect.TypeFor[Config]())
	slices.Sort(names)
	return names
}

// faultBody is the step's fault as a PUT body.
func (st runStep) faultBody(seed uint64, d time.Duration, dry bool, run string) map[string]any {
	b := map[string]any{}
	for k, v := range st.fault {
		b[k] = v
	}
	b["seed"], b["duration_seconds"], b["sessions_percent"] = seed, d.Seconds(), st.SessionsPercent
	if dry {
		b["dry_run"] = true
	}
	if run != "" {
		b["run_id"] = run
	}
	return b
}

func (p *fileParser) prediction(n *yaml.Node, at string) prediction {
	var pr prediction
	var diff, tol *yaml.Node
	p.fields(n, at, map[string]func(*yaml.Node, string){
		"metric":     func(n *yaml.Node, at string) { pr.Metric = p.metric(n, at) },
		"difference": func(n *yaml.Node, _ string) { diff = n },
		"tolerance":  func(n *yaml.Node, _ string) { tol = n },
	})
	if p.err != nil {
		return pr
	}
	if pr.Metric == "" || diff == nil || tol == nil {
		p.fail(n, at, "want metric, difference and tolerance, such as {metric: search_ms, difference: 200ms, tolerance: 5%%}")
		return pr
	}
	s, _ := p.scalar(diff, join(at, "difference"), "a figure")
	v, err := metricValue(s, pr.Metric, true)
	if err != nil {
		p.fail(diff, join(at, "difference"), "%q: %v", s, err)
		return pr
	}
	pr.Difference = v
	s, _ = p.scalar(tol, join(at, "tolerance"), "a figure")
	if !isShare(pr.Metric) && strings.HasSuffix(s, "%") {
		// A search time's tolerance in percent is of the difference.
		pct, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		if err != nil || pct <= 0 || pct > 100 || v == 0 {
			p.fail(tol, join(at, "tolerance"), "%q: want a percentage of a difference other than 0, from 0%% to 100%%, or milliseconds such as 10ms", s)
		}
		pr.Tolerance = math.Abs(v) * pct / 100
		return pr
	}
	if pr.Tolerance, err = metricValue(s, pr.Metric, false); err != nil || pr.Tolerance == 0 {
		p.fail(tol, join(at, "tolerance"), "%q: want a figure above 0 in the metric's unit", s)
	}
	return pr
}
