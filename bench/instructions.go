package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Chaos-off by instructions. Two builds' CPU per request, measured in
// seconds, scatters by a few per cent from run to run on a shared 2-core
// machine, and the question is 2 %. The instructions a request executes,
// counted by valgrind's callgrind, do not: the same binary serving the same
// requests counts the same to a few tenths of a per cent, whatever else the
// machine does. So the chaos build with CHAOS unset is judged on the
// instructions per search it executes against production's, in user space
// (the syscalls are the same calls: docs/performance.md), beside the
// calibration build, whose known slowdown this judgement must catch.

const (
	// instructionRequests are counted per run, after instructionWarmUp:
	// under callgrind the service serves a few hundred a second. A GC cycle
	// more or less in the counted window is ~6 M instructions, 1.5 % of
	// 2 000 searches' (production's counts fell in two levels that far
	// apart), half a per cent of 6 000's.
	instructionRequests = 6000
	instructionWarmUp   = 500
	// instructionRounds of production, chaos-off, production, slow, …,
	// production: each other build's run between two of production's. The
	// quick bench (BENCH_SECONDS of 2 or less) runs quickRounds of
	// production and chaos-off alone, of quickRequests: too few for a
	// verdict, enough to show the counts.
	instructionRounds = 7
	quickRounds       = 2
	quickRequests     = 500
	// slowdownSpins is the calibration build's counted spin: about 3 % of
	// a search's instructions, so that a judgement with a 2 % bound that
	// cannot see it is no judgement at all.
	slowdownSpins = 300
	// instructionLevel is the intervals' level here. At 95 % the A/A check
	// flagged 5.3, 6.5 and 5.9 % of relabellings in three runs: on one run's
	// own fifteen counts the share scatters about the interval's 5 %
	// (4.4–6.1 % on the same counts with other random relabellings), so a
	// check of "at most 5 %" passed by chance. At 97.5 % it is ~2.5 %, and
	// the interval, which holds the 95 % one, is the stricter for the 2 %
	// bound and width it is judged by.
	instructionLevel = 0.975
)

