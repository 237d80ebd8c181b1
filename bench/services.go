package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
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

func (t *redisTarget) close() {
	if t.client != nil {
		t.client.Close()
	}
	if t.server != nil && t.server.Process != nil {
		t.server.Process.Signal(syscall.SIGTERM)
		t.server.Wait()
	}
}

// appProcess is one build of the service, serving on a free loopback port.
type appProcess struct {
	url    string
	chaos  bool // the chaos build, with /debug/chaos
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	exited chan struct{}
}

// startApp runs binary with env added to this process's environment and
// returns once /readyz answers 200.
func startApp(ctx context.Context, binary string, env []string) (*appProcess, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(binary)
	cmd.Env = append(os.Environ(), append([]string{"ADDR=" + addr, "CHAOS=", "CHAOS_DELAY_SECONDS=", "CHAOS_ERROR_EVERY="}, env...)...)
	a := &appProcess{url: "http://" + addr, cmd: cmd, stderr: &bytes.Buffer{}, exited: make(chan struct{})}
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

// chaosCounters mirrors the counters of the chaos build's GET /debug/chaos.
type chaosCounters struct {
	RedisRoundTrips int64 `json:"redis_round_trips"`
	InterestReads   int64 `json:"interest_reads"`
	DelaysInjected  int64 `json:"delays_injected"`
	ErrorsInjected  int64 `json:"errors_injected"`
	// DelaySecondsInjected is what the delays took, each measured by the hook.
	DelaySecondsInjected float64 `json:"delay_seconds_injected"`
}

type chaosStatus struct {
	Experiment   string        `json:"experiment"`
	DelaySeconds float64       `json:"delay_seconds"`
	ErrorEvery   int64         `json:"error_every"`
	Counters     chaosCounters `json:"counters"`
}

func (a *appProcess) chaosStatus() (chaosStatus, error) {
	var s chaosStatus
	resp, err := http.Get(a.url + "/debug/chaos")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("GET /debug/chaos: %s", resp.Status)
	}
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// setExperiment replaces the chaos build's running experiment.
func (a *appProcess) setExperiment(body string) error {
	req, err := http.NewRequest(http.MethodPut, a.url+"/debug/chaos", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
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

// get fetches path with a cookie and returns the body.
func (a *appProcess) get(path, cookie string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, a.url+path, nil)
	if err != nil {
		return 0, "", err
	}
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
