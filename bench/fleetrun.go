package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"example.com/shopsession/chaos"
)

// The fleet scenario's last row: experiment 1 as a file, run by
// shopsession-chaos ctl run on the same three instances, its judgement
// beside the bench's own. The runner needs both groups on every instance
// in every second, so each instance gets paced clients whose every page is
// a session of its own.
const (
	fleetRunFile = "experiments/redis-latency.yaml"
	// fleetRunClients per instance, each a page every fleetControlEvery.
	fleetRunClients = 4
)

var fleetRunHypothesis = "ctl run " + fleetRunFile + " on the three instances: the steady state holds before and after, its one step's prediction (experiment − control +200 ms ± 5 %) holds by its 95 % interval, exit 0; its measured difference agrees with the bench's own (the instances' mean difference above) within the file's tolerance"

func (b *bench) fleetRunRow(ctx context.Context, f *fleet, own []fleetInstanceRun) scenario {
	sc := scenario{Name: "fleet: ctl run " + fleetRunFile, Build: "chaos", DelaySeconds: latencyDelay, Hypothesis: fleetRunHypothesis,
		Setup: []string{
			fmt.Sprintf("shopsession-chaos ctl run %s -journal … -report bench/results/fleet-run.html", fleetRunFile),
			fmt.Sprintf("on each instance %d Go clients, each a search every %v as a new session", fleetRunClients, fleetControlEvery),
		}}
	if _, err := os.Stat(fleetRunFile); err != nil {
		sc.inconclusive(fmt.Sprintf("not run: %v (the bench runs from the repository's root)", err))
		return sc
	}
	// A clean clone has no results directory until the bench's report.
	if err := os.MkdirAll(b.outDir, 0o755); err != nil {
		sc.judge(false, fmt.Sprintf("ctl run's report: %v", err))
		return sc
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var load searchCounts
	began := time.Now()
	for _, a := range f.apps {
		for range fleetRunClients {
			wg.Go(func() { newSessionSearches(ctx, a, fleetControlEvery, &load) })
		}
	}
	journal := filepath.Join(b.workDir, "fleet-run.jsonl")
	report := filepath.Join(b.outDir, "fleet-run.html")
	b.progress.note("fleet: ctl run %s", fleetRunFile)
	// The bench's own interrupt reaches the run as a SIGTERM: it rolls back.
	base := f.ctl("run", fleetRunFile, "-journal", journal, "-report", report)
	cmd := exec.CommandContext(parent, base.Path, base.Args[1:]...)
	cmd.Env = base.Env
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	out, err := cmd.CombinedOutput()
	cancel()
	wg.Wait()
	sc.Summary = load.result(time.Since(began))
	sc.Runs = []measurement{{AB: sc.Summary}}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		sc.judge(false, fmt.Sprintf("ctl run: %v", err))
		return sc
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	sc.judge(cmd.ProcessState.ExitCode() == 0, fmt.Sprintf("ctl run exited %d: %s", cmd.ProcessState.ExitCode(), lines[len(lines)-1]))
	sc.judge(sc.Summary.Failed+sc.Summary.Non2xx == 0, fmt.Sprintf("the clients' %d searches: %d failed, %d non-2xx", sc.Summary.Complete, sc.Summary.Failed, sc.Summary.Non2xx))
	j, err := lastJudgement(journal)
	if err != nil || j.Difference == nil || j.Low == nil {
		sc.judge(false, fmt.Sprintf("the run's journal has no judgement with an interval: %v", err))
		return sc
	}
	sc.judge(j.Verdict == verdictPass, fmt.Sprintf("ctl run's judgement: experiment − control %+.3f ms (95 %% CI %+.3f to %+.3f, %d seconds), predicted %+g ± %g ms: %s",
		*j.Difference, *j.Low, *j.High, j.Samples, *j.Predicted, *j.Tolerance, j.Verdict))
	sc.DeltaMS, sc.PredictedMS = j.Difference, j.Predicted
	var sum float64
	n := 0
	for _, run := range own {
		if run.experiment.Searches > 0 && run.control.Searches > 0 {
			sum += run.experiment.MeanSearchMS - run.control.MeanSearchMS
			n++
		}
	}
	if n == 0 {
		sc.inconclusive("the bench's own fleet rows measured no difference to compare with")
		return sc
	}
	benchDelta := sum / float64(n)
	sc.judge(math.Abs(*j.Difference-benchDelta) <= *j.Tolerance, fmt.Sprintf(
		"beside the bench's own: %+.3f ms, the mean of the %d instances' differences; the runner's differs by %+.3f ms, within the file's ± %g ms",
		benchDelta, n, *j.Difference-benchDelta, *j.Tolerance))
	return sc
}

// searchCounts sums the searches of several clients.
type searchCounts struct {
	complete, failed, non2xx, nanos atomic.Int64
}

func (c *searchCounts) result(d time.Duration) abResult {
	r := abResult{Command: fmt.Sprintf("Go clients: POST /search every %v, each a new session", fleetControlEvery),
		Complete: int(c.complete.Load()), Failed: int(c.failed.Load()), Non2xx: int(c.non2xx.Load())}
	if r.Complete > 0 {
		r.MeanMS = float64(c.nanos.Load()) / 1e6 / float64(r.Complete)
		r.RequestsPerS = float64(r.Complete) / d.Seconds()
	}
	return r
}

// newSessionSearches searches a every `every` until ctx ends, each page a
// session of its own, so that both groups of any blast radius get pages;
// counts may be nil.
func newSessionSearches(ctx context.Context, a *appProcess, every time.Duration, counts *searchCounts) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	id := make([]byte, 8)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		rand.Read(id)
		t := time.Now()
		status, _, err := a.search("Apples", "sessionID=run-"+hex.EncodeToString(id))
		switch {
		case counts == nil || ctx.Err() != nil:
		case err != nil:
			counts.failed.Add(1)
		default:
			counts.complete.Add(1)
			counts.nanos.Add(int64(time.Since(t)))
			if status/100 != 2 {
				counts.non2xx.Add(1)
			}
		}
	}
}

func lastJudgement(path string) (chaos.JournalEvent, error) {
	f, err := os.Open(path)
	if err != nil {
		return chaos.JournalEvent{}, err
	}
	defer f.Close()
	var last chaos.JournalEvent
	found := false
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev chaos.JournalEvent
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Event == "judgement" {
			last, found = ev, true
		}
	}
	if !found {
		return last, errors.New("no judgement event")
	}
	return last, sc.Err()
}
