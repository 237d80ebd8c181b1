// Package redistest runs real redis-server processes on free loopback ports
// for tests: the project's tests never stand in for Redis.
package redistest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Install is what a test that finds no redis-server tells the person to run.
const Install = "apt-get install redis-server (or: make deps)"

// Server is a redis-server process on a free loopback port, with no
// persistence, that a test can stop and start again on the same port.
type Server struct {
	port int
	dir  string
	args []string // more redis-server options
	cmd  *exec.Cmd
	done chan struct{}
}

// Available reports an error that says how to install redis-server when it
// is not on PATH.
func Available() error {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return fmt.Errorf("these tests need a real redis-server on PATH; install it with: %s", Install)
	}
	return nil
}

// Start starts a redis-server on a free loopback port with args added to
// its options.
func Start(args ...string) (*Server, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		return nil, err
	}
	var lastErr error
	for range 3 { // another process may take the free port before redis-server binds it
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		s := &Server{port: port, dir: dir, args: args}
		if lastErr = s.Restart(); lastErr == nil {
			return s, nil
		}
	}
	return nil, lastErr
}

// Own starts a redis-server for one test, which may stop and start it, and
// stops it when the test ends.
func Own(t testing.TB, args ...string) *Server {
	t.Helper()
	s, err := Start(args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// FreePort is a loopback TCP port that nothing listened on a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Restart runs redis-server on s's port and returns once it says it accepts
// connections.
func (s *Server) Restart() error {
	cmd := exec.Command("redis-server", append([]string{
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir, "--loglevel", "notice"}, s.args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return err
	}
	ready := make(chan struct{})
	var output bytes.Buffer
	var outputMu sync.Mutex
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			outputMu.Lock()
			output.WriteString(sc.Text() + "\n")
			outputMu.Unlock()
			if strings.Contains(sc.Text(), "Ready to accept connections") {
				close(ready)
				io.Copy(io.Discard, stdout)
				return
			}
		}
	}()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-ready:
		s.cmd, s.done = cmd, done
		return nil
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
	outputMu.Lock()
	defer outputMu.Unlock()
	return fmt.Errorf("redis-server on port %d did not become ready:\n%s", s.port, output.String())
}

// Stop ends redis-server and waits until it has exited.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

func (s *Server) Port() int    { return s.port }
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }
func (s *Server) URL() string  { return "redis://" + s.Addr() + "/0" }

// StartOn starts a redis-server on port, in a directory of its own, with
// args added to its options: for a cluster, whose nodes need their bus port
// (+10000) free too.
func StartOn(port int, args ...string) (*Server, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		return nil, err
	}
	s := &Server{port: port, dir: dir, args: args}
	return s, s.Restart()
}
