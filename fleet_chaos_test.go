//go:build chaos && unix

package main

import (
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"example.com/shopsession/chaos"
)

// The fleet's control plane, end to end: three chaos instances on one
// redis-server and on a Redis Cluster, driven by the chaos binary's ctl as
// an operator runs it. Every instance on a Redis follows the fleet's records
// there, so no test writes them on a Redis another test uses.

// applyBound and stopBound are what the fleet promises: a change written is
// applied, and a removal stopped, on every instance within a second.
const applyBound, stopBound = time.Second, time.Second

// fleetDelay is the delay of the experiments whose pages are timed.
const fleetDelay = 250 * time.Millisecond

// latencyOnHalf is an experiment delaying half the sessions by delay.
func latencyOnHalf(delay time.Duration) string {
	return fmt.Sprintf(`{"experiment":"latency","delay_seconds":%g,"sessions_percent":50,"duration_seconds":300}`, delay.Seconds())
}

// TestFleet runs each test of the fleet on a redis-server of its own, in
// parallel, and those that also hold on a cluster one after the other on one
// cluster, which each leaves as it found it.
func TestFleet(t *testing.T) {
	bin := buildFleetBinary(t)
	tests := []struct {
		name    string
		test    func(*testing.T, string, fleetPlane)
		cluster bool
	}{
		{"StartStop", testFleetStartStop, true},
		{"KilledCtlLeaseLapses", testFleetKilledCtl, true},
		{"Halt", testFleetHalt, true},
		{"RedisStoppedLeaseLapses", testFleetRedisStopped, false},
		{"SameGroups", testFleetSameGroups, false},
		{"QuietAndOtherVersion", testFleetQuietAndOtherVersion, false},
		{"UnsignedIgnored", testFleetUnsigned, false},
		{"CtlExitCodes", testFleetCtlExitCodes, false},
	}
	t.Run("single", func(t *testing.T) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				tc.test(t, bin, singlePlane(ownRedisServer(t)))
			})
		}
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		c, err := startRedisCluster()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.stop)
		plane := clusterPlane(c)
		for _, tc := range tests {
			if !tc.cluster {
				continue
			}
			t.Run(tc.name, func(t *testing.T) {
				plane.reset(t)
				t.Cleanup(func() { plane.reset(t) })
				tc.test(t, bin, plane)
			})
		}
	})
}

// testFleetStartStop: ctl start applies on all three instances within 1 s,
// each running the version ctl printed, and delays an experiment-group
// search by the delay; ctl stop stops all three within 1 s, and ends a delay
// in progress: a search waiting in a 30 s delay gets its page within 1 s of
// the stop.
func testFleetStartStop(t *testing.T, bin string, plane fleetPlane) {
	f := startFleet(t, bin, plane, map[string]string{"REDIS_TIMEOUT": "10s"})

	applied := f.watchEach(applyBound+time.Second, runningVersion)
	h := f.hold(latencyOnHalf(fleetDelay))
	seen := applied()
	f.within(seen, h.began, applyBound, "applied after ctl start began")
	for i, s := range seen {
		if s.ok && s.status.Fleet.Version != h.version {
			t.Errorf("instance %d runs fleet version %d, ctl started %d", i, s.status.Fleet.Version, h.version)
		}
	}
	if t.Failed() {
		return
	}
	session := f.sessionIn(0, "experiment")
	var wg sync.WaitGroup
	for i, app := range f.instances {
		wg.Go(func() {
			took, err := timedSearch(app, session)
			if err != nil || took < fleetDelay {
				t.Errorf("instance %d: an experiment-group search took %v (%v), want at least the delay %v", i, took, err, fleetDelay)
			}
		})
	}
	wg.Wait()

	stopped := f.watchEach(stopBound+time.Second, func(s chaos.Status) bool { return !running(s) })
	stopAt := time.Now()
	r := f.ctl("stop")
	if r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("stopped fleet experiment version %d", h.version)) {
		t.Errorf("ctl stop: %s", r)
	}
	f.within(stopped(), stopAt, stopBound, fmt.Sprintf("stopped after ctl stop began (it ran %v)", r.took.Round(100*time.Microsecond)))
	// The holder finds its record gone when interrupted, and says so.
	if code, _ := h.interrupt(); code != 0 {
		t.Errorf("the held ctl start exited %d after ctl stop, want 0; stderr: %s", code, h.stderr)
	}

	// A delay in progress ends with the stop.
	long := f.hold(latencyOnHalf(30 * time.Second))
	f.waitRunning(long.version)
	session = f.sessionIn(0, "experiment")
	arrived := make([]time.Time, len(f.instances))
	for i, app := range f.instances {
		wg.Go(func() {
			if _, err := timedSearch(app, session); err != nil {
				t.Errorf("instance %d: the search in a delay: %v", i, err)
			}
			arrived[i] = time.Now()
		})
	}
	for i, s := range f.watchEach(5*time.Second, func(s chaos.Status) bool { return s.Counters.DelaysInProgress > 0 })() {
		if !s.ok {
			t.Fatalf("instance %d: no delay in progress: %s", i, describeStatus(s))
		}
	}
	stopAt = time.Now()
	if r := f.ctl("stop"); r.code != 0 {
		t.Errorf("ctl stop: %s", r)
	}
	wg.Wait()
	took := make([]time.Duration, len(arrived))
	for i, at := range arrived {
		if took[i] = at.Sub(stopAt); took[i] > stopBound {
			t.Errorf("instance %d: the search in a 30 s delay got its page %v after ctl stop began, want within %v", i, took[i], stopBound)
		}
	}
	t.Logf("a search in a 30 s delay got its page after ctl stop began, per instance: %v", roundAll(took))
}

