package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"example.com/shopsession/internal/recommender"
)

// The recommender scenario (BENCH_ONLY=recommender): the production build
// with RECOMMENDER_URL set, at outageConcurrency, against the reference
// recommender served by the bench on a loopback port of its own. A steady
// row, then the recommender slower than RECOMMENDER_TIMEOUT, down, and
// failing every other call by its own -fail-every: real failures, not
// injected ones. Each fault row is judged as bench/outage.go judges a Redis
// outage: every page served, the capacity kept, and the share of pages with
// recommendations; and on the longest page against the timeout.
const (
	recommenderTimeout = 100 * time.Millisecond
	// recommenderSlowDelay holds every answer back well beyond the timeout.
	recommenderSlowDelay = time.Second
	// recommenderPageSlack is what the longest page may take beyond
	// RECOMMENDER_TIMEOUT and the steady row's longest page: the 2-core
	// machine's scheduling, which the steady row's longest shows only once.
	recommenderPageSlack = 100 * time.Millisecond
)

// benchRecommender is the reference recommender on a free loopback port.
type benchRecommender struct {
	*recommender.Server
	url string
	srv *http.Server
}

func startBenchRecommender(settings recommender.Settings) (*benchRecommender, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &benchRecommender{Server: recommender.New(settings), url: "http://" + ln.Addr().String()}
	// Idle longer than the shop keeps a connection, so that the shop, not
	// the recommender, closes idle ones: no call finds its connection gone.
	r.srv = &http.Server{Handler: r.Handler(), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 90 * time.Second}
	go r.srv.Serve(ln)
	return r, nil
}

// close ends the server and every answer it holds back.
func (r *benchRecommender) close() { r.srv.Close() }

func recommenderEnv(url string) []string {
	return []string{"RECOMMENDER_URL=" + url, "RECOMMENDER_TIMEOUT=" + recommenderTimeout.String()}
}

