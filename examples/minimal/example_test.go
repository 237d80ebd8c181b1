package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"example.com/shopsession/internal/redistest"
)

const chaosPackage = "example.com/shopsession/chaos"

// TestExample builds the example both ways and proves that only the chaos
// build holds package chaos — in its package graph, its symbols and its
// bytes — and that the pair works: the chaos build delays the counter's
// Redis round trip, the production build does not.
func TestExample(t *testing.T) {
	dir := t.TempDir()
	prod, chaos := goBuild(t, filepath.Join(dir, "prod")), goBuild(t, filepath.Join(dir, "chaos"), "-tags", "chaos")

	t.Run("deps", func(t *testing.T) {
		prodDeps, chaosDeps := goListDeps(t), goListDeps(t, "-tags", "chaos")
		if !slices.Contains(prodDeps, "github.com/redis/go-redis/v9") {
			t.Fatalf("go list -deps of the production build: %q", prodDeps)
		}
		for _, pkg := range prodDeps {
			if pkg == chaosPackage || strings.HasPrefix(pkg, chaosPackage+"/") {
				t.Errorf("the production build depends on %s", pkg)
			}
		}
		if !slices.Contains(chaosDeps, chaosPackage) {
			t.Errorf("positive control: the chaos build does not depend on %s", chaosPackage)
		}
	})

	t.Run("symbols", func(t *testing.T) {
		prodSymbols, chaosSymbols := goToolNM(t, prod), goToolNM(t, chaos)
		var named []string
		for _, line := range strings.Split(prodSymbols, "\n") {
			if strings.Contains(strings.ToLower(line), "chaos") {
				named = append(named, strings.TrimSpace(line))
			}
		}
		if len(named) > 0 {
			t.Errorf("production binary has %d symbols named chaos-something: %q", len(named), named[:min(len(named), 5)])
		}
		if !strings.Contains(chaosSymbols, chaosPackage+".(*Experiment).Instrument") {
			t.Errorf("positive control: chaos binary lacks %s.(*Experiment).Instrument", chaosPackage)
		}
		prodBytes, chaosBytes := readFile(t, prod), readFile(t, chaos)
		for _, s := range []string{chaosPackage, "CHAOS_DELAY_SECONDS", "delays_injected_total"} {
			if bytes.Contains(prodBytes, []byte(s)) {
				t.Errorf("production binary contains %s", s)
			}
			if !bytes.Contains(chaosBytes, []byte(s)) {
				t.Errorf("positive control: chaos binary lacks %s", s)
			}
		}
	})

	t.Run("latency end to end", func(t *testing.T) {
		const delay = 50 * time.Millisecond
		const token = "example-test-token-0123456789abcdef"
		env := []string{"REDIS_ADDR=" + redistest.Own(t).Addr(), "CHAOS=latency", "CHAOS_DELAY_SECONDS=0.05", "CHAOS_CONTROL_TOKEN=" + token}
		chaosURL, prodURL := start(t, chaos, env), start(t, prod, env)

		// Both count on the same Redis: the chaos build first, then production.
		visit := 0
		fastest := func(url string) time.Duration {
			least := time.Hour
			for range 5 {
				visit++
				start := time.Now()
				status, body := get(t, url+"/visits?user=ann")
				took := time.Since(start)
				if want := fmt.Sprintf("ann visit %d\n", visit); status != http.StatusOK || body != want {
					t.Fatalf("GET %s/visits?user=ann = %d %q, want 200 %q", url, status, body, want)
				}
				least = min(least, took)
			}
			return least
		}
		chaosTook, prodTook := fastest(chaosURL), fastest(prodURL)
		t.Logf("fastest of 5 visits: chaos build %v, production build %v", chaosTook, prodTook)
		if chaosTook < delay {
			t.Errorf("chaos build with CHAOS=latency CHAOS_DELAY_SECONDS=0.05: a visit took %v, want ≥ %v", chaosTook, delay)
		}
		if prodTook >= delay {
			t.Errorf("production build with the same environment: the fastest visit took %v, want < %v", prodTook, delay)
		}

		if status, body := get(t, chaosURL+"/debug/chaos"); status != http.StatusOK || !strings.Contains(body, `"state":"running"`) {
			t.Errorf("chaos build: GET /debug/chaos = %d %s", status, body)
		}
		for sent, want := range map[string]int{"": http.StatusUnauthorized, "wrong-token-0123456789abcdef": http.StatusUnauthorized, token: http.StatusOK} {
			if status, body := send(t, http.MethodDelete, chaosURL+"/debug/chaos", sent); status != want {
				t.Errorf("chaos build: DELETE /debug/chaos with token %q = %d %s, want %d", sent, status, body, want)
			}
		}
		if _, body := get(t, chaosURL+"/debug/chaos"); !strings.Contains(body, `"state":"off"`) {
			t.Errorf("chaos build: GET /debug/chaos after DELETE: %s", body)
		}
		if status, _ := get(t, prodURL+"/debug/chaos"); status != http.StatusNotFound {
			t.Errorf("production build: GET /debug/chaos = %d, want 404", status)
		}
		if _, body := get(t, chaosURL+"/metrics"); !strings.Contains(body, "\nvisits_chaos_delays_injected_total{run_id=\"\"} ") {
			t.Errorf("chaos build: /metrics lacks visits_chaos_delays_injected_total:\n%s", body)
		}
		if _, body := get(t, prodURL+"/metrics"); strings.Contains(body, "chaos") || !strings.Contains(body, "go_goroutines") {
			t.Errorf("production build: /metrics has chaos series, or lacks Go's own:\n%s", body)
		}
	})
}