// testFleetKilledCtl: kill -9 of a ctl start holding a 2 s lease leaves no
// one to renew it or to stop the experiment; every instance stops by
// itself by the lease's expiry + 1 s, and its searches are not delayed.
func testFleetKilledCtl(t *testing.T, bin string, plane fleetPlane) {
	const lease = 2 * time.Second
	f := startFleet(t, bin, plane, nil)
	h := f.hold(latencyOnHalf(fleetDelay), "-lease", lease.String())
	f.waitRunning(h.version)
	session := f.sessionIn(0, "experiment")

	stopped := f.watchEach(lease+2*time.Second, func(s chaos.Status) bool { return !running(s) })
	killed := time.Now()
	if err := h.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.wait(5 * time.Second); !ok {
		t.Fatal("ctl start still runs 5 s after SIGKILL")
	}
	f.within(stopped(), killed, lease+time.Second, "stopped after ctl start was killed")
	for i, app := range f.instances {
		if took, err := timedSearch(app, session); err != nil || took >= fleetDelay {
			t.Errorf("instance %d: an experiment-group search took %v (%v) after the lease lapsed, want no delay", i, took, err)
		}
	}
}

// testFleetRedisStopped: a SIGSTOPped redis-server answers nothing, so the
// instances cannot read the control plane, and neither ctl nor anyone can
// tell them to stop: each stops injecting by the lease's expiry as it last
// read it (its state lapsed), and a search's read, which reaches the
// stopped server, is not delayed.
func testFleetRedisStopped(t *testing.T, bin string, plane fleetPlane) {
	const lease = 2 * time.Second
	f := startFleet(t, bin, plane, map[string]string{"REDIS_TIMEOUT": "300ms"})
	h := f.hold(latencyOnHalf(fleetDelay), "-lease", lease.String())
	f.waitRunning(h.version)
	session := f.sessionIn(0, "experiment")
	for i, app := range f.instances {
		if took, err := timedSearch(app, session); err != nil || took < fleetDelay {
			t.Fatalf("instance %d: an experiment-group search took %v (%v), want at least the delay %v", i, took, err, fleetDelay)
		}
	}

	redisProc, err := os.FindProcess(redisPID(t, plane.nodes[0]))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { redisProc.Signal(syscall.SIGCONT) }) // before the instances and the server stop
	lapsed := f.watchEach(lease+2*time.Second, func(s chaos.Status) bool { return !running(s) })
	stoppedAt := time.Now()
	if err := redisProc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	seen := lapsed()
	f.within(seen, stoppedAt, lease+100*time.Millisecond, "stopped injecting after redis-server was stopped")
	for i, s := range seen {
		if !s.ok {
			continue
		}
		// It ended the run on its own clock, when the last lease it read
		// expired: no later than a lease after redis-server stopped.
		if s.status.State != chaos.StateLapsed || s.status.EndedAt == nil {
			t.Errorf("instance %d: state %s, want %s: its lease lapsed", i, s.status.State, chaos.StateLapsed)
		} else if late := s.status.EndedAt.Sub(stoppedAt); late > lease+50*time.Millisecond {
			t.Errorf("instance %d ended the experiment %v after redis-server stopped, past a %v lease", i, late, lease)
		}
	}
	for i, app := range f.instances {
		before := f.status(i).Counters
		if _, err := timedSearch(app, session); err != nil {
			t.Errorf("instance %d: a search while redis-server is stopped: %v", i, err)
		}
		after := f.status(i).Counters
		if after.RedisRoundTrips == before.RedisRoundTrips || after.DelaysInjected != before.DelaysInjected {
			t.Errorf("instance %d: a search while redis-server is stopped made %d round trips and had %d delays injected, want some and none",
				i, after.RedisRoundTrips-before.RedisRoundTrips, after.DelaysInjected-before.DelaysInjected)
		}
	}
	if err := redisProc.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}