func (b *bench) instructionScenario(ctx context.Context) (scenario, error) {
	sc := scenario{Name: "chaos-off instructions", Build: "chaos", Hypothesis: fmt.Sprintf(
		"instructions per search within %.0f %% of production's (callgrind): the %s %% interval of the ratio lies below %.2f and is narrower than %.0f %%, the calibration build's known ~3 %% lies above it, and A/A relabellings of production's runs flag at most %.0f %%",
		chaosOffTolerance*100, strconv.FormatFloat(instructionLevel*100, 'f', -1, 64), 1+chaosOffTolerance, chaosOffTolerance*100, aaSoundRate*100)}
	if _, err := exec.LookPath("valgrind"); err != nil {
		return sc, errors.New("chaos-off instructions: valgrind is not installed: apt-get install valgrind")
	}
	rounds, requests, slowBinary := instructionRounds, instructionRequests, b.slowBinary
	if b.seconds <= 2 {
		rounds, requests, slowBinary = quickRounds, quickRequests, ""
	}
	var prod, off, slow, prodBytes, offBytes []float64
	count := func(label, binary string, env ...string) error {
		n, err := b.instructionsPerRequest(ctx, label, binary, requests, env)
		if err != nil {
			return fmt.Errorf("chaos-off instructions: %s: %w", label, err)
		}
		switch binary {
		case b.prodBinary:
			prod, prodBytes = append(prod, n.Instructions), append(prodBytes, n.Bytes)
		case b.chaosBinary:
			off, offBytes = append(off, n.Instructions), append(offBytes, n.Bytes)
		default:
			slow = append(slow, n.Instructions)
		}
		return nil
	}
	if err := count("production 1", b.prodBinary); err != nil {
		return sc, err
	}
	for i := range rounds {
		if err := count(fmt.Sprintf("chaos-off %d", i+1), b.chaosBinary); err != nil {
			return sc, err
		}
		if err := count(fmt.Sprintf("production %d", len(prod)+1), b.prodBinary); err != nil {
			return sc, err
		}
		if slowBinary == "" {
			continue
		}
		if err := count(fmt.Sprintf("slow %d", i+1), slowBinary, "BENCH_SLOWDOWN_SPINS="+strconv.Itoa(slowdownSpins)); err != nil {
			return sc, err
		}
		if err := count(fmt.Sprintf("production %d", len(prod)+1), b.prodBinary); err != nil {
			return sc, err
		}
	}
	// Production's runs lie either side of each other run: the chaos-off
	// runs between production's 2k and 2k+1, the slow ones between 2k+1 and
	// 2k+2 (or every other run, without a calibration build).
	step := 2
	if slowBinary == "" {
		step = 1
	}
	ratiosTo := func(prod, runs []float64, first int) []float64 {
		out := make([]float64, len(runs))
		for i, n := range runs {
			j := first + i*step
			out[i] = n / ((prod[j] + prod[j+1]) / 2)
		}
		return out
	}
	ratios := func(runs []float64, first int) []float64 { return ratiosTo(prod, runs, first) }
	sc.Findings = append(sc.Findings, fmt.Sprintf("production %s, chaos-off %s instructions a search, without garbage collection", formatCounts(prod), formatCounts(off)),
		fmt.Sprintf("what the collector would reclaim: production %s, chaos-off %s bytes allocated a search", formatFloats(prodBytes, 0), formatFloats(offBytes, 0)))
	if len(off) < 3 {
		// The quick bench's rounds: an interval needs three pairs at least
		// (with fewer its bounds are infinite).
		sc.inconclusive(fmt.Sprintf("chaos-off/production instructions per search %s over %d rounds: too few for an interval (the full bench runs %d)",
			formatRatios(ratios(off, 0)), len(off), instructionRounds))
		return sc, nil
	}
	offCI := bootstrapRatioAt(ratios(off, 0), newRand(), instructionLevel)
	// The bytes are judged by the instructions' bound too: a build that
	// allocates 2 % more makes the collector run 2 % more often.
	bytesCI := bootstrapRatioAt(ratiosTo(prodBytes, offBytes, 0), newRand(), instructionLevel)
	sc.judgeInterval(bytesCI, 0, 1+chaosOffTolerance, "chaos-off/production bytes allocated a search")
	sc.judgeInterval(offCI, 0, 1+chaosOffTolerance, "chaos-off/production instructions per search")
	// Below the bound is not enough: an interval as wide as the bound itself
	// would say little of a 2 % question.
	if width := offCI.High/offCI.Low - 1; sc.Verdict == verdictPass && width >= chaosOffTolerance {
		sc.inconclusive(fmt.Sprintf("the interval is %.1f %% wide, not narrower than %.0f %%", width*100, chaosOffTolerance*100))
	}
	// The A/A check, as the calibration scenario makes it of seconds:
	// production's runs relabelled at random into production and "other".
	if rate := aaFlagRateAt(prod, aaTrials, instructionLevel); len(prod) >= 7 {
		finding := fmt.Sprintf("A/A: %.1f %% of %d random relabellings of the %d production runs flagged a difference", rate*100, aaTrials, len(prod))
		switch aaVerdict(rate) {
		case verdictPass:
			sc.Findings = append(sc.Findings, finding)
		case verdictDeviated:
			sc.judge(false, finding+fmt.Sprintf(", above %.0f %%: the method is unsound here", aaUnsoundRate*100))
		default:
			sc.inconclusive(finding + fmt.Sprintf(", above %.0f %%", aaSoundRate*100))
		}
	}
	if slowBinary != "" {
		slowCI := bootstrapRatioAt(ratios(slow, 1), newRand(), instructionLevel)
		finding := fmt.Sprintf("calibration: slow (%d counted spins a request) %s instructions, slow/production %s", slowdownSpins, formatCounts(slow), slowCI)
		if slowCI.Low > 1+chaosOffTolerance {
			sc.Findings = append(sc.Findings, finding+": caught by the same bound")
		} else {
			sc.inconclusive(finding + ": not caught by the same bound, so the bound says nothing")
		}
	}
	return sc, nil
}

