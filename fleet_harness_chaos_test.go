//go:build chaos && unix

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"example.com/shopsession/chaos"
	"github.com/redis/go-redis/v9"
)

// The harness of the fleet's tests (fleet_chaos_test.go): three chaos
// instances on a Redis of the test's own, ctl run as the real binary, and
// each instance's status polled with a deadline, so that a time measured is
// the time it took and a wait ends on what it waits for.

// fleetTag is the hash tag of the fleet's keys, as the shop names its fleet.
const fleetTag = "{" + metricsNamespace + ":chaos}:"

// fleetPlane is the Redis a fleet's test owns, as REDIS_URL names it, and
// the servers it is made of, where the instances' subscriptions are counted.
type fleetPlane struct {
	url   string
	nodes []string
}

func singlePlane(s *redisServer) fleetPlane { return fleetPlane{s.url(), []string{s.addr()}} }

func clusterPlane(c *redisCluster) fleetPlane {
	p := fleetPlane{url: c.url()}
	for _, n := range c.nodes {
		p.nodes = append(p.nodes, n.addr())
	}
	return p
}

// client is a client of the plane, as the instances' own.
func (p fleetPlane) client(t testing.TB) redis.UniversalClient {
	var rdb redis.UniversalClient
	if len(p.nodes) == 1 {
		rdb = redis.NewClient(&redis.Options{Addr: p.nodes[0]})
	} else {
		rdb = redis.NewClusterClient(&redis.ClusterOptions{Addrs: p.nodes})
	}
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// reset removes the fleet's records, for a test that shares the plane with
// the one before it.
func (p fleetPlane) reset(t testing.TB) {
	t.Helper()
	keys := []string{fleetTag + "experiment", fleetTag + "halt", fleetTag + "instances", fleetTag + "version"}
	if err := p.client(t).Del(context.Background(), keys...).Err(); err != nil {
		t.Fatalf("remove the fleet's records: %v", err)
	}
}

// subscribers counts the connections subscribed to the fleet's channel on
// every server of the plane.
func (p fleetPlane) subscribers() (int64, error) {
	var n int64
	for _, addr := range p.nodes {
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		counts, err := rdb.PubSubNumSub(context.Background(), fleetTag+"control").Result()
		rdb.Close()
		if err != nil {
			return 0, err
		}
		n += counts[fleetTag+"control"]
	}
	return n, nil
}

// fleet is three chaos instances joined to one plane, and the ctl binary.
type fleet struct {
	t         *testing.T
	bin       string
	plane     fleetPlane
	instances []*testApp   // their admin listeners serve /debug/chaos
	redis     *redisServer // a single plane's server, when a test stops it
}

// startFleet starts three chaos instances in this process (run, under the
// race detector) with env and REDIS_URL naming the plane, and returns once
// each has subscribed to the fleet's channel.
func startFleet(t *testing.T, bin string, plane fleetPlane, env map[string]string) *fleet {
	t.Helper()
	env = withEnv(env, "REDIS_URL", plane.url)
	f := &fleet{t: t, bin: bin, plane: plane}
	for range 3 {
		f.instances = append(f.instances, startApp(t, env))
	}
	t.Cleanup(func() {
		if t.Failed() {
			for i, app := range f.instances {
				t.Logf("instance %d's log:\n%s", i, app.logs)
			}
		}
	})
	f.waitJoined(len(f.instances))
	return f
}

// waitJoined waits for n instances to have subscribed to the fleet's
// channel: from then on a change reaches them as it is written, not at
// their next poll.
func (f *fleet) waitJoined(n int) {
	f.t.Helper()
	var got int64
	var err error
	if !pollUntil(5*time.Second, func() bool { got, err = f.plane.subscribers(); return err == nil && got == int64(n) }) {
		f.t.Fatalf("%d subscribers to the fleet's channel after 5 s (%v), want %d", got, err, n)
	}
}

// fleetHTTP is the tests' client: no call of it waits for ever.
var fleetHTTP = &http.Client{Timeout: time.Minute}

// statusAt is GET /debug/chaos (?session=session, if not empty) on an admin
// listener; safe on any goroutine.
func statusAt(admin *testApp, session string) (chaos.Status, error) {
	path := "/debug/chaos"
	if session != "" {
		path += "?session=" + url.QueryEscape(session)
	}
	resp, err := fleetHTTP.Get(admin.url + path)
	if err != nil {
		return chaos.Status{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return chaos.Status{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return chaos.Status{}, fmt.Errorf("GET %s = %d %s", path, resp.StatusCode, body)
	}
	var s chaos.Status
	if err := json.Unmarshal(body, &s); err != nil {
		return chaos.Status{}, fmt.Errorf("GET %s: %v in %s", path, err, body)
	}
	if s.Fleet == nil {
		return chaos.Status{}, fmt.Errorf("GET %s: no fleet in %s", path, body)
	}
	return s, nil
}

func (f *fleet) status(i int) chaos.Status {
	f.t.Helper()
	s, err := statusAt(f.instances[i].admin, "")
	if err != nil {
		f.t.Fatalf("instance %d: %v", i, err)
	}
	return s
}

// sighting is what the polls of one instance saw: when its status first
// met the condition (ok), or the last status they read.
type sighting struct {
	ok     bool
	at     time.Time
	status chaos.Status
	err    error
}

// watchEach polls every instance's status at once, from now, until cond
// holds on it or within has passed; wait waits for the polls.
func (f *fleet) watchEach(within time.Duration, cond func(chaos.Status) bool) (wait func() []sighting) {
	seen := make([]sighting, len(f.instances))
	var wg sync.WaitGroup
	for i, app := range f.instances {
		wg.Go(func() {
			pollUntil(within, func() bool {
				seen[i].status, seen[i].err = statusAt(app.admin, "")
				seen[i].ok, seen[i].at = seen[i].err == nil && cond(seen[i].status), time.Now()
				return seen[i].ok
			})
		})
	}
	return func() []sighting { wg.Wait(); return seen }
}

// within checks that each sighting came at most bound after from, and logs
// the times per instance.
func (f *fleet) within(seen []sighting, from time.Time, bound time.Duration, what string) []time.Duration {
	f.t.Helper()
	took := make([]time.Duration, len(seen))
	for i, s := range seen {
		took[i] = s.at.Sub(from)
		switch {
		case !s.ok:
			f.t.Errorf("instance %d: %s: not seen within %v; last status: %s", i, what, bound, describeStatus(s))
		case took[i] > bound:
			f.t.Errorf("instance %d: %s after %v, want within %v", i, what, took[i].Round(time.Millisecond), bound)
		}
	}
	f.t.Logf("%s, per instance: %v", what, roundAll(took))
	return took
}

func describeStatus(s sighting) string {
	if s.err != nil {
		return s.err.Error()
	}
	fl, _ := json.Marshal(s.status.Fleet)
	return fmt.Sprintf("state %s, experiment %s, fleet %s", s.status.State, s.status.Experiment, fl)
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(100 * time.Microsecond)
	}
	return out
}

func running(s chaos.Status) bool { return s.State == chaos.StateRunning }

// runningVersion is a status running any fleet experiment.
func runningVersion(s chaos.Status) bool { return running(s) && s.Fleet.Version != 0 }

// waitRunning waits for every instance to run fleet version v.
func (f *fleet) waitRunning(v int64) {
	f.t.Helper()
	for i, s := range f.watchEach(2*time.Second, func(s chaos.Status) bool { return running(s) && s.Fleet.Version == v })() {
		if !s.ok {
			f.t.Fatalf("instance %d does not run fleet version %d: %s", i, v, describeStatus(s))
		}
	}
}

// sessionIn is a session id in group of instance i's running experiment.
func (f *fleet) sessionIn(i int, group string) string {
	f.t.Helper()
	for n := range 200 {
		id := fmt.Sprint("fleet-", n)
		s, err := statusAt(f.instances[i].admin, id)
		if err != nil {
			f.t.Fatal(err)
		}
		if s.Session.Group == group {
			return id
		}
	}
	f.t.Fatalf("no session in group %q among 200", group)
	return ""
}

// timedSearch posts a search for session to app and returns how long its
// page took; safe on any goroutine.
func timedSearch(app *testApp, session string) (time.Duration, error) {
	req, err := http.NewRequest(http.MethodPost, app.url+"/search", strings.NewReader(url.Values{"query": {"apple"}}.Encode()))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Cookie", sessionCookie+"="+session)
	start := time.Now()
	resp, err := fleetHTTP.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("search: %d", resp.StatusCode)
	}
	return took, err
}

// ctlResult is how a ctl command ended.
type ctlResult struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

func (r ctlResult) String() string {
	return fmt.Sprintf("exit %d after %v, stdout %q, stderr %q", r.code, r.took.Round(100*time.Microsecond), r.stdout, r.stderr)
}

// oneLine reports whether r's stderr is one line, and stdout empty.
func (r ctlResult) oneLine() bool {
	return r.stdout == "" && strings.Count(r.stderr, "\n") == 1 && strings.HasSuffix(r.stderr, "\n")
}

// ctlEnv is the test's environment for ctl, with no Redis or chaos
// settings of its own, and REDIS_URL and the control token (none if "").
func ctlEnv(redisURL, token string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REDIS_URL=") && !strings.HasPrefix(kv, "CHAOS_") {
			env = append(env, kv)
		}
	}
	env = append(env, "REDIS_URL="+redisURL)
	if token != "" {
		env = append(env, "CHAOS_CONTROL_TOKEN="+token)
	}
	return env
}

