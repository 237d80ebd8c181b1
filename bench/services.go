package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"

	"example.com/shopsession/chaos"
)

// sessionKeys matches every key the service writes (its sessionKeyPrefix).
const sessionKeys = "shop:session:*"

// redisTarget is the Redis the apps under test share.
type redisTarget struct {
	url     string // "" means each app uses its embedded Redis
	source  string // where it came from, for the report
	version string
	client  *redis.Client
	server  *exec.Cmd
}

// openRedis uses REDIS_URL, else starts a redis-server on a free loopback
// port, else falls back to the apps' embedded Redis.
func openRedis(ctx context.Context, redisURL, workDir string) (*redisTarget, error) {
	t := &redisTarget{url: redisURL, source: "REDIS_URL"}
	if redisURL == "" {
		if _, err := exec.LookPath("redis-server"); err != nil {
			return &redisTarget{source: "embedded miniredis in each app (redis-server is not installed: apt-get install redis-server)"}, nil
		}
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		t.server = exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", workDir, "--logfile", "")
		t.server.Stdout, t.server.Stderr = io.Discard, io.Discard
		if err := t.server.Start(); err != nil {
			return nil, fmt.Errorf("start redis-server: %w", err)
		}
		t.url = fmt.Sprintf("redis://127.0.0.1:%d/0", port)
		t.source = "redis-server started by the bench on 127.0.0.1:" + strconv.Itoa(port)
	}
	opts, err := redis.ParseURL(t.url)
	if err != nil {
		t.close()
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	t.client = redis.NewClient(opts)
	var info string
	err = waitFor(ctx, 10*time.Second, func() error {
		info, err = t.client.Info(ctx, "server").Result()
		return err
	})
	if err != nil {
		t.close()
		return nil, fmt.Errorf("redis at %s never answered: %w", t.url, err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			t.version = v
		}
	}
	return t, nil
}

// flush deletes the service's keys, and only those: REDIS_URL may be a Redis
// that holds other data.
func (t *redisTarget) flush(ctx context.Context) error {
	if t.client == nil {
		return nil
	}
	iter := t.client.Scan(ctx, 0, sessionKeys, 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 1000 {
			if err := t.client.Unlink(ctx, keys...).Err(); err != nil {
				return err
			}
			keys = keys[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if len(keys) > 0 {
		return t.client.Unlink(ctx, keys...).Err()
	}
	return nil
}

// cpuSeconds is the CPU Redis has used, user and system, from its own INFO:
// a REDIS_URL's server counts as well as the bench's. 0 without a server.
func (t *redisTarget) cpuSeconds(ctx context.Context) (float64, error) {
	if t.client == nil {
		return 0, nil
	}
	info, err := t.client.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, fmt.Errorf("redis INFO cpu: %w", err)
	}
	var total float64
	for line := range strings.SplitSeq(info, "\n") {
		name, value, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (name == "used_cpu_sys" || name == "used_cpu_user") {
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				return 0, fmt.Errorf("redis INFO cpu: %s: %w", line, err)
			}
			total += v
		}
	}
	return total, nil
}

func (t *redisTarget) close() {
	if t.client != nil {
		t.client.Close()
	}
	if t.server != nil && t.server.Process != nil {
		t.server.Process.Signal(syscall.SIGTERM)
		t.server.Wait()
	}
}

// appProcess is one build of the service, serving on a free loopback port,
// with its admin listener on another.
type appProcess struct {
	url    string
	admin  string // the admin listener's URL; "" when ADMIN_ADDR=off
	chaos  bool   // the chaos build, with /debug/chaos on the admin listener
	token  string // the chaos build's control token, which changes need
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	exited chan struct{}
}

// startApp runs binary with env added to this process's environment and
// returns once /readyz answers 200. ADMIN_ADDR=off in env disables the admin
// listener.
func startApp(ctx context.Context, binary string, env []string) (*appProcess, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	adminPort, err := freePort()
	if err != nil {
		return nil, err
	}
	addr, adminAddr := "127.0.0.1:"+strconv.Itoa(port), "127.0.0.1:"+strconv.Itoa(adminPort)
	// A token of the run's own, so that the chaos build writes no token file
	// and no other process on the machine can change its experiment; and the
	// longest duration, as one process may serve longer than the default
	// half hour (the blast radius's, with a large BENCH_SECONDS).
	token := rand.Text()
	cmd := exec.Command(binary)
	cmd.Env = append(os.Environ(), append([]string{"ADDR=" + addr, "ADMIN_ADDR=" + adminAddr, "CHAOS=", "CHAOS_DELAY_SECONDS=", "CHAOS_ERROR_EVERY=",
		"CHAOS_CONTROL_TOKEN=" + token, "CHAOS_CONTROL_TOKEN_FILE=", "CHAOS_DURATION_SECONDS=86400"}, env...)...)
	a := &appProcess{url: "http://" + addr, admin: "http://" + adminAddr, token: token, cmd: cmd, stderr: &bytes.Buffer{}, exited: make(chan struct{})}
	if slices.Contains(env, "ADMIN_ADDR=off") {
		a.admin = ""
	}
	cmd.Stderr = a.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	go func() { cmd.Wait(); close(a.exited) }()
	err = waitFor(ctx, 15*time.Second, func() error {
		select {
		case <-a.exited:
			return errAppExited
		default:
		}
		resp, err := http.Get(a.url + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz answered %d", resp.StatusCode)
		}
		return nil
	})
	if err != nil {
		a.stop()
		return nil, fmt.Errorf("%s on %s never became ready: %v\n%s", binary, addr, err, a.stderr)
	}
	return a, nil
}

var errAppExited = errors.New("the process exited")

// stop sends SIGTERM and waits for the process to drain and exit 0.
func (a *appProcess) stop() error {
	select {
	case <-a.exited:
	default:
		a.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-a.exited:
		case <-time.After(15 * time.Second):
			a.cmd.Process.Kill()
			<-a.exited
			return errors.New("did not exit within 15 s of SIGTERM")
		}
	}
	if code := a.cmd.ProcessState.ExitCode(); code != 0 {
		return fmt.Errorf("exited with status %d:\n%s", code, a.stderr)
	}
	return nil
}

// peakRSSKB reads the process's peak resident set size (VmHWM) from /proc.
func (a *appProcess) peakRSSKB() (int, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", a.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
		}
	}
	return 0, errors.New("no VmHWM in /proc status")
}

