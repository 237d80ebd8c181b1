package chaos

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTheExperimentFilesRead(t *testing.T) {
	paths, _ := filepath.Glob("../experiments/*.yaml")
	if len(paths) < 3 {
		t.Fatalf("experiments/: %d files, want the two experiments and the ramp", len(paths))
	}
	for _, p := range paths {
		f, err := readRunFile(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		for _, st := range f.Steps {
			if st.Duration == 0 || st.Prediction.Tolerance <= 0 || st.Prediction.Metric == "" {
				t.Errorf("%s: step %q read as %+v", p, st.Name, st)
			}
		}
	}
	f, err := readRunFile("../experiments/redis-latency.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pr := f.Steps[0].Prediction
	if pr.Difference != 200 || pr.Tolerance != 10 || f.Steps[0].SessionsPercent != 50 || f.Lease != 10*time.Second {
		t.Errorf("redis-latency.yaml: prediction %+v, step %+v", pr, f.Steps[0])
	}
	if mx := f.Steady.Probes[1].Max; mx == nil || *mx != 0.01 {
		t.Errorf("degraded_share max 1%%: read as %v", mx)
	}
	g, err := readRunFile("../experiments/failing-reads.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if pr := g.Steps[0].Prediction; pr.Difference != -0.5 || pr.Tolerance != 0.02 {
		t.Errorf("failing-reads.yaml: prediction %+v, want -0.5 ± 0.02", pr)
	}
}

const goodFile = `title: t
steady_state:
  probes:
    - metric: search_ms
      max: 50
steps:
  - duration: 5s
    fault: {experiment: latency, delay_seconds: 0.1}
    prediction: {metric: search_ms, difference: 200ms, tolerance: 5%}
    sessions_percent: 50
`

// TestExperimentFileErrors: each mistake is named with its file, line and
// field.
func TestExperimentFileErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, body, want string }{
		{"unknown field", strings.Replace(goodFile, "title: t", "title: t\ntitel: x", 1), "x.yaml:2: titel: unknown field: want one of dry_run, hypothesis, lease, rollback, seed, steady_state, steps, title"},
		{"no title", strings.Replace(goodFile, "title: t", "seed: 1", 1), "x.yaml:1: title: is required"},
		{"bad duration", strings.Replace(goodFile, "duration: 5s", "duration: 5", 1), `x.yaml:7: steps[0].duration: "5": want a duration from 5s to 1h0m0s`},
		{"bad metric", strings.Replace(goodFile, "- metric: search_ms", "- metric: search_time", 1), `x.yaml:4: steady_state.probes[0].metric: "search_time": want search_ms`},
		{"bad tolerance", strings.Replace(goodFile, "tolerance: 5%", "tolerance: lots", 1), `x.yaml:9: steps[0].prediction.tolerance: "lots"`},
		{"share above 1", strings.Replace(goodFile, "metric: search_ms\n      max: 50", "metric: degraded_share\n      max: 150%", 1), `x.yaml:5: steady_state.probes[0].max: "150%": want a share from 0 to 1`},
		{"fault PUT refuses", strings.Replace(goodFile, "delay_seconds: 0.1", "delay_seconds: -1", 1), "x.yaml:8: steps[0].fault: "},
		{"fault names the step's field", strings.Replace(goodFile, "delay_seconds: 0.1", "delay_seconds: 0.1, sessions_percent: 5", 1), "x.yaml:8: steps[0].fault.sessions_percent: the step and the file set it"},
		{"no steps", goodFile[:strings.Index(goodFile, "steps:")], "x.yaml:1: steps: is required"},
		{"no tolerance", strings.Replace(goodFile, ", tolerance: 5%", "", 1), "x.yaml:9: steps[0].prediction: want metric, difference and tolerance"},
		{"not YAML", "title: [", "x.yaml: "},
		{"a list", "- 1\n", "x.yaml:1: want a mapping of fields"},
		// Go's JSON decoding folds case: a key that is not exactly a field
		// could have set the blast radius, the seed or a dry run.
		{"a folded owned field", strings.Replace(goodFile, "delay_seconds: 0.1", "delay_seconds: 0.1, \"ſessions_percent\": 100", 1), "x.yaml:8: steps[0].fault.ſessions_percent: unknown field: want one of commands, conn_fault, delay_after_headers"},
		{"a field in another case", strings.Replace(goodFile, "delay_seconds: 0.1", "delay_seconds: 0.1, Dry_Run: true", 1), "x.yaml:8: steps[0].fault.Dry_Run: unknown field"},
		{"experiment none", strings.Replace(goodFile, "experiment: latency, delay_seconds: 0.1", "experiment: none", 1), `x.yaml:8: steps[0].fault: experiment "none" injects nothing`},
		{"a second document", goodFile + "---\ntitle: u\n", "x.yaml:11: a second YAML document"},
		{"min above max", strings.Replace(goodFile, "max: 50", "max: 50\n      min: 60", 1), "x.yaml:4: steady_state.probes[0]: a minimum above its maximum"},
		{"no control group", strings.Replace(goodFile, "sessions_percent: 50", "sessions_percent: 100", 1), "x.yaml:10: steps[0].sessions_percent: 100: want a share below 100"},
		{"no blast radius", strings.Replace(goodFile, "    sessions_percent: 50\n", "", 1), "x.yaml:7: steps[0].sessions_percent: is required"},
		{"given twice", strings.Replace(goodFile, "title: t", "title: t\ntitle: u", 1), "x.yaml:2: title: given twice"},
	} {
		p := filepath.Join(dir, "x.yaml")
		os.WriteFile(p, []byte(tc.body), 0o644)
		_, err := readRunFile(p)
		if err == nil || !strings.HasPrefix(err.Error(), filepath.Join(dir, tc.want)) {
			t.Errorf("%s: %v\nwant it to begin %q", tc.name, err, tc.want)
		}
	}
	prom := strings.Replace(goodFile, "    - metric: search_ms\n      max: 50\n", "    - prometheus: {url: 'http://127.0.0.1:9090', query: 'up'}\n      min: 5\n", 1)
	p := filepath.Join(dir, "prom.yaml")
	os.WriteFile(p, []byte(prom), 0o644)
	if f, err := readRunFile(p); err != nil || *f.Steady.Probes[0].Min != 5 {
		t.Errorf("a Prometheus probe's bound is a plain number: %v", err)
	}
	p = filepath.Join(dir, "good.yaml")
	os.WriteFile(p, []byte(goodFile), 0o644)
	if _, err := readRunFile(p); err != nil {
		t.Errorf("the good file: %v", err)
	}
}
