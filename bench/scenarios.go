package main

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"example.com/shopsession/chaos"
)

const (
	latencyDelay = 0.1 // seconds, as in the reference's run
	// latencyTolerance is how far the measured increase may stray from the
	// predicted one, as a fraction of the prediction.
	latencyTolerance = 0.05
	// chaosOffTolerance bounds the chaos build's cost with CHAOS unset.
	chaosOffTolerance = 0.02
	probeRequests     = 20
	loadConcurrency   = 64
	loadPeakRSSMB     = 30
	warmUpRequests    = 50
	benchCookie       = "sessionID=something"
	// sweepRecommendedBelow: a sweep's delay below it leaves the default
	// REDIS_TIMEOUT (2 s) unreached, so every page keeps its recommendations.
	sweepRecommendedBelow = 1.0
)

// measurement is one ab run against one process.
type measurement struct {
	AB         abResult        `json:"ab"`
	Counters   *chaos.Counters `json:"counters,omitempty"` // what the ab run added, chaos build only
	ErrorEvery int64           `json:"error_every,omitempty"`
	Pages      *pageCounts     `json:"pages,omitempty"` // search pages the service counted during the ab run, from /metrics
	CPUSeconds float64         `json:"cpu_seconds"`     // user + system CPU the service used during the ab run
	// CPUPerRequestUS is CPUSeconds divided by the requests ab completed.
	CPUPerRequestUS float64 `json:"cpu_per_request_us,omitempty"`
	// RedisCPUPerRequestUS is the CPU Redis used during the ab run, over the
	// same requests: what each page cost the server beside the service.
	RedisCPUPerRequestUS float64 `json:"redis_cpu_per_request_us,omitempty"`
}

// scenario is one row of the report.
type scenario struct {
	Name         string        `json:"name"`
	Build        string        `json:"build"`
	Setup        []string      `json:"setup,omitempty"` // environment, or the PUT that switched the experiment
	Runs         []measurement `json:"runs"`
	Summary      abResult      `json:"summary"` // medians of the runs' figures; counts are sums
	DeltaMS      *float64      `json:"delta_mean_ms,omitempty"`
	PredictedMS  *float64      `json:"predicted_delta_ms,omitempty"`
	Verdict      string        `json:"verdict,omitempty"` // PASS or DEVIATED; empty for the baseline
	Hypothesis   string        `json:"hypothesis,omitempty"`
	Findings     []string      `json:"findings,omitempty"`
	Deviations   []string      `json:"deviations,omitempty"` // the findings that made it DEVIATED
	DelaySeconds float64       `json:"delay_seconds,omitempty"`
	PeakRSSKB    int           `json:"peak_rss_kb,omitempty"`
	TimeoutWaits *int64        `json:"timeout_waits,omitempty"` // slow: requests that waited for REDIS_TIMEOUT
	RecoveryMS   *float64      `json:"recovery_ms,omitempty"`   // recovery: Redis answering to the first page with recommendations
	// Ratio is the ratio of alternated runs a verdict was judged on
	// (judgeInterval, judgePairs), each run against the reference runs
	// either side of it, with its 95 % interval.
	Ratio *ratioCI `json:"ratio,omitempty"`
	// CPUPerRequestUS is the median of the runs' CPU per request.
	CPUPerRequestUS float64    `json:"cpu_per_request_us,omitempty"`
	Injection       *injection `json:"injection,omitempty"` // latency and sweep: what was injected, and the residual
	// The business steady state: the share of search pages with
	// recommendations, over the pages the service counted in all runs.
	Pages            *pageCounts `json:"pages,omitempty"`
	RecommendedShare *float64    `json:"recommended_share,omitempty"`
	// Fleet is how fast the instance followed ctl (the fleet scenario).
	Fleet *fleetTiming `json:"fleet,omitempty"`
}

// Shares of search pages with recommendations that the scenarios expect.
const (
	steadyRecommended   = 0.999 // every page, give or take the odd one
	everyOtherRead      = 0.5   // experiment 2 with error_every 2
	everyOtherTolerance = 0.005
)