// setExperiment replaces the chaos build's running experiment.
func (a *appProcess) setExperiment(body string) error {
	req, err := http.NewRequest(http.MethodPut, a.admin+"/debug/chaos", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("PUT /debug/chaos %s: %s %s", body, resp.Status, msg)
	}
	return nil
}

// pageCounts are the search pages the service counted, by outcome.
type pageCounts struct {
	WithRecommendations    int64 `json:"with_recommendations"`
	WithoutRecommendations int64 `json:"without_recommendations"`
}

// appCounts is what the service has counted by a moment: its search pages
// (when it has an admin listener) and, in the chaos build, the experiment's
// status.
type appCounts struct {
	pages pageCounts
	chaos chaos.Status
}

func (a *appProcess) counts() (appCounts, error) {
	var c appCounts
	var err error
	if a.chaos {
		if c.chaos, err = a.chaosStatus(""); err != nil {
			return c, err
		}
	}
	if a.admin != "" {
		if c.pages, err = a.searchPages(); err != nil {
			return c, err
		}
	}
	return c, nil
}

// countedBetween sets m's search pages and experiment counters to what app
// counted from before to after.
func (m *measurement) countedBetween(app *appProcess, before, after appCounts) {
	if app.admin != "" {
		pages := minus(after.pages, before.pages)
		m.Pages = &pages
	}
	if app.chaos {
		counters := minus(after.chaos.Counters, before.chaos.Counters)
		m.Counters = &counters
	}
}

// searchPages reads shopsession_search_pages_total from the admin listener's
// /metrics.

func (a *appProcess) searchPages() (pageCounts, error) {
	var p pageCounts
	families, err := scrapeMetrics(a.admin)
	if err != nil {
		return p, err
	}
	pages := families["shopsession_search_pages_total"]
	if pages == nil {
		return p, errors.New("GET /metrics: no shopsession_search_pages_total")
	}
	for _, m := range pages.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() != "outcome" {
				continue
			}
			switch n := int64(m.GetCounter().GetValue()); l.GetValue() {
			case "with_recommendations":
				p.WithRecommendations = n
			case "without_recommendations":
				p.WithoutRecommendations = n
			}
		}
	}
	return p, nil
}

// scrapeMetrics reads an admin listener's /metrics.
func scrapeMetrics(admin string) (map[string]*dto.MetricFamily, error) {
	resp, err := http.Get(admin + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET /metrics: %w", err)
	}
	return families, nil
}

// cpuSeconds is the time the process has spent on a CPU, user and system:
// the sum over its threads of /proc/<pid>/task/*/schedstat's first field,
// which is what /proc/<pid>/stat's utime + stime add up to, in nanoseconds
// instead of clock ticks (10 ms, 1 % of a 2 s run's CPU).
func (a *appProcess) cpuSeconds() (float64, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", a.cmd.Process.Pid))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("no /proc schedstat for pid %d: %v", a.cmd.Process.Pid, err)
	}
	var ns int64
	for _, path := range tasks {
		data, err := os.ReadFile(path)
		if err != nil {
			continue // a thread that exited
		}
		first, _, _ := strings.Cut(string(data), " ")
		n, err := strconv.ParseInt(first, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %q", path, data)
		}
		ns += n
	}
	return float64(ns) / 1e9, nil
}

// get fetches path with a cookie and returns the body.
// search posts the search form with query, as the book's ab command does:
// only a POST remembers the query.
func (a *appProcess) search(query, cookie string) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, a.url+"/search", strings.NewReader(url.Values{"query": {query}}.Encode()))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Cookie", cookie)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitFor retries check every 20 ms until it succeeds or limit passes.
func waitFor(ctx context.Context, limit time.Duration, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check()
		if err == nil || errors.Is(err, errAppExited) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-tick.C:
		}
	}
}