// TestFleet: two chaos instances on one Redis follow one experiment that
// the chaos build's ctl starts and stops; the production build has no ctl.
func TestFleet(t *testing.T) {
	dir := t.TempDir()
	prod, chaos := goBuild(t, filepath.Join(dir, "prod")), goBuild(t, filepath.Join(dir, "chaos"), "-tags", "chaos")
	const delay = 50 * time.Millisecond
	env := []string{"REDIS_ADDR=" + redistest.Own(t).Addr(), "CHAOS_CONTROL_TOKEN=example-test-token-0123456789abcdef"}
	urls := []string{start(t, chaos, env), start(t, chaos, env)}
	ctl := func(binary, stdin string, args ...string) (int, string) {
		cmd := exec.Command(binary, append([]string{"ctl"}, args...)...)
		cmd.Env, cmd.Stdin = env, strings.NewReader(stdin)
		out, _ := cmd.CombinedOutput()
		return cmd.ProcessState.ExitCode(), string(out)
	}
	state := func(want string) {
		t.Helper()
		for _, url := range urls {
			for deadline := time.Now().Add(time.Second); ; time.Sleep(5 * time.Millisecond) {
				if _, body := get(t, url+"/debug/chaos"); strings.Contains(body, `"state":"`+want+`"`) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s/debug/chaos not %s within 1 s", url, want)
				}
			}
		}
	}
	if code, out := ctl(chaos, `{"experiment":"latency","delay_seconds":0.05,"commands":["incr"]}`, "start", "-detach"); code != 0 {
		t.Fatalf("ctl start -detach: exit %d: %s", code, out)
	}
	state("running")
	for _, url := range urls {
		begun := time.Now()
		if status, _ := get(t, url+"/visits?user=ann"); status != http.StatusOK {
			t.Fatalf("GET %s/visits = %d", url, status)
		}
		if took := time.Since(begun); took < delay {
			t.Errorf("%s: a visit took %v during the fleet's experiment, want ≥ %v", url, took, delay)
		}
	}
	if code, out := ctl(chaos, "", "stop"); code != 0 {
		t.Fatalf("ctl stop: exit %d: %s", code, out)
	}
	state("off")
	if code, out := ctl(chaos, "", "launch"); code != 2 {
		t.Errorf("ctl launch: exit %d (%s), want 2", code, out)
	}
	if code, out := ctl(prod, "", "status"); code == 0 || !strings.Contains(out, "chaos build only") {
		t.Errorf("production ctl status: exit %d: %s; want a refusal naming the chaos build", code, out)
	}
}

