package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"example.com/shopsession/chaos"
)

// The fleet scenario: three instances of the chaos build on one
// redis-server of their own; a latency on half the sessions started on all
// three by shopsession-chaos ctl start, which holds the lease until it is
// sent SIGTERM; on each instance at once an ab client with a session of
// the experiment group and a paced client with one of the control group
// (fleetpace.go). Per instance: the experiment
// group's service time per search minus the control group's, in the same
// seconds, and how long the instance took to delay its first page after ctl
// start and to end its last delay after ctl's SIGTERM.
const (
	fleetPercent = 50
	fleetSeed    = 22
	fleetLease   = "10s"
	// fleetRoundTrips: a search's two Redis calls, both delayed.
	fleetRoundTrips     = 2
	fleetDeltaTolerance = 0.005
	// fleetReact bounds the time to start and to stop delaying; the
	// readings go on to fleetReadings, so that a late one is measured.
	fleetReact    = time.Second
	fleetReadings = 3 * time.Second
	// fleetABSlack: ab runs this much longer than the measured seconds, to
	// span the start's and the stop's readings too.
	fleetABSlack = 8
	// fleetAsked: sessions asked on every instance which group they are in.
	fleetAsked = 100
)

var fleetBody = fmt.Sprintf(`{"experiment":"latency","delay_seconds":%s,"sessions_percent":%d,"seed":%d}`,
	formatSeconds(latencyDelay), fleetPercent, fleetSeed)

var fleetHypothesis = fmt.Sprintf("started on three instances by one ctl start: on this one the first delayed page within %g s of ctl start, the last delay ended within %g s of ctl start's SIGTERM; the experiment group's mean service time per search minus the control group's, in the same seconds, = %d round trips × %s s, within ±%.1f %% by its 95 %% interval; no fault reaches the control group; every session asked is in the same group on all three",
	fleetReact.Seconds(), fleetReact.Seconds(), fleetRoundTrips, formatSeconds(latencyDelay), fleetDeltaTolerance*100)

// fleetTiming is how fast one instance followed ctl, in ms from ctl start's
// run (…Start…) or from its SIGTERM (…Stop…); nil: not seen in the readings.
type fleetTiming struct {
	Instance       string   `json:"instance"` // its fleet id, host:pid
	Version        int64    `json:"version"`  // the version it applied
	RecordStartMS  float64  `json:"record_written_ms"`
	AppliedMS      *float64 `json:"applied_ms,omitempty"`
	FirstDelayMS   *float64 `json:"first_delay_ms,omitempty"`
	VersionGoneMS  *float64 `json:"version_gone_ms,omitempty"`
	LastDelayEndMS *float64 `json:"last_delay_end_ms,omitempty"`
	CtlExitedMS    float64  `json:"ctl_exited_ms"`
}

// fleetInstanceRun is what one instance's two clients and its groups
// measured.
type fleetInstanceRun struct {
	ab                  map[string]abResult
	experiment, control chaos.GroupFigures
	timing              fleetTiming
}

// fleetGroupCheck: the sessions asked, and those whose group differed
// between instances.
type fleetGroupCheck struct {
	asked  int
	differ []string
}