// judgeRecommended sums the search pages the runs counted and judges the
// share with recommendations against [lowest, highest].
func (s *scenario) judgeRecommended(lowest, highest float64, want string) {
	var p pageCounts
	counted := false
	for _, r := range s.Runs {
		if r.Pages != nil {
			p.WithRecommendations += r.Pages.WithRecommendations
			p.WithoutRecommendations += r.Pages.WithoutRecommendations
			counted = true
		}
	}
	if !counted {
		return
	}
	s.Pages = &p
	total := p.WithRecommendations + p.WithoutRecommendations
	if total == 0 {
		s.judge(false, "/metrics counted no search pages")
		return
	}
	share := float64(p.WithRecommendations) / float64(total)
	s.RecommendedShare = &share
	s.judge(share >= lowest && share <= highest, fmt.Sprintf(
		"recommendations on %d of %d search pages (%.2f %%), want %s", p.WithRecommendations, total, share*100, want))
}

func (s *scenario) judgeSteadyRecommended() {
	s.judgeRecommended(steadyRecommended, 1, fmt.Sprintf("≥ %.1f %%", steadyRecommended*100))
}

func (s *scenario) judge(held bool, finding string) {
	s.Findings = append(s.Findings, finding)
	if !held {
		s.Verdict = verdictDeviated
		s.Deviations = append(s.Deviations, finding)
	} else if s.Verdict == "" {
		s.Verdict = verdictPass
	}
}

// inconclusive records a finding that cannot be judged from this run's
// figures: the scenario is INCONCLUSIVE unless another finding deviated.
func (s *scenario) inconclusive(finding string) {
	s.Findings = append(s.Findings, finding)
	if s.Verdict != verdictDeviated {
		s.Verdict = verdictInconclusive
	}
}

// judgeInterval records a ratio judged by intervalVerdict against [low,
// high], described by what.
func (s *scenario) judgeInterval(ci ratioCI, low, high float64, what string) {
	s.Ratio = &ci
	s.judgeByInterval(intervalVerdict(ci, low, high), fmt.Sprintf("%s %s, want %s", what, ci, boundsText(low, high)),
		"too noisy a run to tell")
}

// judgeByInterval records a finding with the verdict an interval gave it
// (stats.IntervalVerdict); an inconclusive one says why it could not tell.
func (s *scenario) judgeByInterval(verdict, finding, why string) {
	switch verdict {
	case verdictPass:
		s.judge(true, finding)
	case verdictDeviated:
		s.judge(false, finding)
	default:
		s.inconclusive(finding + "; the interval straddles a bound: " + why)
	}
}

// judgePairs records ratios of alternated runs judged by pairsVerdict
// against [low, high], described by what.
func (s *scenario) judgePairs(ratios []float64, low, high float64, what string) {
	ci := bootstrapRatio(ratios, newRand())
	s.Ratio = &ci
	beyond := 0
	for _, r := range ratios {
		if r < low || r > high {
			beyond++
		}
	}
	finding := fmt.Sprintf("%s %s (runs %s; %d of %d beyond the bounds), want %s", what, ci, formatRatios(ratios), beyond, len(ratios), boundsText(low, high))
	switch pairsVerdict(ratios, ci, low, high) {
	case verdictPass:
		s.judge(true, finding)
	case verdictDeviated:
		s.judge(false, finding+": every run beyond the same bound")
	default:
		s.inconclusive(finding + ": neither the interval within the bounds nor every run beyond one, too noisy a run to tell")
	}
}

func boundsText(low, high float64) string {
	switch {
	case low <= 0:
		return fmt.Sprintf("at most %.2f", high)
	case math.IsInf(high, 1):
		return fmt.Sprintf("at least %.2f", low)
	}
	return fmt.Sprintf("within %.2f–%.2f", low, high)
}

type machine struct {
	CPUs         int    `json:"cpus"`
	GoVersion    string `json:"go_version"`
	RedisVersion string `json:"redis_version"`
	RedisSource  string `json:"redis_source"`
}

type report struct {
	Started       time.Time   `json:"started"`
	Seconds       int         `json:"seconds_per_run"`
	Concurrency   int         `json:"concurrency"`
	Pairs         int         `json:"pairs"`
	Machine       machine     `json:"machine"`
	ChaosOffRatio float64     `json:"chaos_off_to_production_mean_ratio"`
	ChaosOffCPU   *ratioCI    `json:"chaos_off_cpu_per_request_ratio,omitempty"`
	ChaosOffMean  *ratioCI    `json:"chaos_off_mean_ratio,omitempty"`
	Scenarios     []scenario  `json:"scenarios"`
	Catalogue     []agreement `json:"catalogue,omitempty"` // the catalogue's agreement table
}

