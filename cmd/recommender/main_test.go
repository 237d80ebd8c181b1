package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestConfigInvalid(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"-addr", "5001"}, want: `invalid -addr "5001": want host:port`},
		{env: map[string]string{"RECOMMENDER_ADDR": "127.0.0.1:99999"}, want: `invalid RECOMMENDER_ADDR "127.0.0.1:99999"`},
		{args: []string{"-fail-every", "-1"}, want: `invalid -fail-every "-1": want a whole number from 0 (none) to 1000000`},
		{env: map[string]string{"RECOMMENDER_FAIL_EVERY": "half"}, want: `invalid RECOMMENDER_FAIL_EVERY "half"`},
		{args: []string{"-delay", "2"}, want: `invalid -delay "2": want a duration from 0s to 10m`},
		{env: map[string]string{"RECOMMENDER_DELAY": "-1s"}, want: `invalid RECOMMENDER_DELAY "-1s"`},
		{args: []string{"extra"}, want: `unexpected argument "extra"`},
	} {
		_, _, err := parseConfig(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
		var usage usageError
		if !errors.As(err, &usage) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("args %q env %v: %v; want one usage line containing %q", tc.args, tc.env, err, tc.want)
		}
	}
}

// syncBuffer is a log that a test reads while run writes it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestRunServesAndStops: run on a free port serves the settings it was
// given and returns nil once its context ends (held answers are released
// then: internal/recommender's TestReleaseEndsDelays).
func TestRunServesAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	var logs syncBuffer
	result := make(chan error, 1)
	go func() {
		result <- run(ctx, []string{"-addr", "127.0.0.1:0", "-fail-every", "1"}, func(string) string { return "" }, io.Discard, &logs)
	}()
	listening := regexp.MustCompile(`msg=listening addr=(\S+)`)
	deadline := time.Now().Add(10 * time.Second)
	var addr string
	for addr == "" {
		if m := listening.FindStringSubmatch(logs.String()); m != nil {
			addr = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("never listened; log:\n%s", logs.String())
		} else {
			select {
			case err := <-result:
				t.Fatalf("run returned %v", err)
			case <-time.After(time.Millisecond): // polling the log for its line
			}
		}
	}
	resp, err := http.Post("http://"+addr+"/recommendations", "application/json", strings.NewReader(`{"interests":["apple"]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("-fail-every 1: %d; want 503", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-result:
		if err != nil {
			t.Errorf("run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return within 5 s of its context ending")
	}
}