func (b *bench) fleetScenarios(ctx context.Context) ([]scenario, error) {
	f, err := startFleet(ctx, b.chaosBinary, b.workDir)
	if errors.Is(err, errNoRedisServer) {
		sc := scenario{Name: "fleet", Build: "chaos", Hypothesis: fleetHypothesis}
		sc.inconclusive("not run: the fleet needs a redis-server of its own, and " + err.Error())
		return []scenario{sc}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	defer f.close()
	for i, a := range f.apps {
		if _, err := a.instanceStatus(); err != nil {
			return nil, fmt.Errorf("fleet instance %d: %w", i+1, err)
		}
	}
	b.progress.note("fleet: %d instances of %s on %s", fleetSize, b.chaosBinary, f.redis.source)
	cookies, groups, err := b.fleetCookies(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	runs, err := b.fleetRun(ctx, f, cookies)
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	fileRow := b.fleetRunRow(ctx, f, runs)
	if err := f.close(); err != nil {
		return nil, fmt.Errorf("fleet: stop: %w", err)
	}
	setup := []string{
		fmt.Sprintf("%d instances of the chaos build, REDIS_URL=%s, one CHAOS_CONTROL_TOKEN", fleetSize, f.redis.url),
		fmt.Sprintf("echo '%s' | shopsession-chaos ctl start -lease %s, ended by SIGTERM", fleetBody, fleetLease),
		fmt.Sprintf("on each instance at once: ab with %s, and a paced client (one search every %v) with %s", cookies["experiment"], fleetControlEvery, cookies["control"]),
	}
	return append(judgeFleet(setup, groups, runs), fileRow), nil
}

// fleetCookies starts the experiment once and asks every instance which
// group each of fleetAsked sessions is in, then stops it; it returns a
// session of each group.
func (b *bench) fleetCookies(ctx context.Context, f *fleet) (map[string]string, fleetGroupCheck, error) {
	var check fleetGroupCheck
	held, err := f.ctlStart(fleetBody, fleetLease)
	if err != nil {
		return nil, check, err
	}
	if err := f.waitVersion(ctx, held.version, 5*time.Second); err != nil {
		held.stop()
		return nil, check, err
	}
	cookies := map[string]string{}
	for i := 0; i < fleetAsked || len(cookies) < 2; i++ {
		if i == 1000 {
			held.stop()
			return nil, check, fmt.Errorf("no session of 1000 in each group: %v", cookies)
		}
		id := fmt.Sprintf("fleet-%d", i)
		var groups []string
		for n, a := range f.apps {
			s, err := a.chaosStatus(id)
			if err == nil && s.Session == nil {
				err = fmt.Errorf("GET /debug/chaos?session=%s does not say the group", id)
			}
			if err != nil {
				held.stop()
				return nil, check, fmt.Errorf("fleet instance %d: %w", n+1, err)
			}
			groups = append(groups, s.Session.Group)
		}
		check.asked++
		if slices.ContainsFunc(groups, func(g string) bool { return g != groups[0] }) {
			check.differ = append(check.differ, id+" "+strings.Join(groups, "/"))
		} else if _, seen := cookies[groups[0]]; !seen {
			cookies[groups[0]] = "sessionID=" + id
		}
	}
	if err := held.stop(); err != nil {
		return nil, check, err
	}
	return cookies, check, f.waitVersion(ctx, 0, 5*time.Second)
}

// fleetRun runs both clients on every instance, starts the experiment with
// ctl start while they run, measures for the bench's seconds, and sends ctl
// SIGTERM.
func (b *bench) fleetRun(ctx context.Context, f *fleet, cookies map[string]string) ([]fleetInstanceRun, error) {
	// Cancelling kills the ab clients left when a step fails.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := len(f.apps)
	pagesBefore := make([]int64, n)
	for i, a := range f.apps {
		for _, cookie := range cookies {
			for range warmUpRequests / 10 {
				if _, _, err := a.search("Apples", cookie); err != nil {
					return nil, fmt.Errorf("instance %d: warm-up: %w", i+1, err)
				}
			}
		}
		p, err := a.searchPages()
		if err != nil {
			return nil, fmt.Errorf("instance %d: %w", i+1, err)
		}
		pagesBefore[i] = p.WithRecommendations + p.WithoutRecommendations
	}
	type abDone struct {
		instance int
		group    string
		ab       abResult
		err      error
	}
	done := make(chan abDone, 2*n)
	for i, a := range f.apps {
		for group, cookie := range cookies {
			dir := filepath.Join(b.workDir, fmt.Sprintf("fleet-%d-%s", i+1, group))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, err
			}
			go func() {
				if group == "control" {
					r, err := pacedSearches(ctx, a, cookie, fleetControlEvery, time.Duration(b.seconds+fleetABSlack)*time.Second)
					done <- abDone{i, group, r, err}
					return
				}
				r, err := runAB(ctx, abOptions{url: a.url + "/search", seconds: b.seconds + fleetABSlack, concurrency: b.concurrency,
					postFile: b.postFile, cookie: cookie}, dir)
				done <- abDone{i, group, r, err}
			}()
		}
	}
	// ctl start only once pages flow on every instance, so that its first
	// delayed page is not waiting on ab.
	for i, a := range f.apps {
		err := waitFor(ctx, 10*time.Second, func() error {
			p, err := a.searchPages()
			if err == nil && p.WithRecommendations+p.WithoutRecommendations < pagesBefore[i]+10 {
				err = errors.New("ab's pages have not begun")
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("instance %d: %w", i+1, err)
		}
	}
	base, err := f.statuses()
	if err != nil {
		return nil, err
	}
	runs := make([]fleetInstanceRun, n)
	b.progress.note("fleet: ctl start while %d ab and %d paced clients run", n, n)
	t0 := time.Now()
	waitStart := f.poll(ctx, t0, base, startSeen)
	held, err := f.ctlStart(fleetBody, fleetLease)
	written := time.Since(t0)
	startSamples, pollErr := waitStart()
	if err != nil {
		return nil, err
	}
	if pollErr != nil {
		held.stop()
		return nil, pollErr
	}
	before, err := f.statuses()
	if err != nil {
		held.stop()
		return nil, err
	}
	b.progress.start("fleet: experiment on 3 instances", b.seconds)
	select {
	case <-ctx.Done():
	case <-time.After(time.Duration(b.seconds) * time.Second):
	}
	b.progress.stop()
	after, err := f.statuses()
	if err != nil {
		held.stop()
		return nil, err
	}
	if len(done) > 0 {
		held.stop()
		return nil, errors.New("an ab client ended before ctl start's SIGTERM: it would not see the stop")
	}
	t1 := time.Now()
	waitStop := f.poll(ctx, t1, after, stopSeen)
	err = held.stop()
	ctlExited := time.Since(t1)
	stopSamples, pollErr := waitStop()
	if err = errors.Join(err, pollErr); err != nil {
		return nil, err
	}
	for range 2 * n {
		d := <-done
		if d.err != nil {
			return nil, fmt.Errorf("instance %d, %s client: %w", d.instance+1, d.group, d.err)
		}
		if runs[d.instance].ab == nil {
			runs[d.instance].ab = map[string]abResult{}
		}
		runs[d.instance].ab[d.group] = d.ab
	}
	for i := range runs {
		r := &runs[i]
		if before[i].Fleet.Version != held.version || after[i].Fleet.Version != held.version {
			return nil, fmt.Errorf("instance %d applied fleet versions %d and %d while ctl's was %d", i+1, before[i].Fleet.Version, after[i].Fleet.Version, held.version)
		}
		r.experiment = groupBetween(after[i].Groups["experiment"], before[i].Groups["experiment"])
		r.control = groupBetween(after[i].Groups["control"], before[i].Groups["control"])
		r.timing = fleetTimes(startSamples[i], stopSamples[i], base[i].Counters.DelaysInjected, after[i].Counters.DelaysInjected)
		r.timing.Instance, r.timing.Version = after[i].Fleet.Instance, after[i].Fleet.Version
		r.timing.RecordStartMS, r.timing.CtlExitedMS = ms(written), ms(ctlExited)
	}
	return runs, nil
}

// statuses reads every instance's status.
func (f *fleet) statuses() ([]chaos.Status, error) {
	out := make([]chaos.Status, len(f.apps))
	for i, a := range f.apps {
		var err error
		if out[i], err = a.instanceStatus(); err != nil {
			return nil, fmt.Errorf("instance %d: %w", i+1, err)
		}
	}
	return out, nil
}

// poll reads every instance at once from from, each until enough (given its
// delays begun by base) or fleetReadings, and returns the wait for them.
func (f *fleet) poll(ctx context.Context, from time.Time, base []chaos.Status, enough func(int64) func([]fleetSample) bool) func() ([][]fleetSample, error) {
	samples, errs := make([][]fleetSample, len(f.apps)), make([]error, len(f.apps))
	finished := make(chan struct{})
	for i, a := range f.apps {
		go func() {
			samples[i], errs[i] = pollInstance(ctx, a, from, fleetReadings, enough(base[i].Counters.DelaysInjected))
			finished <- struct{}{}
		}()
	}
	return func() ([][]fleetSample, error) {
		for range f.apps {
			<-finished
		}
		return samples, errors.Join(errs...)
	}
}

// fleetTimes reads one instance's timing from its readings.
func fleetTimes(start, stop []fleetSample, injectedAtStart, injectedAtStop int64) fleetTiming {
	var t fleetTiming
	at := func(d time.Duration, ok bool) *float64 {
		if !ok {
			return nil
		}
		return ptr(ms(d))
	}
	applied, _, ok := firstApplied(start)
	t.AppliedMS = at(applied, ok)
	t.FirstDelayMS = at(firstDelay(start, injectedAtStart))
	t.VersionGoneMS = at(versionGone(stop))
	t.LastDelayEndMS = at(lastDelayEnd(stop, injectedAtStop))
	return t
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
