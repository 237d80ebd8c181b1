package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	cfg, err := parseConfig(nil, mapGetenv(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.addr != "127.0.0.1:5000" || cfg.redisOptions != nil || cfg.redisTimeout != 2*time.Second ||
		cfg.sessionTTL != 24*time.Hour || cfg.maxConns != 256 || cfg.cookieSecure || cfg.logFormat != "text" || cfg.adminAddr != "127.0.0.1:6060" {
		t.Errorf("defaults = %+v", cfg)
	}
}

func TestConfigFlagBeatsEnvironment(t *testing.T) {
	cfg, err := parseConfig([]string{"-redis-timeout", "300ms"}, mapGetenv(map[string]string{"REDIS_TIMEOUT": "5s", "SESSION_TTL": "1h", "REDIS_URL": "redis://127.0.0.1:6390/2"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.redisTimeout != 300*time.Millisecond || cfg.sessionTTL != time.Hour || cfg.redisOptions.Addr != "127.0.0.1:6390" || cfg.redisOptions.DB != 2 {
		t.Errorf("cfg = %+v, options %+v", cfg, cfg.redisOptions)
	}
}

func TestAdminListenerCanBeDisabled(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
	}{
		{args: []string{"-admin-addr="}},
		{args: []string{"-admin-addr", "off"}},
		{env: map[string]string{"ADMIN_ADDR": "off"}},
	} {
		cfg, err := parseConfig(tc.args, mapGetenv(tc.env), io.Discard)
		if err != nil || cfg.adminAddr != "" {
			t.Errorf("args %q env %v: admin %q, %v; want disabled", tc.args, tc.env, cfg.adminAddr, err)
		}
	}
}

func TestConfigInvalid(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string // in the one line
	}{
		{env: map[string]string{"ADDR": "5000"}, want: `invalid ADDR "5000": want host:port`},
		{env: map[string]string{"ADDR": "127.0.0.1:99999"}, want: `invalid ADDR`},
		{args: []string{"-addr", "nope"}, want: `invalid -addr "nope"`},
		{env: map[string]string{"ADDR": "999.1.1.1:80"}, want: `invalid ADDR "999.1.1.1:80": want host:port`},
		{env: map[string]string{"ADDR": "1.2.3:80"}, want: `invalid ADDR "1.2.3:80"`},
		{env: map[string]string{"ADDR": "exa mple:80"}, want: `invalid ADDR "exa mple:80"`},
		{env: map[string]string{"ADDR": "-shop:80"}, want: `invalid ADDR "-shop:80"`},
		{env: map[string]string{"ADDR": "shop..example:80"}, want: `invalid ADDR "shop..example:80"`},
		{env: map[string]string{"REDIS_URL": "http://127.0.0.1:6379"}, want: `invalid REDIS_URL "http://127.0.0.1:6379": want redis://`},
		{env: map[string]string{"REDIS_URL": "redis://:hunter2@127.0.0.1:6379/x"}, want: `invalid REDIS_URL "redis://:xxxxx@127.0.0.1:6379/x"`},
		{env: map[string]string{"REDIS_TIMEOUT": "2"}, want: `invalid REDIS_TIMEOUT "2": want a duration from 1ms to 1m`},
		{env: map[string]string{"REDIS_TIMEOUT": "-1s"}, want: `invalid REDIS_TIMEOUT "-1s"`},
		{env: map[string]string{"REDIS_TIMEOUT": "2h"}, want: `invalid REDIS_TIMEOUT "2h"`},
		{env: map[string]string{"SESSION_TTL": "30d"}, want: `invalid SESSION_TTL "30d": want a duration from 1s to 87600h`},
		{env: map[string]string{"SESSION_TTL": "500ms"}, want: `invalid SESSION_TTL "500ms"`},
		{env: map[string]string{"COOKIE_SECURE": "yes"}, want: `invalid COOKIE_SECURE "yes": want true or false`},
		{env: map[string]string{"LOG_FORMAT": "xml"}, want: `invalid LOG_FORMAT "xml": want text or json`},
		{env: map[string]string{"ADMIN_ADDR": "6060"}, want: `invalid ADMIN_ADDR "6060": want host:port such as 127.0.0.1:6060`},
		{args: []string{"-admin-addr", "127.0.0.1:70000"}, want: `invalid -admin-addr "127.0.0.1:70000"`},
		{env: map[string]string{"ADMIN_ADDR": "127.0.0.1:5000"}, want: `invalid ADMIN_ADDR "127.0.0.1:5000": want an address other than the shop's`},
		{env: map[string]string{"ADMIN_ADDR": "999.1.1.1:6060"}, want: `invalid ADMIN_ADDR "999.1.1.1:6060"`},
		{env: map[string]string{"MAX_CONNS": "0"}, want: `invalid MAX_CONNS "0": want a whole number from 1 to 65536`},
		{env: map[string]string{"MAX_CONNS": "-5"}, want: `invalid MAX_CONNS "-5"`},
		{env: map[string]string{"MAX_CONNS": "100000"}, want: `invalid MAX_CONNS "100000"`},
		{args: []string{"-max-conns", "many"}, want: `invalid -max-conns "many"`},
		{args: []string{"-nope"}, want: "flag provided but not defined: -nope (see -h)"},
		{args: []string{"extra"}, want: `unexpected argument "extra"`},
	} {
		_, err := parseConfig(tc.args, mapGetenv(tc.env), io.Discard)
		var usage usageError
		if !errors.As(err, &usage) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("env %v args %q: error %q, want one usage line containing %q", tc.env, tc.args, err, tc.want)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the error shows the Redis password: %q", err)
		}
	}
}

func TestConfigListenHosts(t *testing.T) {
	for _, addr := range []string{":8080", "127.0.0.1:0", "[::1]:0", "localhost:80", "shop.example.com:443", "shop-1.internal.:80", "0.0.0.0:80", "[fe80::1%eth0]:80"} {
		if _, err := parseConfig([]string{"-addr", addr}, mapGetenv(nil), io.Discard); err != nil {
			t.Errorf("-addr %s: %v", addr, err)
		}
	}
}

func TestHelpListsEverySetting(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, mapGetenv(nil), &out, io.Discard); err != nil {
		t.Fatalf("run -h = %v", err)
	}
	for _, name := range []string{"-addr", "ADDR", "-redis-url", "REDIS_URL", "-redis-timeout", "REDIS_TIMEOUT",
		"-session-ttl", "SESSION_TTL", "-max-conns", "MAX_CONNS", "-cookie-secure", "COOKIE_SECURE", "-log-format", "LOG_FORMAT", "-admin-addr", "ADMIN_ADDR"} {
		if !strings.Contains(out.String(), name) {
			t.Errorf("-h does not mention %s:\n%s", name, out.String())
		}
	}
}