// testFleetHalt: ctl halt stops all three within 1 s and refuses a ctl
// start (exit 1, one line naming who halted and why) and each instance's own
// PUT (409) until ctl resume, after which a start goes through.
func testFleetHalt(t *testing.T, bin string, plane fleetPlane) {
	const reason = "payments incident 4711"
	f := startFleet(t, bin, plane, nil)
	h := f.hold(latencyOnHalf(fleetDelay), "-lease", "3s")
	f.waitRunning(h.version)

	halted := f.watchEach(stopBound+time.Second, func(s chaos.Status) bool {
		return !running(s) && s.Fleet.Halt != nil && s.Fleet.Halt.Reason == reason
	})
	haltAt := time.Now()
	r := f.ctl("halt", "-reason", reason)
	if r.code != 0 {
		t.Fatalf("ctl halt: %s", r)
	}
	seen := halted()
	f.within(seen, haltAt, stopBound, fmt.Sprintf("halted after ctl halt began (it ran %v)", r.took.Round(100*time.Microsecond)))
	if !seen[0].ok {
		return
	}
	by := seen[0].status.Fleet.Halt.By
	// The holder's renewal finds the record gone to a halt: refused.
	if code, ok := h.wait(5 * time.Second); !ok || code != 1 || !strings.Contains(h.stderr.String(), reason) {
		t.Errorf("the held ctl start after the halt: exited %v with %d, stderr %q; want exit 1 naming the halt", ok, code, h.stderr)
	}

	r = f.ctl("start", "-detach", "-f", experimentFile(t, latencyOnHalf(fleetDelay)))
	if r.code != 1 || !r.oneLine() || !strings.Contains(r.stderr, by) || !strings.Contains(r.stderr, reason) {
		t.Errorf("ctl start while halted: %s; want exit 1 and one line naming %q and %q", r, by, reason)
	}
	for i, app := range f.instances {
		for _, method := range []string{http.MethodPut, http.MethodPatch} {
			resp := changeChaos(t, app, method, testControlToken, `{"experiment":"latency","delay_seconds":0.1}`)
			if resp.status != http.StatusConflict || !strings.Contains(resp.body, reason) {
				t.Errorf("instance %d: %s /debug/chaos while halted = %d %q, want 409 naming the halt", i, method, resp.status, resp.body)
			}
		}
		if s := f.status(i); running(s) {
			t.Errorf("instance %d runs %s while halted", i, s.Experiment)
		}
	}

	if r := f.ctl("resume"); r.code != 0 {
		t.Fatalf("ctl resume: %s", r)
	}
	f.waitRunning(f.startDetached(latencyOnHalf(fleetDelay)))
	if r := f.ctl("stop"); r.code != 0 {
		t.Errorf("ctl stop: %s", r)
	}
}