func (r *report) allHeld() bool {
	return !slices.ContainsFunc(r.Scenarios, func(s scenario) bool { return s.Verdict == "DEVIATED" })
}

// bench holds what every scenario needs.
type bench struct {
	settings
	redis    *redisTarget
	workDir  string
	postFile string
	progress *progress
	// floorMeanMS is the floor's -c 1 mean, against which the floor's own
	// delayed runs are measured.
	floorMeanMS float64
}

func runScenarios(ctx context.Context, s settings, p *progress) (*report, error) {
	workDir, err := os.MkdirTemp("", "shopsession-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(workDir)
	b := &bench{settings: s, workDir: workDir, postFile: filepath.Join(workDir, "query.txt"), progress: p}
	// The body the book's echo "query=Apples" > query.txt writes.
	if err := os.WriteFile(b.postFile, []byte("query=Apples\n"), 0o644); err != nil {
		return nil, err
	}
	if b.redis, err = openRedis(ctx, s.redisURL, workDir); err != nil {
		return nil, err
	}
	defer b.redis.close()
	p.note("redis: %s %s", b.redis.source, b.redis.version)

	r := &report{Started: time.Now().UTC(), Seconds: s.seconds, Concurrency: s.concurrency, Pairs: s.pairs,
		Machine: machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), RedisVersion: b.redis.version, RedisSource: b.redis.source}}
	if s.only == "catalogue" {
		if r.Scenarios, r.Catalogue, err = b.catalogueScenarios(ctx, true); err != nil {
			return nil, err
		}
		p.done()
		return r, nil
	}
	// The scenarios that run alone (BENCH_ONLY), each with its rows.
	alone := map[string]func(context.Context) ([]scenario, error){
		"fleet":       b.fleetScenarios,
		"recommender": b.recommenderScenarios,
		"validate":    b.validateScenarios,
		"instructions": func(ctx context.Context) ([]scenario, error) {
			sc, err := b.instructionScenario(ctx)
			return []scenario{sc}, err
		},
		"floor": func(ctx context.Context) ([]scenario, error) {
			_, floors, err := b.floorScenarios(ctx)
			return floors, err
		},
	}
	if run, ok := alone[s.only]; ok {
		if r.Scenarios, err = run(ctx); err != nil {
			return nil, err
		}
		p.done()
		return r, nil
	}

	steady := scenario{Name: "steady", Build: "production",
		Hypothesis: fmt.Sprintf("the business steady state: recommendations on ≥ %.1f %% of search pages", steadyRecommended*100)}
	chaosOff := scenario{Name: "chaos-off", Build: "chaos", Hypothesis: fmt.Sprintf(
		"CPU per request within %.0f %% of production's: the 95 %% interval of the ratio (bootstrap over runs, each against the production runs either side of it) lies below %.2f", chaosOffTolerance*100, 1+chaosOffTolerance)}
	// A B A B … A: each chaos-off run is compared with the production runs
	// just before and after it, which cancels the machine's slow drift.
	for i := range s.pairs + 1 {
		prod, err := b.measure(ctx, fmt.Sprintf("steady %d/%d", i+1, s.pairs+1), s.prodBinary, nil)
		if err != nil {
			return nil, err
		}
		steady.Runs = append(steady.Runs, prod)
		if i == s.pairs {
			break
		}
		off, err := b.measure(ctx, fmt.Sprintf("chaos-off %d/%d", i+1, s.pairs), s.chaosBinary, nil)
		if err != nil {
			return nil, err
		}
		chaosOff.Runs = append(chaosOff.Runs, off)
	}
	steady.Summary, chaosOff.Summary = summarize(steady.Runs), summarize(chaosOff.Runs)
	steady.CPUPerRequestUS, chaosOff.CPUPerRequestUS = medianCPU(steady.Runs), medianCPU(chaosOff.Runs)
	chaosOff.DeltaMS = ptr(chaosOff.Summary.MeanMS - steady.Summary.MeanMS)
	ratioOf := func(f func(measurement) float64) ratioCI {
		return bootstrapRatio(neighbourRatios(figures(steady.Runs, f), figures(chaosOff.Runs, f)), newRand())
	}
	cpu := ratioOf(func(m measurement) float64 { return m.CPUPerRequestUS })
	mean := ratioOf(func(m measurement) float64 { return m.AB.MeanMS })
	r.ChaosOffRatio, r.ChaosOffCPU, r.ChaosOffMean = mean.Ratio, &cpu, &mean
	chaosOff.judgeInterval(cpu, 0, 1+chaosOffTolerance, fmt.Sprintf(
		"chaos-off/production CPU per request (%.1f µs against %.1f; mean time %s):", chaosOff.CPUPerRequestUS, steady.CPUPerRequestUS, mean))
	steady.judgeSteadyRecommended()
	chaosOff.judgeSteadyRecommended()
	r.Scenarios = append(r.Scenarios, steady, chaosOff)

	if s.slowBinary != "" {
		calibration, err := b.calibrationScenario(ctx)
		if err != nil {
			return nil, err
		}
		r.Scenarios = append(r.Scenarios, calibration)
	}

	instructions, err := b.instructionScenario(ctx)
	if err != nil {
		return nil, err
	}
	r.Scenarios = append(r.Scenarios, instructions)

	floor1, floors, err := b.floorScenarios(ctx)
	if err != nil {
		return nil, err
	}
	r.Scenarios = append(r.Scenarios, floors...)
	b.floorMeanMS = floor1.Summary.MeanMS

	// The chaos scenarios share one process: it starts with the latency
	// experiment from its environment, and PUT /debug/chaos switches it to
	// the next experiment.
	latencyEnv := []string{"CHAOS=latency", "CHAOS_DELAY_SECONDS=" + formatSeconds(latencyDelay)}
	chaosApp, err := b.start(ctx, s.chaosBinary, latencyEnv)
	if err != nil {
		return nil, fmt.Errorf("chaos scenarios: %w", err)
	}
	defer chaosApp.stop()
	latency, err := b.latencyScenario(ctx, chaosApp, "latency", latencyDelay, steady.Summary.MeanMS, latencyEnv)
	if err != nil {
		return nil, err
	}
	errScenario, err := b.errorScenario(ctx, chaosApp)
	if err != nil {
		return nil, err
	}
	r.Scenarios = append(r.Scenarios, latency, errScenario)
	for _, d := range s.delays {
		body := fmt.Sprintf(`{"experiment":"latency","delay_seconds":%s}`, formatSeconds(d))
		if err := chaosApp.setExperiment(body); err != nil {
			return nil, err
		}
		sweep, err := b.latencyScenario(ctx, chaosApp, "sweep "+formatSeconds(d), d, steady.Summary.MeanMS, []string{"PUT /debug/chaos " + body})
		if err != nil {
			return nil, err
		}
		if d < sweepRecommendedBelow {
			sweep.judgeSteadyRecommended()
		}
		r.Scenarios = append(r.Scenarios, sweep)
	}
	if err := chaosApp.stop(); err != nil {
		return nil, fmt.Errorf("chaos scenarios: stop: %w", err)
	}
	steadyCPU, latencyCPU, err := b.injectionCPUScenarios(ctx)
	if err != nil {
		return nil, err
	}
	r.Scenarios = append(r.Scenarios, steadyCPU, latencyCPU)
	blast, err := b.blastRadiusScenarios(ctx)
	if err != nil {
		return nil, err
	}
	r.Scenarios = append(r.Scenarios, blast...)

	if s.loadSeconds > 0 {
		load, err := b.loadScenario(ctx)
		if err != nil {
			return nil, err
		}
		r.Scenarios = append(r.Scenarios, load)
	}
	outages, err := b.outageScenarios(ctx)
	if err != nil {
		return nil, err
	}
	r.Scenarios = append(r.Scenarios, outages...)
	recommenderRows, err := b.recommenderScenarios(ctx)
	if err != nil {
		return nil, err
	}
	r.Scenarios = append(r.Scenarios, recommenderRows...)
	off, on, err := b.metricsCostScenarios(ctx)
	if err != nil {
		return nil, err
	}
	r.Scenarios = append(r.Scenarios, off, on)
	validations, err := b.validateScenarios(ctx)
	if err != nil {
		return nil, err
	}
	r.Scenarios = append(r.Scenarios, validations...)
	catalogue, table, err := b.catalogueScenarios(ctx, false)
	if err != nil {
		return nil, err
	}
	r.Scenarios, r.Catalogue = append(r.Scenarios, catalogue...), table
	fleet, err := b.fleetScenarios(ctx)
	if err != nil {
		return nil, err
	}
	r.Scenarios = append(r.Scenarios, fleet...)
	p.done()
	return r, nil
}

