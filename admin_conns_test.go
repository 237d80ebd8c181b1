package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"
)

// adminPC is a program counter the server can name: the tests run the app
// in their own process.
func adminPC() uintptr { return reflect.ValueOf(newAdminHandler).Pointer() }

// startUnderFileLimit runs this test binary as the program (see TestMain)
// with at most files open file descriptors, soft and hard, so that the Go
// runtime cannot raise it.
func startUnderFileLimit(t *testing.T, files int, env ...string) *process {
	t.Helper()
	logs := newLogBuffer()
	cmd := exec.Command("sh", "-c", fmt.Sprintf(`ulimit -n %d && exec "$0"`, files), os.Args[0])
	cmd.Env = append(os.Environ(), append([]string{"SHOPSESSION_TEST_MAIN=1", "ADDR=127.0.0.1:0", "ADMIN_ADDR=127.0.0.1:0",
		"REDIS_URL=" + testRedis.url(), "CHAOS_CONTROL_TOKEN=" + testControlToken}, env...)...)
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, exited: make(chan error, 1)}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill(); <-p.exited })
	p.testApp = serving(t, logs)
	return p
}

// TestAdminConnectionCapLeavesTheShopItsFiles: the admin listener shares
// the process's file descriptors with the shop's. Without a cap of its own,
// connections to it took every descriptor (20 000 idle ones stopped the
// shop's /healthz with "accept4: too many open files"). Here the process
// may open 64 files and ADMIN_MAX_CONNS is 8: 100 keep-alive connections to
// the admin listener, one request each, left open, are all answered (the
// longest idle is closed to make room for each), and the shop goes on
// answering.
func TestAdminConnectionCapLeavesTheShopItsFiles(t *testing.T) {
	const files, adminConns, flood = 64, 8, 100
	app := startUnderFileLimit(t, files, fmt.Sprintf("ADMIN_MAX_CONNS=%d", adminConns))
	addr := strings.TrimPrefix(app.admin.url, "http://")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	answered := 0
	for range flood {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
		// A bound with a wide margin: an answer takes milliseconds, and
		// one that is never coming never comes.
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			break
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("admin GET /metrics on connection %d = %d", answered+1, resp.StatusCode)
		}
		answered++
	}
	if answered != flood {
		t.Errorf("%d of %d admin connections answered", answered, flood)
	}

	// New connections: the shop must still accept them.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := client.Get(app.url + "/healthz"); err != nil {
		t.Errorf("shop GET /healthz with %d connections to the admin listener: %v", len(conns), err)
	} else {
		resp.Body.Close()
	}
	resp, err := client.PostForm(app.url+"/search", url.Values{"query": {"lamp"}})
	if err != nil {
		t.Errorf("shop POST /search with %d connections to the admin listener: %v", len(conns), err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusOK {
		t.Errorf("shop POST /search with %d connections to the admin listener = %d", len(conns), resp.StatusCode)
	}
	if strings.Contains(app.logs.String(), "too many open files") {
		t.Errorf("the process ran out of file descriptors:\n%s", app.logs.String())
	}
}