// testFleetSameGroups: a fleet experiment on half the sessions puts each
// session in the same group on every instance.
func testFleetSameGroups(t *testing.T, bin string, plane fleetPlane) {
	const sessions = 200
	f := startFleet(t, bin, plane, nil)
	f.waitRunning(f.startDetached(latencyOnHalf(fleetDelay)))
	inExperiment := 0
	for n := range sessions {
		id := fmt.Sprint("same-", n)
		var groups []string
		for i, app := range f.instances {
			s, err := statusAt(app.admin, id)
			if err != nil {
				t.Fatalf("instance %d: %v", i, err)
			}
			groups = append(groups, s.Session.Group)
		}
		if groups[0] != groups[1] || groups[1] != groups[2] {
			t.Errorf("session %s is in groups %q on the three instances", id, groups)
		}
		if groups[0] == "experiment" {
			inExperiment++
		}
	}
	if inExperiment < sessions/4 || inExperiment > sessions*3/4 {
		t.Errorf("%d of %d sessions in the experiment group, want about half", inExperiment, sessions)
	}
}

// testFleetQuietAndOtherVersion: ctl status flags an instance that stopped
// heartbeating (a SIGSTOPped process) quiet, and one that runs another
// version than the fleet's (a local DELETE stopped the fleet's experiment
// there) other_version; the third neither.
func testFleetQuietAndOtherVersion(t *testing.T, bin string, plane fleetPlane) {
	f := &fleet{t: t, bin: bin, plane: plane}
	var procs []*process
	for range 3 {
		p := startBinary(t, bin, "REDIS_URL="+plane.url)
		procs = append(procs, p)
		f.instances = append(f.instances, p.testApp)
	}
	f.waitJoined(3)
	v := f.startDetached(latencyOnHalf(fleetDelay))
	f.waitRunning(v)
	ids := make([]string, 3)
	for i := range ids {
		ids[i] = f.status(i).Fleet.Instance
	}
	byID := func(st chaos.FleetStatus) map[string]chaos.InstanceStatus {
		m := map[string]chaos.InstanceStatus{}
		for _, is := range st.Instances {
			m[is.Instance] = is
		}
		return m
	}
	var st chaos.FleetStatus
	if !pollUntil(3*time.Second, func() bool {
		st = f.fleetStatus()
		m := byID(st)
		for _, id := range ids {
			if is, ok := m[id]; !ok || is.Version != v || is.Quiet || is.OtherVersion {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("ctl status never showed the three instances %q running version %d unflagged: %+v", ids, v, st.Instances)
	}

	quiet, other, steady := procs[0], f.instances[1], ids[2]
	t.Cleanup(func() { quiet.cmd.Process.Signal(syscall.SIGCONT) })
	if err := quiet.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	silenced := time.Now()
	if resp := deleteChaos(t, other); resp.status != http.StatusOK {
		t.Fatalf("DELETE /debug/chaos = %d %s", resp.status, resp.body)
	}
	if !pollUntil(10*time.Second, func() bool {
		st = f.fleetStatus()
		m := byID(st)
		return m[ids[0]].Quiet && m[ids[1]].OtherVersion
	}) {
		t.Fatalf("ctl status never flagged %s quiet and %s other_version: %+v", ids[0], ids[1], st.Instances)
	}
	t.Logf("flagged quiet %v after its process was stopped", time.Since(silenced).Round(time.Millisecond))
	m := byID(st)
	if is := m[ids[0]]; is.OtherVersion {
		t.Errorf("the quiet instance is flagged other_version, its last heartbeat ran version %d: %+v", v, is)
	}
	if is := m[ids[1]]; is.Quiet || is.Version == v && is.State == chaos.StateRunning {
		t.Errorf("the instance stopped by DELETE: %+v, want it heartbeating and not running version %d", is, v)
	}
	if is := m[steady]; is.Quiet || is.OtherVersion || is.Version != v || is.State != chaos.StateRunning {
		t.Errorf("the steady instance: %+v, want running version %d unflagged", is, v)
	}
	if r := f.ctl("status"); !flaggedIn(r.stdout, ids[0], "QUIET") || !flaggedIn(r.stdout, ids[1], "OTHER-VERSION") {
		t.Errorf("ctl status does not flag them: %s", r)
	}
}

// flaggedIn reports whether ctl status's table flags instance id with flag.
func flaggedIn(table, id, flag string) bool {
	return regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(id) + `\s.*\b` + flag + `\b`).MatchString(table)
}

// testFleetUnsigned: a record signed with another control token than the
// instances' is ignored by every instance, which logs why, and ctl status
// with the fleet's token says it is unverified.
func testFleetUnsigned(t *testing.T, bin string, plane fleetPlane) {
	f := startFleet(t, bin, plane, nil)
	body := `{"experiment":"latency","delay_seconds":0.25,"duration_seconds":300}` // every session
	r := runFleetCtl(t, bin, ctlEnv(plane.url, "another-fleets-token-0123456789"),
		"start", "-detach", "-f", experimentFile(t, body))
	v := startedVersion(t, r)

	ignored := regexp.MustCompile(`chaos fleet experiment ignored: not signed with this fleet's control token`)
	for i, app := range f.instances {
		var s chaos.Status
		if !pollUntil(5*time.Second, func() bool { s = f.status(i); return running(s) || ignored.MatchString(app.logs.String()) }) {
			t.Fatalf("instance %d neither ran nor logged ignoring version %d within 5 s", i, v)
		}
		if running(s) || s.Fleet.Version != 0 {
			t.Errorf("instance %d runs %s, fleet version %d, from a record signed with another token", i, s.Experiment, s.Fleet.Version)
		}
		if _, err := timedSearch(app, "unsigned-1"); err != nil {
			t.Error(err)
		}
		if c := f.status(i).Counters; c.DelaysInjected != 0 {
			t.Errorf("instance %d injected %d delays", i, c.DelaysInjected)
		}
	}
	if st := f.fleetStatus(); st.Experiment == nil || !st.Experiment.Unverified || st.Experiment.Version != v {
		t.Errorf("ctl status -json's experiment: %+v, want version %d unverified", st.Experiment, v)
	}
	if r := f.ctl("status"); !strings.Contains(r.stdout, fmt.Sprintf("version %d, NOT signed with this control token", v)) {
		t.Errorf("ctl status: %s", r)
	}
}

// testFleetCtlExitCodes: bad usage is exit 2 and one line, a refusal exit 1
// and one line.
func testFleetCtlExitCodes(t *testing.T, bin string, plane fleetPlane) {
	f := &fleet{t: t, bin: bin, plane: plane}
	file := experimentFile(t, latencyOnHalf(fleetDelay))
	for _, tc := range []struct {
		name  string
		env   []string
		args  []string
		names string
	}{
		{"no token", ctlEnv(plane.url, ""), []string{"status"}, "CHAOS_CONTROL_TOKEN"},
		{"bad subcommand", nil, []string{"restart"}, `"restart"`},
		{"no subcommand", nil, nil, "start|patch|stop|halt|resume|status"},
		{"lease too short", nil, []string{"start", "-lease", "1s", "-f", file}, "-lease 1s"},
		{"halt without a reason", nil, []string{"halt"}, "-reason"},
	} {
		env := tc.env
		if env == nil {
			env = ctlEnv(plane.url, testControlToken)
		}
		if r := runFleetCtl(t, bin, env, tc.args...); r.code != 2 || !r.oneLine() || !strings.Contains(r.stderr, tc.names) {
			t.Errorf("%s: %s; want exit 2 and one line naming %s", tc.name, r, tc.names)
		}
	}
	v := f.startDetached(latencyOnHalf(fleetDelay))
	r := f.ctl("start", "-f", file)
	if r.code != 1 || !r.oneLine() || !strings.Contains(r.stderr, fmt.Sprintf("version %d runs", v)) {
		t.Errorf("ctl start while version %d runs: %s; want exit 1 and one line naming it", v, r)
	}
	if r := f.ctl("stop"); r.code != 0 {
		t.Errorf("ctl stop: %s", r)
	}
	if r := f.ctl("stop"); r.code != 0 || !strings.Contains(r.stdout, "no fleet experiment was running") {
		t.Errorf("ctl stop with none running: %s", r)
	}
}