// latencyScenario checks experiment 1: the mean rises by delay × the round
// trips per request that the chaos build counted.
func (b *bench) latencyScenario(ctx context.Context, app *appProcess, name string, delay, steadyMeanMS float64, setup []string) (scenario, error) {
	sc := scenario{Name: name, Build: "chaos", Setup: setup, DelaySeconds: delay,
		Hypothesis: fmt.Sprintf("mean = steady + %s s × Redis round trips per request, within ±%.0f %%", formatSeconds(delay), latencyTolerance*100)}
	m, err := b.measureOn(ctx, app, runSpec{label: name})
	if err != nil {
		return sc, err
	}
	sc.Runs, sc.Summary = []measurement{m}, m.AB
	// Searches the store served, from the same counters: ab abandons the
	// requests in flight when -t runs out, so its count can be short by the
	// concurrency.
	c := m.Counters
	if c.Reads == 0 {
		return sc, fmt.Errorf("%s: the chaos build counted no searches", name)
	}
	perRequest := float64(c.RedisRoundTrips) / float64(c.Reads)
	predicted := delay * 1000 * perRequest
	delta := m.AB.MeanMS - steadyMeanMS
	sc.DeltaMS, sc.PredictedMS = &delta, &predicted
	off := (delta - predicted) / predicted
	sc.judge(math.Abs(off) <= latencyTolerance, fmt.Sprintf(
		"%.2f round trips per request (%d trips, %d delays, %d searches); predicted +%.2f ms, measured +%.2f ms (%+.2f %%)",
		perRequest, c.RedisRoundTrips, c.DelaysInjected, c.Reads, predicted, delta, off*100))
	if err := b.judgeInjection(ctx, &sc, delay, delta, c.DelaysInjected, c.DelaySecondsInjected, c.Reads); err != nil {
		return sc, err
	}
	if name == "latency" {
		sc.judgeSteadyRecommended()
	}
	return sc, nil
}