// TestREADMEShowsTheExample keeps the README's "Use it in your service"
// from going stale: its two Go blocks are chaos_on.go and chaos_off.go, byte
// for byte.
func TestREADMEShowsTheExample(t *testing.T) {
	readme := string(readFile(t, filepath.Join("..", "..", "README.md")))
	_, section, ok := strings.Cut(readme, "\n## Use it in your service\n")
	if !ok {
		t.Fatal(`README.md has no section "## Use it in your service"`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var blocks []string
	for {
		_, rest, ok := strings.Cut(section, "\n```go\n")
		if !ok {
			break
		}
		block, rest, ok := strings.Cut(rest, "\n```\n")
		if !ok {
			t.Fatal("README.md: a ```go block of the section is not closed")
		}
		blocks, section = append(blocks, block+"\n"), rest
	}
	files := []string{"chaos_on.go", "chaos_off.go"}
	if len(blocks) != len(files) {
		t.Fatalf("README.md's section has %d Go blocks, want %d: %q", len(blocks), len(files), files)
	}
	for i, file := range files {
		want := string(readFile(t, file))
		if blocks[i] == want {
			continue
		}
		got, wantLines := strings.Split(blocks[i], "\n"), strings.Split(want, "\n")
		for n := range max(len(got), len(wantLines)) {
			if n >= len(got) || n >= len(wantLines) || got[n] != wantLines[n] {
				t.Errorf("README.md's Go block %d is not %s: line %d differs; copy the file into it", i+1, file, n+1)
				break
			}
		}
	}
}

func goBuild(t *testing.T, out string, flags ...string) string {
	t.Helper()
	args := append([]string{"build", "-trimpath", "-o", out}, flags...)
	if msg, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, msg)
	}
	return out
}

func goListDeps(t *testing.T, flags ...string) []string {
	t.Helper()
	args := append([]string{"list", "-deps", "-f", "{{.ImportPath}}"}, flags...)
	out, err := exec.Command("go", append(args, ".")...).Output()
	if err != nil {
		t.Fatalf("go %s: %v", strings.Join(args, " "), err)
	}
	return strings.Fields(string(out))
}

func goToolNM(t *testing.T, binary string) string {
	t.Helper()
	out, err := exec.Command("go", "tool", "nm", binary).Output()
	if err != nil {
		t.Fatalf("go tool nm %s: %v", binary, err)
	}
	return string(out)
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// start runs a build of the example on a free loopback port with env as its
// whole environment, and returns its URL once it answers /healthz.
func start(t *testing.T, binary string, env []string) string {
	t.Helper()
	stdout, stderr := &output{line: make(chan string, 1)}, &output{}
	cmd := exec.Command(binary, "-addr", "127.0.0.1:0")
	cmd.Env, cmd.Stdout, cmd.Stderr = env, stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var url string
	select {
	case line := <-stdout.line:
		var ok bool
		if url, ok = strings.CutPrefix(line, "listening on "); !ok {
			t.Fatalf("%s: first line %q, want listening on …", binary, line)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not say where it listens:\n%s", binary, stderr)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if status, _ := get(t, url+"/healthz"); status == http.StatusOK {
			return url
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: /healthz never answered 200:\n%s", binary, stderr)
		}
	}
}

var client = &http.Client{Timeout: 10 * time.Second}

// get returns the status and body of GET url; status 0: no answer.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	return send(t, http.MethodGet, url, "")
}

// send is get for any method, with token as the bearer credential ("": none).
func send(t *testing.T, method, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// output collects what a process writes, and sends its first line on line
// if line is not nil.
type output struct {
	line chan string

	mu   sync.Mutex
	buf  bytes.Buffer
	sent bool
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	if first, _, ok := bytes.Cut(o.buf.Bytes(), []byte("\n")); ok && o.line != nil && !o.sent {
		o.line <- string(first) // line has room for it
		o.sent = true
	}
	return len(p), nil
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}
