package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// TestRedisURLOptionsRefused: each REDIS_URL that go-redis accepts but the
// service cannot run with is refused with one line naming the option.
func TestRedisURLOptionsRefused(t *testing.T) {
	for url, want := range map[string]string{
		"redis://127.0.0.1:6379/0?pool_size=-5":                         `want pool_size as a whole number from 1 to 1000, not "-5"`,
		"redis://127.0.0.1:6379/0?pool_size=1000000000000":              `pool_size`,
		"redis://127.0.0.1:6379/0?pool_size=100000000":                  `pool_size`,
		"redis://127.0.0.1:6379/0?dial_timeout=-1s":                     `want dial_timeout as a duration from 1ms to 1m, not "-1s"`,
		"redis://127.0.0.1:6379/0?dial_timeout=-36028797018963967":      `want dial_timeout as a duration from 1ms to 1m, not "-36028797018963967"`,
		"redis://127.0.0.1:6379/0?read_timeout=0":                       `read_timeout`,
		"redis://127.0.0.1:6379/0?write_timeout=100000000000000000":     `write_timeout`,
		"redis://127.0.0.1:6379/0?min_idle_conns=-1":                    `min_idle_conns`,
		"redis://127.0.0.1:6379/0?max_retries=1000":                     `max_retries`,
		"redis://127.0.0.1:6379/0?protocol=4":                           `protocol as 2 or 3`,
		"redis://127.0.0.1:6379/0?client_name=a+b":                      `client_name`,
		"redis://127.0.0.1:6379/0?pipeline_read_buffer_size=-1":         `pipeline_read_buffer_size`,
		"redis://127.0.0.1:6379/0?db=-1":                                `db as a database number`,
		"redis://127.0.0.1:6379/-1":                                     `a database number from 0, not "-1"`,
		"redis://127.0.0.1:99999/0":                                     `a port from 1 to 65535, not "99999"`,
		"redis://127.0.0.1:0/0":                                         `a port from 1 to 65535, not "0"`,
		"redis://127.0.0.1:6379?addr=h2:x":                              `want addr as host:port with a port from 1 to 65535, not "h2:x"`,
		"redis://127.0.0.1:6379?addr=h2:70000":                          `addr`,
		"redis://127.0.0.1:6379?addr=127.0.0.1:6380&dialer_retries=-3":  `dialer_retries`,
		"redis://127.0.0.1:6379?addr=127.0.0.1:6380&max_redirects=1000": `max_redirects`,
		"redis://:pw@127.0.0.1:6379?addr=127.0.0.1:6380&pool_size=0":    `pool_size`,
	} {
		_, err := parseConfig(nil, mapGetenv(map[string]string{"REDIS_URL": url}), io.Discard)
		var usage usageError
		if !errors.As(err, &usage) || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") ||
			!strings.HasPrefix(err.Error(), "invalid REDIS_URL ") {
			t.Errorf("REDIS_URL=%s: error %v, want one line with %q", url, err, want)
		}
	}
}

// TestNoRedisURLOptionPanics tries every option go-redis's URL parsers take
// with values from far below to far above their range: each is refused with
// one line, or the client it makes starts, answers PING (one server) and
// closes. None may panic.
func TestNoRedisURLOptionPanics(t *testing.T) {
	values := []string{"-1000000000000", "-5", "-1", "0", "1", "2", "3", "16", "1000", "1001", "100000000",
		"1000000000000", "abc", "-1s", "0s", "1ms", "500ms", "1h", "25h", "true", "", "127.0.0.1:1"}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	accepted := 0
	for name := range redisURLOptions {
		cluster := map[string]bool{"addr": true, "max_redirects": true, "read_only": true, "route_by_latency": true,
			"route_by_latency_tolerance": true, "route_randomly": true, "dialer_retries": true,
			"dialer_retry_timeout": true, "failing_timeout_seconds": true}[name]
		for _, value := range values {
			url := testRedis.url() + "?" + name + "=" + value
			if cluster && name != "addr" {
				url += "&addr=" + testRedis.addr()
			}
			cfg, err := parseConfig(nil, mapGetenv(map[string]string{"REDIS_URL": url}), io.Discard)
			if err != nil {
				var usage usageError
				if !errors.As(err, &usage) || strings.Contains(err.Error(), "\n") {
					t.Errorf("%s: %v, want a one-line usage error", url, err)
				}
				continue
			}
			accepted++
			rdb, closeRedis, err := openRedis(cfg, logger)
			if err != nil {
				t.Errorf("%s: %v", url, err)
				continue
			}
			if cfg.redisOptions != nil && name != "db" {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				err := rdb.Ping(ctx).Err()
				// A URL's own timeout of 1 ms can run out honestly on a
				// loaded machine (once in CI under -race): a working client
				// answers one of five PINGs; a broken one none.
				var timeout net.Error
				for try := 1; try < 5 && errors.As(err, &timeout) && timeout.Timeout(); try++ {
					err = rdb.Ping(ctx).Err()
				}
				if err != nil {
					t.Errorf("%s was accepted, but PING fails: %v", url, err)
				}
				cancel()
			}
			closeRedis()
		}
	}
	t.Logf("%d of %d URLs accepted, and their clients work", accepted, len(redisURLOptions)*len(values))
}