// errorScenario checks experiment 2: failed reads are handled, every Nth one
// fails, and a visitor sees recommendations every other time.
func (b *bench) errorScenario(ctx context.Context, app *appProcess) (scenario, error) {
	const body = `{"experiment":"error"}`
	sc := scenario{Name: "error", Build: "chaos", Setup: []string{"PUT /debug/chaos " + body},
		Hypothesis: "no failed or non-2xx response; errors injected = ⌊reads / N⌋; a visitor refreshing /search sees recommendations every other time"}
	if err := app.setExperiment(body); err != nil {
		return sc, err
	}
	var probe []bool
	m, err := b.measureOn(ctx, app, runSpec{label: "error", after: func(app *appProcess) error {
		var err error
		probe, err = probeRecommendations(app)
		return err
	}})
	if err != nil {
		return sc, err
	}
	sc.Runs, sc.Summary = []measurement{m}, m.AB
	ab := m.AB
	failures := ab.FailedConnect + ab.FailedReceive + ab.FailedExcept
	sc.judge(ab.Non2xx == 0 && failures == 0, fmt.Sprintf("%d non-2xx responses, %d connect/receive/exception failures", ab.Non2xx, failures))

	c, every := m.Counters, m.ErrorEvery
	want := c.Reads / every
	sc.judge(c.ErrorsInjected == want, fmt.Sprintf("%d errors injected for %d reads, every %d failing: want ⌊%d/%d⌋ = %d", c.ErrorsInjected, c.Reads, every, c.Reads, every, want))

	shown := 0
	alternates := true
	for i, rec := range probe {
		if rec {
			shown++
		}
		if i > 0 && rec == probe[i-1] {
			alternates = false
		}
	}
	sc.judge(alternates && shown == len(probe)/2, fmt.Sprintf("probe: recommendations on %d of %d sequential GETs, alternating: %v (%s)", shown, len(probe), alternates, probePattern(probe)))
	sc.judgeRecommended(everyOtherRead-everyOtherTolerance, everyOtherRead+everyOtherTolerance,
		fmt.Sprintf("%.0f %% ± %.1f %%", everyOtherRead*100, everyOtherTolerance*100))
	return sc, nil
}

