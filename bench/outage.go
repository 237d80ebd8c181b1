package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The outage scenarios: the session cache fails and the shop must not care.
// Each runs at outageConcurrency against the production build unless it
// needs the chaos build, and is judged against a steady run at the same
// concurrency in the same bench run.
const (
	outageConcurrency = 16
	// outageMinRatio and slowMinRatio are the shares of steady throughput a
	// Redis that is stopped, or slower than REDIS_TIMEOUT, must leave.
	outageMinRatio = 0.80
	slowMinRatio   = 0.50
	slowTimeout    = "200ms"
	slowDelay      = "1"
	// serviceBreakerFailures mirrors the service's BREAKER_FAILURES default,
	// which the scenarios run with.
	serviceBreakerFailures = 5
	// recoveryDownSeconds is how long Redis is down before the recovery
	// scenario starts it; recoveryLimit is how soon after it answers the
	// first page must show recommendations again.
	recoveryDownSeconds = 2
	recoveryUpSeconds   = 4
	recoveryLimit       = 2 * time.Second
)

// outageScenarios measures steady at outageConcurrency, then outage, slow
// and recovery.
func (b *bench) outageScenarios(ctx context.Context) ([]scenario, error) {
	label := fmt.Sprintf("steady -c %d", outageConcurrency)
	steady := scenario{Name: label, Build: "production"}
	m, err := b.measureThen(ctx, runSpec{label: label, binary: b.prodBinary, concurrency: outageConcurrency})
	if err != nil {
		return nil, err
	}
	steady.Runs, steady.Summary = []measurement{m}, m.AB
	steady.Hypothesis = fmt.Sprintf("the business steady state at -c %d: recommendations on ≥ %.1f %% of search pages", outageConcurrency, steadyRecommended*100)
	steady.judgeSteadyRecommended()
	out := []scenario{steady}
	for _, run := range []func(context.Context, float64) (scenario, error){b.outageScenario, b.slowScenario, b.recoveryScenario} {
		sc, err := run(ctx, steady.Summary.RequestsPerS)
		if err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	return out, nil
}

// outageScenario: the production build with nothing listening at its Redis
// address for the whole run, as when redis-server is stopped.
func (b *bench) outageScenario(ctx context.Context, steadyRPS float64) (scenario, error) {
	name := fmt.Sprintf("outage -c %d", outageConcurrency)
	port, err := freePort()
	if err != nil {
		return scenario{}, err
	}
	env := []string{fmt.Sprintf("REDIS_URL=redis://127.0.0.1:%d/0", port)}
	sc := scenario{Name: name, Build: "production", Setup: append(env, "(nothing listens there: connection refused)"),
		Hypothesis: fmt.Sprintf("Redis stopped for the whole run: no failed or non-2xx response, req/s at least %.0f %% of steady -c %d", outageMinRatio*100, outageConcurrency)}
	app, err := b.start(ctx, b.prodBinary, env)
	if err != nil {
		return sc, fmt.Errorf("%s: %w", name, err)
	}
	defer app.stop()
	m, err := b.measureFault(ctx, app, name, b.seconds)
	if err != nil {
		return sc, err
	}
	if err := app.stop(); err != nil {
		return sc, fmt.Errorf("%s: stop: %w", name, err)
	}
	sc.Runs, sc.Summary = []measurement{m}, m.AB
	sc.judgeServed()
	b.judgeThroughput(&sc, steadyRPS, outageMinRatio)
	sc.judgeRecommended(0, 0, "0 %: no page claims what Redis could not give")
	sc.Findings = append(sc.Findings, breakerChanges(app))
	return sc, nil
}

// slowScenario: the chaos build with every Redis round trip slower than
// REDIS_TIMEOUT. Only the operations before the breaker opens, those in flight
// then, and one probe per cool-down should wait for the timeout.
func (b *bench) slowScenario(ctx context.Context, steadyRPS float64) (scenario, error) {
	name := fmt.Sprintf("slow -c %d", outageConcurrency)
	env := []string{"CHAOS=latency", "CHAOS_DELAY_SECONDS=" + slowDelay, "REDIS_TIMEOUT=" + slowTimeout}
	sc := scenario{Name: name, Build: "chaos", Setup: env,
		Hypothesis: fmt.Sprintf("every round trip %s s, REDIS_TIMEOUT=%s: no failed or non-2xx response, req/s at least %.0f %% of steady -c %d, at most %d + 2 × %d requests wait for the timeout, plus one per probe",
			slowDelay, slowTimeout, slowMinRatio*100, outageConcurrency, serviceBreakerFailures, outageConcurrency)}
	app, err := b.start(ctx, b.chaosBinary, env)
	if err != nil {
		return sc, fmt.Errorf("%s: %w", name, err)
	}
	defer app.stop()
	m, err := b.measureFault(ctx, app, name, b.seconds)
	if err != nil {
		return sc, err
	}
	if err := app.stop(); err != nil {
		return sc, fmt.Errorf("%s: stop: %w", name, err)
	}
	sc.Runs, sc.Summary = []measurement{m}, m.AB
	sc.judgeServed()
	b.judgeThroughput(&sc, steadyRPS, slowMinRatio)
	sc.judgeRecommended(0, 0, "0 %: every read outlasts REDIS_TIMEOUT")
	probes := strings.Count(app.stderr.String(), `msg="redis circuit breaker half-open`)
	waited := m.Counters.DelaysInjected
	limit := int64(serviceBreakerFailures + 2*outageConcurrency + probes)
	sc.TimeoutWaits = &waited
	sc.judge(waited <= limit, fmt.Sprintf("%d of %d requests waited for the timeout (the breaker's cost; %d reached Redis), at most %d with %d probes",
		waited, m.AB.Complete, m.Counters.Reads, limit, probes))
	sc.Findings = append(sc.Findings, breakerChanges(app))
	return sc, nil
}

// recoveryScenario: the production build serves with Redis stopped, then
// redis-server starts on its address mid-run. A prober searches with one
// session until a page shows recommendations again.
func (b *bench) recoveryScenario(ctx context.Context, _ float64) (scenario, error) {
	name := fmt.Sprintf("recovery -c %d", outageConcurrency)
	if _, err := exec.LookPath("redis-server"); err != nil {
		return scenario{}, fmt.Errorf("%s: needs redis-server, to start it mid-run: apt-get install redis-server", name)
	}
	port, err := freePort()
	if err != nil {
		return scenario{}, err
	}
	env := []string{fmt.Sprintf("REDIS_URL=redis://127.0.0.1:%d/0", port)}
	sc := scenario{Name: name, Build: "production", Setup: append(env, fmt.Sprintf("(redis-server starts there after %d s)", recoveryDownSeconds)),
		Hypothesis: fmt.Sprintf("Redis started again mid-run: no failed or non-2xx response, the first page with recommendations within %v of Redis answering", recoveryLimit)}
	app, err := b.start(ctx, b.prodBinary, env)
	if err != nil {
		return sc, fmt.Errorf("%s: %w", name, err)
	}
	defer app.stop()

	type abDone struct {
		m   measurement
		err error
	}
	done := make(chan abDone, 1)
	go func() {
		m, err := b.measureFault(ctx, app, name, recoveryDownSeconds+recoveryUpSeconds)
		done <- abDone{m, err}
	}()
	// The down phase is the scenario's fault, timed by the clock on purpose.
	select {
	case <-time.After(recoveryDownSeconds * time.Second):
	case <-ctx.Done():
		return sc, ctx.Err()
	}
	server, answered, err := startRedisAt(ctx, port, b.workDir)
	if err != nil {
		return sc, fmt.Errorf("%s: %w", name, err)
	}
	defer stopRedis(server)
	recovered, err := firstRecommendation(ctx, app, answered.Add(10*time.Second))
	if err != nil {
		return sc, fmt.Errorf("%s: %w", name, err)
	}
	result := <-done
	if result.err != nil {
		return sc, result.err
	}
	if err := app.stop(); err != nil {
		return sc, fmt.Errorf("%s: stop: %w", name, err)
	}
	m := result.m
	sc.Runs, sc.Summary = []measurement{m}, m.AB
	sc.judgeServed()
	took := recovered.Sub(answered)
	ms := float64(took.Microseconds()) / 1000
	sc.RecoveryMS = &ms
	sc.judge(took <= recoveryLimit, fmt.Sprintf("first page with recommendations %.0f ms after Redis answered", ms))
	sc.Findings = append(sc.Findings, breakerChanges(app))
	return sc, nil
}

// measureFault runs ab at outageConcurrency against app for seconds, with no
// warm-up: the fault is there from the first request, as it would be for a
// running shop. It records the search pages the service counted and, for the
// chaos build, what the experiment's counters added.
func (b *bench) measureFault(ctx context.Context, app *appProcess, label string, seconds int) (measurement, error) {
	var m measurement
	before, err := app.counts()
	if err != nil {
		return m, fmt.Errorf("%s: %w", label, err)
	}
	b.progress.start(label, seconds)
	m.AB, err = runAB(ctx, abOptions{url: app.url + "/search", seconds: seconds, concurrency: outageConcurrency,
		postFile: b.postFile, cookie: benchCookie}, b.workDir)
	b.progress.stop()
	if err != nil {
		return m, fmt.Errorf("%s: %w", label, err)
	}
	after, err := app.counts()
	if err != nil {
		return m, fmt.Errorf("%s: %w", label, err)
	}
	m.countedBetween(app, before, after)
	return m, nil
}

func (sc *scenario) judgeServed() {
	ab := sc.Summary
	failures := ab.FailedConnect + ab.FailedReceive + ab.FailedExcept
	sc.judge(ab.Non2xx == 0 && failures == 0, fmt.Sprintf("%d requests, %d non-2xx, %d connect/receive/exception failures", ab.Complete, ab.Non2xx, failures))
}

func (b *bench) judgeThroughput(sc *scenario, steadyRPS, minRatio float64) {
	ratio := sc.Summary.RequestsPerS / steadyRPS
	sc.judge(ratio >= minRatio, fmt.Sprintf("%.0f req/s, %.0f %% of steady's %.0f (want ≥ %.0f %%)",
		sc.Summary.RequestsPerS, ratio*100, steadyRPS, minRatio*100))
}

// breakerChanges summarises the state changes the app logged; call it after
// the app has stopped.
func breakerChanges(app *appProcess) string {
	log := app.stderr.String()
	return fmt.Sprintf("breaker opened %d times, half-open %d, closed %d",
		strings.Count(log, `msg="redis circuit breaker open`),
		strings.Count(log, `msg="redis circuit breaker half-open`),
		strings.Count(log, `msg="redis circuit breaker closed`))
}

// startRedisAt starts redis-server on port and returns once it answers PING,
// with the time it first did.
func startRedisAt(ctx context.Context, port int, workDir string) (*exec.Cmd, time.Time, error) {
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", workDir, "--logfile", "")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return nil, time.Time{}, fmt.Errorf("start redis-server: %w", err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(10 * time.Second)
	// Polled every millisecond: the recovery time is measured from here.
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		err := ping(addr)
		if err == nil {
			return cmd, time.Now(), nil
		}
		if time.Now().After(deadline) {
			stopRedis(cmd)
			return nil, time.Time{}, fmt.Errorf("redis-server on port %d never answered: %w", port, err)
		}
		select {
		case <-ctx.Done():
			stopRedis(cmd)
			return nil, time.Time{}, ctx.Err()
		case <-tick.C:
		}
	}
}

// ping sends one PING on a new connection and wants +PONG: Redis answers.
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if reply != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", reply)
	}
	return nil
}

func stopRedis(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
}

// firstRecommendation searches with one session, one request after the
// other, and returns when the first page with recommendations arrived.
func firstRecommendation(ctx context.Context, app *appProcess, deadline time.Time) (time.Time, error) {
	for time.Now().Before(deadline) {
		if err := ctx.Err(); err != nil {
			return time.Time{}, err
		}
		status, body, err := app.search("Apples", "sessionID=recovery-probe")
		if err != nil {
			return time.Time{}, err
		}
		if status != 200 {
			return time.Time{}, fmt.Errorf("probe: POST /search answered %d", status)
		}
		if strings.Contains(body, "this amazing product") {
			return time.Now(), nil
		}
	}
	return time.Time{}, errors.New("no page with recommendations within 10 s of Redis answering")
}
