package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"example.com/shopsession/chaos"
)

// The fleet's processes, for the fleet scenario and for bin/bench -fleet
// (make fleet): a redis-server of its own and three instances of the chaos
// build that join the fleet on it with one control token, and
// shopsession-chaos ctl, which starts and stops the fleet's experiment
// there. The Redis is always the fleet's own, even with REDIS_URL set: a
// fleet experiment written to a shared Redis would reach every chaos
// instance that watches it.

const fleetSize = 3

var errNoRedisServer = errors.New("redis-server is not installed: apt-get install redis-server")

type fleet struct {
	redis       *redisTarget
	apps        []*appProcess
	token       string
	chaosBinary string
}

func startFleet(ctx context.Context, chaosBinary, workDir string) (*fleet, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, errNoRedisServer
	}
	r, err := openRedis(ctx, "", workDir)
	if err != nil {
		return nil, err
	}
	// rand.Text: 26 printable characters, more than the 16 the token needs.
	f := &fleet{redis: r, token: rand.Text(), chaosBinary: chaosBinary}
	for i := range fleetSize {
		// startApp's own token comes first in the environment; the fleet's,
		// later, is the one the process sees.
		app, err := startApp(ctx, chaosBinary, []string{"REDIS_URL=" + r.url, "CHAOS_CONTROL_TOKEN=" + f.token, "CHAOS_FLEET="})
		if err != nil {
			f.close()
			return nil, fmt.Errorf("fleet instance %d: %w", i+1, err)
		}
		app.chaos, app.token = true, f.token
		f.apps = append(f.apps, app)
	}
	return f, nil
}

// close stops every instance, then the Redis.
func (f *fleet) close() error {
	var errs []error
	for i, a := range f.apps {
		if err := a.stop(); err != nil {
			errs = append(errs, fmt.Errorf("fleet instance %d: %w", i+1, err))
		}
	}
	f.apps = nil
	f.redis.close()
	return errors.Join(errs...)
}

// ctl is shopsession-chaos ctl on the fleet's Redis with its token; a token
// file named in this process's environment is not read.
func (f *fleet) ctl(args ...string) *exec.Cmd {
	cmd := exec.Command(f.chaosBinary, append([]string{"ctl", "-redis-url", f.redis.url}, args...)...)
	cmd.Env = append(os.Environ(), "CHAOS_CONTROL_TOKEN="+f.token, "CHAOS_CONTROL_TOKEN_FILE=")
	return cmd
}

// heldCtl is a ctl start that holds the lease until it is sent SIGTERM.
type heldCtl struct {
	cmd     *exec.Cmd
	version int64
	stderr  strings.Builder
	mu      sync.Mutex
	stdout  []string
	started chan string // ctl's "started …" line
	exited  chan struct{}
}

var startedLine = regexp.MustCompile(`^started fleet experiment version (\d+)\b`)

// startedVersion reads the version from ctl start's "started fleet
// experiment version N …" line.
func startedVersion(line string) (int64, bool) {
	m := startedLine.FindStringSubmatch(line)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseInt(m[1], 10, 64)
	return v, err == nil && v > 0
}

// ctlStart runs ctl start -lease lease with body on stdin and returns once
// ctl says it wrote the record.
func (f *fleet) ctlStart(body, lease string) (*heldCtl, error) {
	h := &heldCtl{cmd: f.ctl("start", "-lease", lease), started: make(chan string, 1), exited: make(chan struct{})}
	h.cmd.Stdin = strings.NewReader(body)
	h.cmd.Stderr = &syncWriter{mu: &h.mu, w: &h.stderr}
	out, err := h.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := h.cmd.Start(); err != nil {
		return nil, fmt.Errorf("ctl start: %w", err)
	}
	go func() {
		defer close(h.exited)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			h.mu.Lock()
			h.stdout = append(h.stdout, sc.Text())
			h.mu.Unlock()
			if strings.HasPrefix(sc.Text(), "started") {
				select {
				case h.started <- sc.Text():
				default:
				}
			}
		}
		h.cmd.Wait()
	}()
	select {
	case line := <-h.started:
		v, ok := startedVersion(line)
		if !ok {
			h.kill()
			return nil, fmt.Errorf("ctl start printed %q, want \"started fleet experiment version N …\"", line)
		}
		h.version = v
		return h, nil
	case <-h.exited:
		return nil, fmt.Errorf("ctl start exited with status %d before it said it started: %s", h.cmd.ProcessState.ExitCode(), h.output())
	case <-time.After(10 * time.Second):
		h.kill()
		return nil, fmt.Errorf("ctl start said nothing within 10 s: %s", h.output())
	}
}

// stop sends SIGTERM, as an operator's Ctrl-C would, and wants ctl to remove
// the experiment, say "stopped" and exit 0.
func (h *heldCtl) stop() error {
	h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.exited:
	case <-time.After(10 * time.Second):
		h.kill()
		return fmt.Errorf("ctl start did not exit within 10 s of SIGTERM: %s", h.output())
	}
	h.mu.Lock()
	said := strings.Join(h.stdout, "\n")
	h.mu.Unlock()
	if code := h.cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(said, "\nstopped") {
		return fmt.Errorf("ctl start after SIGTERM: exit status %d, want 0 and a \"stopped\" line: %s", code, h.output())
	}
	return nil
}

func (h *heldCtl) kill() {
	h.cmd.Process.Kill()
	<-h.exited
}

func (h *heldCtl) output() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return fmt.Sprintf("stdout %q, stderr %q", strings.Join(h.stdout, "\n"), strings.TrimSpace(h.stderr.String()))
}

// syncWriter lets exec's copying goroutine write what output() reads.
type syncWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

var errNoFleet = errors.New(`GET /debug/chaos has no "fleet" object: the chaos build does not join a fleet (built before the fleet control plane, or CHAOS_FLEET=off)`)

// instanceStatus is an instance's status, which must say what the fleet
// has it do (Fleet.Version 0: no fleet experiment).
func (a *appProcess) instanceStatus() (chaos.Status, error) {
	s, err := a.chaosStatus("")
	if err == nil && s.Fleet == nil {
		err = errNoFleet
	}
	return s, err
}

// waitVersion waits until every instance applies version (0: none).
func (f *fleet) waitVersion(ctx context.Context, version int64, limit time.Duration) error {
	for i, a := range f.apps {
		err := waitFor(ctx, limit, func() error {
			s, err := a.instanceStatus()
			if err == nil && s.Fleet.Version != version {
				err = fmt.Errorf("it applies fleet version %d", s.Fleet.Version)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("fleet instance %d never applied version %d within %s: %w", i+1, version, limit, err)
		}
	}
	return nil
}
