package chaos

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// loadJournal reads a journal file as ctl run writes it. A last line cut
// short (a runner killed mid-write) is left out, as the report must cope
// with what such a runner leaves.
func loadJournal(t testing.TB, path string) []JournalEvent {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var events []JournalEvent
	lines := bytes.Split(data, []byte("\n"))
	for n, line := range lines {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var ev JournalEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			if n == len(lines)-1 { // no newline after it: cut short
				break
			}
			t.Fatalf("%s:%d: %v", path, n+1, err)
		}
		events = append(events, ev)
	}
	return events
}

func renderReport(t testing.TB, events []JournalEvent) string {
	t.Helper()
	var buf bytes.Buffer
	if err := writeReport(&buf, events); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// reportCase is a journal and what its report must say.
type reportCase struct {
	file    string // under testdata; "" for no events at all
	verdict string
	charts  int
	want    []string
}

var reportCases = []reportCase{
	{"run-one-step.jsonl", "HELD", 1, []string{"exit 0", "Redis latency", "+200.0 ms ± 10.0 ms (5 %)", "PASS", "half the sessions"}},
	{"run-ramp.jsonl", "HELD", 3, []string{"1 % of the sessions", "10 % of the sessions", "50 % of the sessions", "+203.1 ms", "[+201.1, +205.3] ms", "step 3 ends"}},
	{"run-ramp-deviated.jsonl", "DEVIATED", 2, []string{"exit 1", "+231.3 ms", "DEVIATED", "NOT RUN", "the run goes no further", "step 2 ends"}},
	{"run-aborted.jsonl", "ABORTED", 1, []string{"exit 1", "ABORTED", "Aborted at 7.1 s", "measured 803.4 ms, beyond its bound 500.0 ms", "bound 500.0 ms", ">abort<"}},
	{"run-interrupted.jsonl", "INTERRUPTED", 1, []string{"interrupted in step 1", "stopped by the rollback", "pages with recommendations (%)", "stopped version"}},
	{"run-failed.jsonl", "FAILED", 0, []string{"exit 2", "does not hold", "100.0 %", "≤ 1.0 %", "NOT RUN"}},
	{"run-failed-unmeasured.jsonl", "FAILED", 0, []string{"exit 2", "could not be measured", "no steady-state check", "NOT RUN"}}, // as the runner wrote it
	{"run-dry.jsonl", "HELD", 1, []string{"A dry run", "no difference ± 10.0 ms", "Would have injected into the experiment group: ", " delays and 0 errors"}},
	{"run-killed.jsonl", "DID NOT FINISH", 1, []string{"no run_end", "the step did not finish", "NOT JUDGED"}},
	{"", "DID NOT FINISH", 0, []string{"no events"}},
	// As ctl run wrote them on make fleet's three instances.
	{"run-real-ramp.jsonl", "HELD", 3, []string{"exit 0", "1 % of sessions", "10 % of sessions", "half the sessions", "+200.0 ms", "step 3 ends"}},
	{"run-real-deviated.jsonl", "DEVIATED", 1, []string{"exit 1", "+100.0 ms ± 5.0 ms (5 %)", "+200.2 ms", "DEVIATED", "the run goes no further"}},
	{"run-real-dry.jsonl", "HELD", 1, []string{"A dry run", "no difference ± 10.0 ms", "Would have injected into the experiment group: "}},
}

func (c reportCase) name() string {
	if c.file == "" {
		return "run-empty"
	}
	return strings.TrimSuffix(c.file, ".jsonl")
}

func (c reportCase) events(t testing.TB) []JournalEvent {
	if c.file == "" {
		return nil
	}
	return loadJournal(t, filepath.Join("testdata", c.file))
}

// headingRE finds every heading, to check which comes first.
var headingRE = regexp.MustCompile(`<h([1-6])[^>]*>([^<]*)<`)

func TestReportRendersEveryRun(t *testing.T) {
	for _, c := range reportCases {
		t.Run(c.name(), func(t *testing.T) {
			page := renderReport(t, c.events(t))
			first := headingRE.FindStringSubmatch(page)
			if first == nil || first[1] != "1" || first[2] != c.verdict {
				t.Errorf("first heading %q, want <h1>%s", first, c.verdict)
			}
			text := html.UnescapeString(page)
			for _, w := range c.want {
				if !strings.Contains(text, w) {
					t.Errorf("the report lacks %q", w)
				}
			}
			if n := strings.Count(page, `<svg class="chart"`); n != c.charts {
				t.Errorf("%d charts, want %d", n, c.charts)
			}
			for _, bad := range []string{"http://", "https://", "<script", "<link", " src=", "url(", "@import", "NaN", "Inf", "%!"} {
				if strings.Contains(page, bad) {
					t.Errorf("the report holds %q", bad)
				}
			}
			if !strings.Contains(page, `default-src 'none'`) {
				t.Error("the report has no policy against loading anything")
			}
		})
	}
}

// TestReportOrder checks the sections come as a reader needs them: the
// verdict, what was tried, the steps, their charts, then the details.
func TestReportOrder(t *testing.T) {
	page := renderReport(t, loadJournal(t, "testdata/run-ramp.jsonl"))
	order := []string{`id="verdict"`, "Widen the blast radius", "Two Redis round trips", `id="steps"`,
		`id="step-1"`, `id="step-2"`, `id="step-3"`, ">Steady state<", ">before: ", ">after: ", ">Instances and builds<", "vm:30509", "sha256:47c486c94310",
		">run id<", "run-20261201T100000-3f9c1a2b", ">seed<", "experiments/ramp.yaml", "2026-12-01 10:00:00.113 UTC"}
	at := 0
	for _, s := range order {
		i := strings.Index(page[at:], s)
		if i < 0 {
			t.Fatalf("%q missing after byte %d (or out of order)", s, at)
		}
		at += i
	}
}

func TestReportEscapes(t *testing.T) {
	events := loadJournal(t, "testdata/run-aborted.jsonl")
	events[0].Title = `<script>alert("title")</script>`
	events[0].Hypothesis = `a & b <b>bold</b>`
	for i := range events {
		if events[i].Event == "abort" {
			events[i].Probe = `"><img src=x onerror=alert(1)>`
		}
		if events[i].Event == "step_start" {
			events[i].Name = `</text><script>alert(2)</script>`
		}
	}
	page := renderReport(t, events)
	for _, bad := range []string{"<script", "<img", "<b>"} {
		if strings.Contains(page, bad) {
			t.Errorf("the report holds %q unescaped", bad)
		}
	}
	if !strings.Contains(page, "&lt;script&gt;alert(&#34;title&#34;)&lt;/script&gt;") {
		t.Error("the title is not shown escaped")
	}
}

// TestReportAbsentValues: a judgement without its figures, a sample whose
// value is not a number (a group with no page), and an abort without its
// value are shown as absent, never as NaN.
func TestReportAbsentValues(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	nan := math.NaN()
	ev := func(sec int, e JournalEvent) JournalEvent {
		e.At, e.Run = at.Add(time.Duration(sec)*time.Second), "r1"
		return e
	}
	events := []JournalEvent{
		ev(0, JournalEvent{Event: "run_start", Title: "t", Steps: 1}),
		ev(0, JournalEvent{Event: "steady_state", Phase: "before", Probes: []ProbeResult{{Name: "p", Metric: "search_ms", Group: "all"}}}),
		ev(1, JournalEvent{Event: "step_start", Step: 1, Name: "s"}),
		ev(2, JournalEvent{Event: "sample", Step: 1, Metric: "search_ms", Experiment: &GroupSample{Searches: 1, Value: nan}, Control: &GroupSample{Searches: 3, Value: 2}}),
		ev(3, JournalEvent{Event: "sample", Step: 1, Metric: "search_ms", Experiment: &GroupSample{Searches: 2, Value: math.Inf(1)}, Control: nil}),
		ev(4, JournalEvent{Event: "abort", Step: 1, Probe: "p", Group: "experiment", Value: &nan}),
		ev(4, JournalEvent{Event: "judgement", Step: 1, Metric: "search_ms", Verdict: "INCONCLUSIVE", Difference: &nan}),
		ev(5, JournalEvent{Event: "run_end", Verdict: RunNotRestored, Exit: new(int)}),
	}
	page := renderReport(t, events)
	for _, bad := range []string{"NaN", "Inf", "%!"} {
		if strings.Contains(page, bad) {
			t.Errorf("the report holds %q", bad)
		}
	}
	for _, w := range []string{"measured —, beyond its bound —", `class="verdict v-not_restored"`, "INCONCLUSIVE"} {
		if !strings.Contains(html.UnescapeString(page), w) {
			t.Errorf("the report lacks %q", w)
		}
	}
	if !strings.Contains(page, `<td class="num">—</td>`) {
		t.Error("an absent difference is not shown as —")
	}
}

func TestNiceTicks(t *testing.T) {
	for _, c := range []struct {
		lo, hi float64
		want   string
	}{{0, 211, "[0 50 100 150 200 250]"}, {3.1, 23.2, "[0 5 10 15 20 25]"}, {0, 1, "[0.0 0.2 0.4 0.6 0.8 1.0]"}, {5, 5, "[5.0 5.2 5.4 5.6 5.8 6.0]"}} {
		got := niceTicks(c.lo, c.hi, 5)
		if c.lo == 3.1 {
			got = niceTicks(c.lo, c.hi, 10)
		}
		var labels []string
		for _, x := range got {
			labels = append(labels, tickLabel(x, got))
		}
		if s := fmt.Sprint(labels); s != c.want {
			t.Errorf("niceTicks(%g, %g) = %s, want %s", c.lo, c.hi, s, c.want)
		}
	}
}

// TestReportOddJournals: a journal the runner would not write still makes a
// report, never a panic: events of step 0, a run_end without its verdict,
// a step count no file has, steps out of order.
func TestReportOddJournals(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	page := renderReport(t, []JournalEvent{
		{At: at, Event: "run_start", Steps: 1 << 30},
		{At: at, Event: "sample", Metric: "search_ms", Experiment: &GroupSample{Searches: 1, Value: 3}},
		{At: at, Event: "judgement"},
		{At: at.Add(time.Second), Event: "step_end", Step: 3},
		{At: at.Add(time.Second), Event: "sample", Step: 2, Metric: "bogus", Control: &GroupSample{Searches: 1, Value: 3}},
		{At: at.Add(2 * time.Second), Event: "run_end"},
	})
	if n := strings.Count(page, "<tr>"); n != 1001 { // the header, and the first 1000 steps
		t.Errorf("%d rows in the steps table", n)
	}
	if !strings.Contains(page, `<h1 id="verdict">UNKNOWN</h1>`) {
		t.Error("a run_end without a verdict is not shown as UNKNOWN")
	}
}

// TestReportUnjudgedPrediction: a step that ended before its judgement
// shows its prediction when its step_start carries it.
func TestReportUnjudgedPrediction(t *testing.T) {
	events := loadJournal(t, "testdata/run-killed.jsonl")
	for i := range events {
		if events[i].Event == "step_start" {
			events[i].Metric, events[i].Predicted, events[i].Tolerance = "search_ms", new(200.0), new(10.0)
		}
	}
	if page := html.UnescapeString(renderReport(t, events)); !strings.Contains(page, "+200.0 ms ± 10.0 ms (5 %)") {
		t.Error("the unjudged step's prediction is not shown")
	}
}