// ctl runs the ctl command with the fleet's control token.
func (f *fleet) ctl(args ...string) ctlResult {
	f.t.Helper()
	return runFleetCtl(f.t, f.bin, ctlEnv(f.plane.url, testControlToken), args...)
}

func runFleetCtl(t testing.TB, bin string, env []string, args ...string) ctlResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"ctl"}, args...)...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	began := time.Now()
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("ctl %s: %v", strings.Join(args, " "), err)
	}
	return ctlResult{cmd.ProcessState.ExitCode(), stdout.String(), stderr.String(), time.Since(began)}
}

// experimentFile writes an experiment for ctl's -f.
func experimentFile(t testing.TB, body string) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "experiment-*.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(body); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

var startedLine = regexp.MustCompile(`started fleet experiment version (\d+)`)

// startedVersion is the version a ctl start printed.
func startedVersion(t testing.TB, r ctlResult) int64 {
	t.Helper()
	m := startedLine.FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil {
		t.Fatalf("ctl start: %s", r)
	}
	v, _ := strconv.ParseInt(m[1], 10, 64)
	return v
}

// startDetached starts body fleet-wide with ctl start -detach and returns
// its version.
func (f *fleet) startDetached(body string) int64 {
	f.t.Helper()
	return startedVersion(f.t, f.ctl("start", "-detach", "-f", experimentFile(f.t, body)))
}