// recommenderScenarios measures the steady row, then each fault row against
// its throughput and longest page.
func (b *bench) recommenderScenarios(ctx context.Context) ([]scenario, error) {
	steady, err := b.recommenderSteady(ctx)
	if err != nil {
		return nil, err
	}
	out := []scenario{steady}
	steadyRPS, steadyLongest := steady.Summary.RequestsPerS, steady.Summary.Percentiles["100"]
	for _, row := range []recommenderFault{
		{"recommender slow", &recommender.Settings{Delay: recommenderSlowDelay}, fmt.Sprintf("(the recommender answers after %v)", recommenderSlowDelay),
			"every answer slower than RECOMMENDER_TIMEOUT", slowMinRatio, [2]float64{0, 0}, "0 %: every call outlasts RECOMMENDER_TIMEOUT"},
		{"recommender down", nil, "(nothing listens there: connection refused)",
			"the recommender stopped for the whole run", outageMinRatio, [2]float64{0, 0}, "0 %: no page claims what the recommender could not give"},
		{"recommender 50 % failing", &recommender.Settings{FailEvery: 2}, "(the recommender answers every other call 503: -fail-every 2)",
			"every other call answered 503", outageMinRatio, [2]float64{everyOtherRead - everyOtherTolerance, everyOtherRead + everyOtherTolerance},
			fmt.Sprintf("%.1f %% to %.1f %%: the breaker stays closed", (everyOtherRead-everyOtherTolerance)*100, (everyOtherRead+everyOtherTolerance)*100)},
	} {
		sc, err := b.recommenderFaultScenario(ctx, row, steady.Name, steadyRPS, steadyLongest)
		if err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	return out, nil
}

// recommenderFault is one fault row: the recommender's settings (nil:
// nothing listens at RECOMMENDER_URL) and what the row must show.
type recommenderFault struct {
	name     string
	settings *recommender.Settings
	setup    string
	fault    string
	minRatio float64    // of the steady row's req/s
	share    [2]float64 // of pages with recommendations, lowest and highest
	want     string     // the share, in words
}

func (b *bench) recommenderFaultScenario(ctx context.Context, row recommenderFault, steadyName string, steadyRPS, steadyLongest float64) (scenario, error) {
	name := fmt.Sprintf("%s -c %d", row.name, outageConcurrency)
	var url string
	if row.settings == nil {
		port, err := freePort()
		if err != nil {
			return scenario{}, err
		}
		url = "http://127.0.0.1:" + strconv.Itoa(port)
	} else {
		rec, err := startBenchRecommender(*row.settings)
		if err != nil {
			return scenario{}, fmt.Errorf("%s: %w", name, err)
		}
		defer rec.close()
		url = rec.url
	}
	env := recommenderEnv(url)
	sc := scenario{Name: name, Build: "production", Setup: append(env, row.setup),
		Hypothesis: fmt.Sprintf("%s, RECOMMENDER_TIMEOUT=%v: no failed or non-2xx response, req/s at least %.0f %% of %s, no page longer than the timeout plus steady's longest plus %v, recommendations on %s",
			row.fault, recommenderTimeout, row.minRatio*100, steadyName, recommenderPageSlack, row.want)}
	app, err := b.start(ctx, b.prodBinary, env)
	if err != nil {
		return sc, fmt.Errorf("%s: %w", name, err)
	}
	defer app.stop()
	callsBefore, err := app.recommenderCalls()
	if err != nil {
		return sc, fmt.Errorf("%s: %w", name, err)
	}
	m, err := b.measureFault(ctx, app, name, b.seconds)
	if err != nil {
		return sc, err
	}
	callsAfter, err := app.recommenderCalls()
	if err != nil {
		return sc, fmt.Errorf("%s: %w", name, err)
	}
	if err := app.stop(); err != nil {
		return sc, fmt.Errorf("%s: stop: %w", name, err)
	}
	sc.Runs, sc.Summary = []measurement{m}, m.AB
	sc.judgeServed()
	b.judgeThroughput(&sc, steadyRPS, row.minRatio)
	sc.judgeLongestPage(steadyLongest)
	sc.judgeRecommended(row.share[0], row.share[1], row.want)
	log := app.stderr.String()
	probes := strings.Count(log, `msg="recommender circuit breaker half-open`)
	if row.settings != nil && row.settings.Delay > 0 {
		// As for a slow Redis: only the calls before the breaker opened,
		// those in flight then, and one probe a cool-down wait.
		waited := int64(callsAfter["timeout"] - callsBefore["timeout"])
		limit := int64(serviceBreakerFailures + 2*outageConcurrency + probes)
		sc.TimeoutWaits = &waited
		sc.judge(waited <= limit, fmt.Sprintf("%d of %d requests waited for RECOMMENDER_TIMEOUT, at most %d with %d probes", waited, m.AB.Complete, limit, probes))
	}
	if row.settings != nil && row.settings.FailEvery > 0 {
		opened := strings.Count(log, `msg="recommender circuit breaker open`)
		sc.judge(opened == 0, fmt.Sprintf("the breaker opened %d times (a run of %d failures in the calls' start order opens it)", opened, serviceBreakerFailures))
	}
	sc.Findings = append(sc.Findings, recommenderFindings(log, callsBefore, callsAfter))
	return sc, nil
}

// recommenderSteady is the business steady state with the recommender
// answering every call, warmed up as the other steady rows are.
func (b *bench) recommenderSteady(ctx context.Context) (scenario, error) {
	name := fmt.Sprintf("recommender steady -c %d", outageConcurrency)
	rec, err := startBenchRecommender(recommender.Settings{})
	if err != nil {
		return scenario{}, fmt.Errorf("%s: %w", name, err)
	}
	defer rec.close()
	env := recommenderEnv(rec.url)
	sc := scenario{Name: name, Build: "production", Setup: env,
		Hypothesis: fmt.Sprintf("the business steady state with the recommender at -c %d: no failed or non-2xx response, recommendations on ≥ %.1f %% of search pages", outageConcurrency, steadyRecommended*100)}
	var before, after map[string]float64
	var log string
	m, err := b.measureThen(ctx, runSpec{label: name, binary: b.prodBinary, env: env, concurrency: outageConcurrency,
		before: func(app *appProcess) (err error) { before, err = app.recommenderCalls(); return err },
		after: func(app *appProcess) (err error) {
			after, err = app.recommenderCalls()
			log = app.stderr.String()
			return err
		}})
	if err != nil {
		return sc, err
	}
	sc.Runs, sc.Summary = []measurement{m}, m.AB
	sc.judgeServed()
	sc.judgeSteadyRecommended()
	sc.Findings = append(sc.Findings, fmt.Sprintf("%.0f req/s, mean %.2f ms, longest page %.0f ms; the recommender got %d calls",
		m.AB.RequestsPerS, m.AB.MeanMS, m.AB.Percentiles["100"], rec.Requests()), recommenderFindings(log, before, after))
	return sc, nil
}

// judgeLongestPage: no page waits for the recommender longer than its
// timeout, beyond what a steady page takes.
func (sc *scenario) judgeLongestPage(steadyLongestMS float64) {
	limit := float64((recommenderTimeout + recommenderPageSlack).Milliseconds()) + steadyLongestMS
	longest := sc.Summary.Percentiles["100"]
	sc.judge(longest <= limit, fmt.Sprintf("longest page %.0f ms, 99th percentile %.0f ms, mean %.2f ms (want longest ≤ %.0f ms: the timeout %v + steady's longest %.0f ms + %v)",
		longest, sc.Summary.Percentiles["99"], sc.Summary.MeanMS, limit, recommenderTimeout, steadyLongestMS, recommenderPageSlack))
}

// recommenderFindings says what the shop counted of its calls and its
// breaker; call it after the app has stopped.
func recommenderFindings(log string, before, after map[string]float64) string {
	var calls []string
	for _, outcome := range []string{"ok", "status", "timeout", "transport", "invalid", "canceled"} {
		if n := after[outcome] - before[outcome]; n > 0 {
			calls = append(calls, fmt.Sprintf("%s %.0f", outcome, n))
		}
	}
	if len(calls) == 0 {
		calls = []string{"none"}
	}
	return fmt.Sprintf("calls to the recommender: %s; its breaker opened %d times, half-open %d, closed %d",
		strings.Join(calls, ", "),
		strings.Count(log, `msg="recommender circuit breaker open`),
		strings.Count(log, `msg="recommender circuit breaker half-open`),
		strings.Count(log, `msg="recommender circuit breaker closed`))
}

// recommenderCalls reads shopsession_recommender_requests_total by outcome
// from the admin listener's /metrics.
func (a *appProcess) recommenderCalls() (map[string]float64, error) {
	families, err := scrapeMetrics(a.admin)
	if err != nil {
		return nil, err
	}
	calls := families["shopsession_recommender_requests_total"]
	if calls == nil {
		return nil, errors.New("GET /metrics: no shopsession_recommender_requests_total (is RECOMMENDER_URL set?)")
	}
	out := map[string]float64{}
	for _, m := range calls.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "outcome" {
				out[l.GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	return out, nil
}