// TestBadConfigExitsTwo runs main in a child process (see TestMain): a usage error must end
// it with status 2 and exactly one line on stderr.
func TestBadConfigExitsTwo(t *testing.T) {
	for setting, line := range map[string]string{
		"LOG_FORMAT=yaml":   "invalid LOG_FORMAT \"yaml\": want text or json\n",
		"ADDR=999.1.1.1:80": "invalid ADDR \"999.1.1.1:80\": want host:port such as 127.0.0.1:5000 or :8080, the host an IP address or a DNS name\n",
	} {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "SHOPSESSION_TEST_MAIN=1", setting)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 {
			t.Fatalf("%s: exit = %v, want status 2; stderr %q", setting, err, stderr.String())
		}
		if got := stderr.String(); got != line {
			t.Errorf("%s: stderr = %q, want %q", setting, got, line)
		}
	}
}

// TestJSONLogsStayJSON runs with LOG_FORMAT=json against a Redis that is not
// there: every line, go-redis's own included, must be a JSON object.
func TestJSONLogsStayJSON(t *testing.T) {
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	logs := newLogBuffer()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, onFreePorts, mapGetenv(map[string]string{
			"LOG_FORMAT": "json", "REDIS_URL": "redis://127.0.0.1:" + strconv.Itoa(port) + "/0", "REDIS_TIMEOUT": "200ms",
			"CHAOS_CONTROL_TOKEN": testControlToken}), io.Discard, logs)
	}()
	addr := logs.waitFor(t, regexp.MustCompile(`"msg":"listening","addr":"([^"]+)"`))[1]
	app := &testApp{url: "http://" + addr, logs: logs}
	if resp := app.searchFor(t, "json-logs", "apple"); resp.status != http.StatusOK {
		t.Errorf("search = %d", resp.status)
	}
	logs.waitFor(t, regexp.MustCompile(`"msg":"redis error [^"]*refused`))
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), `"msg":"go-redis: `) {
		t.Errorf("go-redis logged nothing of the refused dials, so its logger went untested:\n%s", logs.String())
	}
	for line := range strings.SplitSeq(strings.TrimSpace(logs.String()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("not a JSON line: %s", line)
		}
	}
}
