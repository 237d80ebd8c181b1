package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"example.com/shopsession/chaos"
)

func TestStartedVersion(t *testing.T) {
	for _, tc := range []struct {
		line string
		want int64
		ok   bool
	}{
		{"started fleet experiment version 7 (latency 0.1 s on 50 % of sessions), lease 10s", 7, true},
		{"started fleet experiment version 12", 12, true},
		{"started fleet experiment version 0", 0, false},
		{"started fleet experiment version x", 0, false},
		{"stopped fleet experiment version 7", 0, false},
	} {
		if got, ok := startedVersion(tc.line); got != tc.want || ok != tc.ok {
			t.Errorf("startedVersion(%q) = %d, %v; want %d, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}

// readings builds samples 5 ms apart from (version, injected, in progress)
// triples.
func readings(triples ...[3]int64) []fleetSample {
	out := make([]fleetSample, len(triples))
	for i, tr := range triples {
		out[i] = fleetSample{at: time.Duration(i+1) * 5 * time.Millisecond, version: tr[0], injected: tr[1], inProgress: tr[2]}
	}
	return out
}

func TestFleetStartReadings(t *testing.T) {
	start := readings([3]int64{0, 40, 0}, [3]int64{3, 40, 0}, [3]int64{3, 40, 0}, [3]int64{3, 41, 1})
	if at, v, ok := firstApplied(start); at != 10*time.Millisecond || v != 3 || !ok {
		t.Errorf("firstApplied = %v, %d, %v; want 10ms, 3, true", at, v, ok)
	}
	if at, ok := firstDelay(start, 40); at != 20*time.Millisecond || !ok {
		t.Errorf("firstDelay = %v, %v; want 20ms, true", at, ok)
	}
	// A delay begun and ended between two readings shows in the count.
	if at, ok := firstDelay(readings([3]int64{3, 40, 0}, [3]int64{3, 42, 0}), 40); at != 10*time.Millisecond || !ok {
		t.Errorf("firstDelay of a delay between readings = %v, %v; want 10ms, true", at, ok)
	}
	if _, ok := firstDelay(start[:3], 40); ok {
		t.Error("firstDelay saw a delay in readings without one")
	}
	if startSeen(40)(start[:3]) || !startSeen(40)(start) {
		t.Error("startSeen: want false before the first delay, true after")
	}
}

func TestFleetStopReadings(t *testing.T) {
	// In progress at the SIGTERM, one more begun, then none from 25 ms.
	stop := readings([3]int64{3, 90, 1}, [3]int64{3, 91, 1}, [3]int64{0, 91, 1}, [3]int64{0, 91, 0}, [3]int64{0, 91, 0})
	if at, ok := versionGone(stop); at != 15*time.Millisecond || !ok {
		t.Errorf("versionGone = %v, %v; want 15ms, true", at, ok)
	}
	if at, ok := lastDelayEnd(stop, 90); at != 20*time.Millisecond || !ok {
		t.Errorf("lastDelayEnd = %v, %v; want 20ms, true", at, ok)
	}
	// A delay begun and ended between the last two readings counts.
	late := readings([3]int64{0, 90, 0}, [3]int64{0, 91, 0}, [3]int64{0, 91, 0})
	if at, ok := lastDelayEnd(late, 90); at != 15*time.Millisecond || !ok {
		t.Errorf("lastDelayEnd of a late delay = %v, %v; want 15ms, true", at, ok)
	}
	if at, ok := lastDelayEnd(readings([3]int64{0, 90, 0}), 90); at != 5*time.Millisecond || !ok {
		t.Errorf("lastDelayEnd with none in progress = %v, %v; want the first reading, true", at, ok)
	}
	for name, s := range map[string][]fleetSample{
		"still in progress":      readings([3]int64{0, 90, 0}, [3]int64{0, 90, 1}),
		"one begun at the last":  readings([3]int64{0, 90, 0}, [3]int64{0, 91, 0}),
		"no readings":            nil,
		"begun before the first": readings([3]int64{0, 91, 0}),
	} {
		if _, ok := lastDelayEnd(s, 90); ok {
			t.Errorf("%s: lastDelayEnd says the delays ended", name)
		}
	}
	quiet := append(stop, fleetSample{at: 20*time.Millisecond + fleetQuiet, version: 0, injected: 91})
	if stopSeen(90)(stop) || !stopSeen(90)(quiet) {
		t.Error("stopSeen: want false before a quiet second, true after")
	}
	if stopSeen(90)(readings([3]int64{3, 90, 0}, [3]int64{3, 90, 0})) {
		t.Error("stopSeen with the version still applied")
	}
}

func TestJudgeFleet(t *testing.T) {
	timing := func(firstDelay, lastEnd *float64) fleetTiming {
		return fleetTiming{Instance: "host:1", Version: 3, RecordStartMS: 20, AppliedMS: ptr(40), FirstDelayMS: firstDelay,
			VersionGoneMS: ptr(30), LastDelayEndMS: lastEnd, CtlExitedMS: 25}
	}
	run := func(experimentMS float64, controlDelays int64, tm fleetTiming) fleetInstanceRun {
		return fleetInstanceRun{
			ab:         map[string]abResult{"experiment": {MeanMS: 201}, "control": {MeanMS: 0.5}},
			experiment: withMean(chaos.GroupFigures{Searches: 50, DelaysInjected: 100, SearchSeconds: experimentMS * 50 / 1000}),
			control:    withMean(chaos.GroupFigures{Searches: 20000, DelaysInjected: controlDelays, SearchSeconds: 0.5 * 20000 / 1000}),
			timing:     tm,
		}
	}
	good := timing(ptr(60), ptr(35))
	for _, tc := range []struct {
		name   string
		groups fleetGroupCheck
		run    fleetInstanceRun
		want   string
	}{
		{"held", fleetGroupCheck{asked: 100}, run(200.9, 0, good), verdictPass},
		{"difference 0.6 % over", fleetGroupCheck{asked: 100}, run(201.7, 0, good), verdictDeviated},
		{"difference 0.6 % under", fleetGroupCheck{asked: 100}, run(199.3, 0, good), verdictDeviated},
		{"a delay reached the control group", fleetGroupCheck{asked: 100}, run(200.9, 1, good), verdictDeviated},
		{"a session in two groups", fleetGroupCheck{asked: 100, differ: []string{"fleet-4 experiment/control/experiment"}}, run(200.9, 0, good), verdictDeviated},
		{"first delay after 1.2 s", fleetGroupCheck{asked: 100}, run(200.9, 0, timing(ptr(1200), ptr(35))), verdictDeviated},
		{"no delay seen", fleetGroupCheck{asked: 100}, run(200.9, 0, timing(nil, ptr(35))), verdictDeviated},
		{"last delay 1.1 s after the stop", fleetGroupCheck{asked: 100}, run(200.9, 0, timing(ptr(60), ptr(1100))), verdictDeviated},
		{"still delaying at the readings' end", fleetGroupCheck{asked: 100}, run(200.9, 0, timing(ptr(60), nil)), verdictDeviated},
	} {
		rows := judgeFleet(nil, tc.groups, []fleetInstanceRun{tc.run, run(200.9, 0, good)})
		if len(rows) != 2 || rows[0].Verdict != tc.want {
			t.Errorf("%s: %d rows, verdict %s, want %s\n%s", tc.name, len(rows), rows[0].Verdict, tc.want, strings.Join(rows[0].Findings, "\n"))
		}
	}
	rows := judgeFleet(nil, fleetGroupCheck{asked: 100}, []fleetInstanceRun{run(200.9, 0, good)})
	if d := rows[0].DeltaMS; d == nil || *d < 200.39 || *d > 200.41 || rows[0].Fleet.FirstDelayMS == nil {
		t.Errorf("row: delta %v, timing %+v", d, rows[0].Fleet)
	}
	empty := run(200.9, 0, good)
	empty.experiment = chaos.GroupFigures{}
	if rows := judgeFleet(nil, fleetGroupCheck{asked: 100}, []fleetInstanceRun{empty}); rows[0].Verdict != verdictDeviated {
		t.Errorf("no experiment-group searches: %s", rows[0].Verdict)
	}
}

func TestFleetSettings(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "app")
	if err := os.WriteFile(bin, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"-prod", bin, "-chaos", bin}
	only := func(v string) func(string) string {
		return func(k string) string {
			if k == "BENCH_ONLY" {
				return v
			}
			return ""
		}
	}
	if s, err := parseSettings(args, only("fleet")); err != nil || s.only != "fleet" {
		t.Errorf("BENCH_ONLY=fleet: %+v, %v", s, err)
	}
	if _, err := parseSettings(args, only("blast")); err == nil || !strings.Contains(err.Error(), `invalid BENCH_ONLY "blast": want fleet`) {
		t.Errorf("BENCH_ONLY=blast: %v", err)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "-chaos is required"},
		{[]string{"-chaos", bin + ".missing"}, "run make build-chaos"},
		{[]string{"-chaos", bin, "extra"}, `unexpected argument "extra"`},
		{[]string{"-prod", bin}, "flag provided but not defined"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"-fleet"}, tc.args...), only(""), &stdout, &stderr)
		if code != exitCannot || strings.Count(stderr.String(), "\n") != 1 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("bench -fleet %q: exit %d, stderr %q; want %d and one line with %q", tc.args, code, stderr.String(), exitCannot, tc.want)
		}
	}
}