// loadScenario holds the production build under 64 concurrent clients and
// reads the process's peak resident memory.
func (b *bench) loadScenario(ctx context.Context) (scenario, error) {
	sc := scenario{Name: fmt.Sprintf("load -c %d", loadConcurrency), Build: "production",
		Hypothesis: fmt.Sprintf("%d clients for %d s: no failed or non-2xx response, peak RSS at most %d MB", loadConcurrency, b.loadSeconds, loadPeakRSSMB)}
	var peakKB int
	m, err := b.measureThen(ctx, runSpec{label: sc.Name, binary: b.prodBinary, seconds: b.loadSeconds, concurrency: loadConcurrency,
		after: func(app *appProcess) error {
			var err error
			peakKB, err = app.peakRSSKB()
			return err
		}})
	if err != nil {
		return sc, err
	}
	sc.Runs, sc.Summary, sc.PeakRSSKB = []measurement{m}, m.AB, peakKB
	sc.judge(m.AB.Failed == 0 && m.AB.Non2xx == 0, fmt.Sprintf("%d requests, %d failed, %d non-2xx", m.AB.Complete, m.AB.Failed, m.AB.Non2xx))
	sc.judge(peakKB <= loadPeakRSSMB*1024, fmt.Sprintf("peak RSS %.1f MB", float64(peakKB)/1024))
	sc.judgeSteadyRecommended()
	return sc, nil
}

// probeRecommendations searches with one cookie and reports, per
// response, whether it showed a recommendation.
func probeRecommendations(app *appProcess) ([]bool, error) {
	var shown []bool
	for range probeRequests {
		status, body, err := app.search("Apples", "sessionID=probe")
		if err != nil {
			return nil, err
		}
		if status != 200 {
			return nil, fmt.Errorf("probe: POST /search answered %d", status)
		}
		shown = append(shown, strings.Contains(body, "this amazing product"))
	}
	return shown, nil
}

func probePattern(shown []bool) string {
	var b strings.Builder
	for _, s := range shown {
		if s {
			b.WriteByte('R')
		} else {
			b.WriteByte('-')
		}
	}
	return b.String()
}

// measure runs ab against a fresh process of binary.
func (b *bench) measure(ctx context.Context, label, binary string, env []string) (measurement, error) {
	return b.measureThen(ctx, runSpec{label: label, binary: binary, env: env})
}

// runSpec is one measured run; zero seconds and concurrency take the bench's.
type runSpec struct {
	label, binary        string // binary and env: for a process of its own
	env                  []string
	seconds, concurrency int
	before               func(*appProcess) error // called after the warm-up, before ab
	after                func(*appProcess) error // called after ab, while the process still serves
}

// start runs binary against the bench's Redis.
func (b *bench) start(ctx context.Context, binary string, env []string) (*appProcess, error) {
	app, err := startApp(ctx, binary, append([]string{"REDIS_URL=" + b.redis.url}, env...))
	if err != nil {
		return nil, err
	}
	app.chaos = binary == b.chaosBinary
	return app, nil
}

// measureThen runs spec against a process of its own, which it then stops.
func (b *bench) measureThen(ctx context.Context, spec runSpec) (measurement, error) {
	app, err := b.start(ctx, spec.binary, spec.env)
	if err != nil {
		return measurement{}, fmt.Errorf("%s: %w", spec.label, err)
	}
	defer app.stop()
	m, err := b.measureOn(ctx, app, spec)
	if err != nil {
		return m, err
	}
	if err := app.stop(); err != nil {
		return m, fmt.Errorf("%s: stop: %w", spec.label, err)
	}
	return m, nil
}