// heldCtl is a ctl start holding its lease: a child process.
type heldCtl struct {
	cmd            *exec.Cmd
	began          time.Time // just before the process was started
	version        int64
	stdout, stderr *logBuffer
	exited         chan struct{}
	code           int // once exited is closed
}

// hold runs ctl start -f (a file of body) with flags, and returns once it
// printed the version it started; the test's end interrupts it.
func (f *fleet) hold(body string, flags ...string) *heldCtl {
	f.t.Helper()
	h := &heldCtl{stdout: newLogBuffer(), stderr: newLogBuffer(), exited: make(chan struct{})}
	h.cmd = exec.Command(f.bin, append([]string{"ctl", "start", "-f", experimentFile(f.t, body)}, flags...)...)
	h.cmd.Env = ctlEnv(f.plane.url, testControlToken)
	h.cmd.Stdout, h.cmd.Stderr = h.stdout, h.stderr
	h.began = time.Now()
	if err := h.cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	go func() {
		h.cmd.Wait()
		h.code = h.cmd.ProcessState.ExitCode()
		close(h.exited)
	}()
	f.t.Cleanup(func() {
		if code, ok := h.interrupt(); !ok {
			f.t.Errorf("ctl start did not end within 10 s of SIGINT (exit %d); stderr: %s", code, h.stderr)
		}
	})
	deadline := time.After(10 * time.Second)
	for {
		h.stdout.mu.Lock()
		m := startedLine.FindStringSubmatch(h.stdout.buf.String())
		changed := h.stdout.changed
		h.stdout.mu.Unlock()
		if m != nil {
			h.version, _ = strconv.ParseInt(m[1], 10, 64)
			return h
		}
		select {
		case <-changed:
		case <-h.exited:
			f.t.Fatalf("ctl start exited %d before it started: stdout %q, stderr %q", h.code, h.stdout, h.stderr)
		case <-deadline:
			f.t.Fatalf("ctl start printed no version within 10 s: stdout %q, stderr %q", h.stdout, h.stderr)
		}
	}
}

// wait waits up to within for the command to exit, and reports its code.
func (h *heldCtl) wait(within time.Duration) (code int, exited bool) {
	select {
	case <-h.exited:
		return h.code, true
	case <-time.After(within):
		return -1, false
	}
}

// interrupt sends SIGINT, as Ctrl-C does, if the command still runs, and
// waits for it to exit; after 10 s it kills it.
func (h *heldCtl) interrupt() (code int, exited bool) {
	select {
	case <-h.exited:
		return h.code, true
	default:
	}
	h.cmd.Process.Signal(os.Interrupt)
	if code, ok := h.wait(10 * time.Second); ok {
		return code, true
	}
	h.cmd.Process.Kill()
	<-h.exited
	return h.code, false
}

// fleetStatus is ctl status -json.
func (f *fleet) fleetStatus() chaos.FleetStatus {
	f.t.Helper()
	r := f.ctl("status", "-json")
	var st chaos.FleetStatus
	if err := json.Unmarshal([]byte(r.stdout), &st); r.code != 0 || err != nil {
		f.t.Fatalf("ctl status -json: %s (%v)", r, err)
	}
	return st
}

// redisPID is the process id of the redis-server at addr.
func redisPID(t testing.TB, addr string) int {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	info, err := rdb.Info(context.Background(), "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`process_id:(\d+)`).FindStringSubmatch(info)
	if m == nil {
		t.Fatalf("no process_id in INFO server: %s", info)
	}
	pid, _ := strconv.Atoi(m[1])
	return pid
}

// buildFleetBinary builds the chaos binary, whose ctl the tests run.
func buildFleetBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "shopsession-chaos")
	goBuild(t, ".", bin, "-tags", "chaos")
	return bin
}