func formatCounts(counts []float64) string {
	parts := make([]string, len(counts))
	for i, n := range counts {
		parts[i] = strconv.FormatFloat(n/1000, 'f', 1, 64) + " k"
	}
	return strings.Join(parts, ", ")
}

// instructionsPerRequest serves binary under callgrind on the bench's Redis
// and returns the instructions, all threads in user space, that
// instructionRequests searches at -c 4 executed after the warm-up, from
// callgrind's own counters, zeroed and dumped around them.
func (b *bench) instructionsPerRequest(ctx context.Context, label, binary string, requests int, env []string) (instructionCount, error) {
	port, err := freePort()
	if err != nil {
		return instructionCount{}, err
	}
	adminPort, err := freePort()
	if err != nil {
		return instructionCount{}, err
	}
	dir, err := os.MkdirTemp(b.workDir, "callgrind-")
	if err != nil {
		return instructionCount{}, err
	}
	defer os.RemoveAll(dir)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.CommandContext(ctx, "valgrind", "--tool=callgrind", "--separate-threads=yes", "--callgrind-out-file="+filepath.Join(dir, "out"), binary)
	// Go's asynchronous preemption signals trip callgrind; the builds count
	// alike without them. Under callgrind a page runs ~50× slower, and a
	// stretched GC or a loaded machine can outlast the 2 s REDIS_TIMEOUT: a
	// degraded page is other work, and ab counts its length as a failure.
	// One P: with two, the idle one's work-stealing and idle-time GC marking
	// follow the stretched run's time, not its searches (one production run
	// in eleven counted a fifth more).
	// No garbage collection (GOGC=off): a cycle more or less in the counted
	// window moved a run's count by a per cent, in two levels whose mix made
	// the interval's A/A check flag more than it should. What the collector
	// would have to do is counted instead as the bytes allocated a search,
	// from the runtime's own counters on the admin listener's /metrics.
	admin := "http://127.0.0.1:" + strconv.Itoa(adminPort)
	cmd.Env = append(os.Environ(), append([]string{"ADDR=" + addr, "ADMIN_ADDR=127.0.0.1:" + strconv.Itoa(adminPort), "REDIS_URL=" + b.redis.url,
		"REDIS_TIMEOUT=1m", "GODEBUG=asyncpreemptoff=1", "GOMAXPROCS=1", "GOGC=off", "CHAOS=", "CHAOS_DELAY_SECONDS=", "CHAOS_ERROR_EVERY=", "CHAOS_CONTROL_TOKEN=" + rand.Text(),
		"CHAOS_CONTROL_TOKEN_FILE=", "CHAOS_DURATION_SECONDS=86400", "CHAOS_FLEET=off"}, env...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return instructionCount{}, fmt.Errorf("start valgrind: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-exited
	}()
	url := "http://" + addr
	err = waitFor(ctx, 60*time.Second, func() error {
		select {
		case <-exited:
			return errAppExited
		default:
		}
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	if err != nil {
		return instructionCount{}, fmt.Errorf("never became ready under callgrind: %v\n%s", err, stderr.String())
	}
	if err := b.redis.flush(ctx); err != nil {
		return instructionCount{}, err
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	b.progress.note("%s: %d searches under callgrind", label, requests)
	if err := b.searches(ctx, url, instructionWarmUp); err != nil {
		return instructionCount{}, err
	}
	before, err := runtimeAllocations(admin)
	if err != nil {
		return instructionCount{}, err
	}
	if out, err := exec.CommandContext(ctx, "callgrind_control", "-z", pid).CombinedOutput(); err != nil {
		return instructionCount{}, fmt.Errorf("callgrind_control -z: %v: %s", err, out)
	}
	if err := b.searches(ctx, url, requests); err != nil {
		return instructionCount{}, err
	}
	if out, err := exec.CommandContext(ctx, "callgrind_control", "-d", pid).CombinedOutput(); err != nil {
		return instructionCount{}, fmt.Errorf("callgrind_control -d: %v: %s", err, out)
	}
	after, err := runtimeAllocations(admin)
	if err != nil {
		return instructionCount{}, err
	}
	// One dump per thread. The runtime's sysmon thread is left out: it
	// wakes every 20 µs while the process is busy, so what it executes
	// follows the run's time, which callgrind stretches by as much as the
	// machine's load, not its searches: with it, production's runs
	// scattered by ±1.5 %, without it by ±0.4 %.
	dumps, _ := filepath.Glob(filepath.Join(dir, "out.1-*"))
	if len(dumps) == 0 {
		return instructionCount{}, errors.New("callgrind wrote no dump")
	}
	var total float64
	for _, dump := range dumps {
		n, sysmon, err := callgrindTotal(dump)
		if err != nil {
			return instructionCount{}, err
		}
		if !sysmon {
			total += n
		}
	}
	return instructionCount{Instructions: total / float64(requests), Bytes: (after - before) / float64(requests)}, nil
}

// instructionCount is one run under callgrind, per search.
type instructionCount struct {
	Instructions float64
	Bytes        float64 // allocated on the heap
}

// runtimeAllocations reads the bytes the process has allocated on its heap
// so far, go_memstats_alloc_bytes_total on the admin listener's /metrics.
func runtimeAllocations(admin string) (float64, error) {
	families, err := scrapeMetrics(admin)
	if err != nil {
		return 0, err
	}
	f := families["go_memstats_alloc_bytes_total"]
	if f == nil || len(f.GetMetric()) == 0 {
		return 0, errors.New("GET /metrics: no go_memstats_alloc_bytes_total")
	}
	return f.GetMetric()[0].GetCounter().GetValue(), nil
}

// searches sends n of the book's POSTs at -c 4 with ab, and fails on any
// failed or non-2xx one: a count of errors would not be a count of searches.
func (b *bench) searches(ctx context.Context, url string, n int) error {
	out, err := exec.CommandContext(ctx, "ab", "-q", "-c", "4", "-n", strconv.Itoa(n), "-p", b.postFile,
		"-H", "Cookie: "+benchCookie, "-H", "Content-type: application/x-www-form-urlencoded", url+"/search").CombinedOutput()
	if err != nil {
		return fmt.Errorf("ab: %v\n%s", err, out)
	}
	r, err := parseAB(string(out))
	if err != nil {
		return err
	}
	if r.Failed > 0 || r.Non2xx > 0 || r.Complete != n {
		return fmt.Errorf("ab: %d of %d complete, %d failed (connect %d, receive %d, length %d, exceptions %d), %d non-2xx",
			r.Complete, n, r.Failed, r.FailedConnect, r.FailedReceive, r.FailedLength, r.FailedExcept, r.Non2xx)
	}
	return nil
}

// callgrindTotal reads the instruction count of a callgrind dump, its
// summary or totals line, and whether the dump is of the runtime's sysmon
// thread: the only thread that runs runtime.sysmon.
func callgrindTotal(path string) (total float64, sysmon bool, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, false, err
	}
	found := false
	for line := range strings.SplitSeq(string(data), "\n") {
		if strings.HasSuffix(line, " runtime.sysmon") || strings.Contains(line, " runtime.sysmon [") {
			sysmon = true
		}
		for _, prefix := range []string{"summary:", "totals:"} {
			if v, ok := strings.CutPrefix(line, prefix); ok && !found {
				if fields := strings.Fields(v); len(fields) > 0 {
					if total, err = strconv.ParseFloat(fields[0], 64); err != nil {
						return 0, false, fmt.Errorf("%s: %s: %w", path, line, err)
					}
					found = true
				}
			}
		}
	}
	if !found {
		return 0, false, fmt.Errorf("%s: no summary or totals line", path)
	}
	return total, sysmon, nil
}