// measureOn clears the service's keys, warms app up, runs ab against it and
// calls spec.after. For the chaos build it records what the experiment's
// counters added during the ab run.
func (b *bench) measureOn(ctx context.Context, app *appProcess, spec runSpec) (measurement, error) {
	label := spec.label
	seconds, concurrency := cmp.Or(spec.seconds, b.seconds), cmp.Or(spec.concurrency, b.concurrency)
	var m measurement
	if err := b.redis.flush(ctx); err != nil {
		return m, fmt.Errorf("%s: clear the service's keys: %w", label, err)
	}
	for range warmUpRequests {
		if _, _, err := app.search("Apples", benchCookie); err != nil {
			return m, fmt.Errorf("%s: warm-up: %w", label, err)
		}
	}
	if spec.before != nil {
		if err := spec.before(app); err != nil {
			return m, fmt.Errorf("%s: %w", label, err)
		}
	}
	before, err := app.counts()
	if err != nil {
		return m, fmt.Errorf("%s: %w", label, err)
	}
	cpuBefore, err := app.cpuSeconds()
	if err != nil {
		return m, fmt.Errorf("%s: %w", label, err)
	}
	redisBefore, err := b.redis.cpuSeconds(ctx)
	if err != nil {
		return m, fmt.Errorf("%s: %w", label, err)
	}
	b.progress.start(label, seconds)
	m.AB, err = runAB(ctx, abOptions{url: app.url + "/search", seconds: seconds, concurrency: concurrency,
		postFile: b.postFile, cookie: benchCookie}, b.workDir)
	b.progress.stop()
	if err != nil {
		return m, fmt.Errorf("%s: %w", label, err)
	}
	cpuAfter, err := app.cpuSeconds()
	if err != nil {
		return m, fmt.Errorf("%s: %w", label, err)
	}
	redisAfter, err := b.redis.cpuSeconds(ctx)
	if err != nil {
		return m, fmt.Errorf("%s: %w", label, err)
	}
	m.CPUSeconds = cpuAfter - cpuBefore
	if m.AB.Complete > 0 {
		m.CPUPerRequestUS = m.CPUSeconds * 1e6 / float64(m.AB.Complete)
		m.RedisCPUPerRequestUS = (redisAfter - redisBefore) * 1e6 / float64(m.AB.Complete)
	}
	after, err := app.counts()
	if err != nil {
		return m, fmt.Errorf("%s: %w", label, err)
	}
	m.countedBetween(app, before, after)
	m.ErrorEvery = after.chaos.ErrorEvery
	if spec.after != nil {
		if err := spec.after(app); err != nil {
			return m, fmt.Errorf("%s: %w", label, err)
		}
	}
	return m, nil
}

// summarize takes the median of each figure over runs and the sum of each
// count.
func summarize(runs []measurement) abResult {
	var s abResult
	pick := func(f func(abResult) float64) float64 {
		vals := make([]float64, len(runs))
		for i, r := range runs {
			vals[i] = f(r.AB)
		}
		return median(vals)
	}
	for _, r := range runs {
		s.Complete += r.AB.Complete
		s.Failed += r.AB.Failed
		s.FailedConnect += r.AB.FailedConnect
		s.FailedReceive += r.AB.FailedReceive
		s.FailedLength += r.AB.FailedLength
		s.FailedExcept += r.AB.FailedExcept
		s.Non2xx += r.AB.Non2xx
	}
	s.RequestsPerS = pick(func(a abResult) float64 { return a.RequestsPerS })
	s.MeanMS = pick(func(a abResult) float64 { return a.MeanMS })
	s.Percentiles = map[string]float64{}
	for p := range 101 {
		key := strconv.Itoa(p)
		s.Percentiles[key] = pick(func(a abResult) float64 { return a.Percentiles[key] })
	}
	return s
}

func median(vals []float64) float64 {
	if len(vals) == 0 {
		return math.NaN()
	}
	sorted := slices.Sorted(slices.Values(vals))
	mid := len(sorted) / 2
	if len(sorted)%2 == 1 {
		return sorted[mid]
	}
	return (sorted[mid-1] + sorted[mid]) / 2
}

func formatSeconds(s float64) string { return strconv.FormatFloat(s, 'f', -1, 64) }

func ptr(f float64) *float64 { return &f }

func formatRatios(ratios []float64) string { return formatFloats(ratios, 3) }

// formatFloats lists vs with prec decimals.
func formatFloats(vs []float64, prec int) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = strconv.FormatFloat(v, 'f', prec, 64)
	}
	return strings.Join(parts, ", ")
}
