package main

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestRecommenderConfig(t *testing.T) {
	cfg, err := parseConfig(nil, mapGetenv(nil), io.Discard)
	if err != nil || cfg.recommenderEndpoint != "" || cfg.recommenderBound() != 0 {
		t.Fatalf("default: endpoint %q bound %v, %v; want none", cfg.recommenderEndpoint, cfg.recommenderBound(), err)
	}
	for _, tc := range []struct {
		args     []string
		env      map[string]string
		endpoint string
		timeout  time.Duration
	}{
		{env: map[string]string{"RECOMMENDER_URL": "http://127.0.0.1:5001"}, endpoint: "http://127.0.0.1:5001/recommendations", timeout: 500 * time.Millisecond},
		{env: map[string]string{"RECOMMENDER_URL": "https://recs.internal.example/api/v1/", "RECOMMENDER_TIMEOUT": "150ms"}, endpoint: "https://recs.internal.example/api/v1/recommendations", timeout: 150 * time.Millisecond},
		{args: []string{"-recommender-url", "http://[::1]:5001", "-recommender-timeout", "2s"}, env: map[string]string{"RECOMMENDER_URL": "http://nope:1"}, endpoint: "http://[::1]:5001/recommendations", timeout: 2 * time.Second},
		{env: map[string]string{"RECOMMENDER_URL": "http://recommender:8080"}, endpoint: "http://recommender:8080/recommendations", timeout: 500 * time.Millisecond},
	} {
		cfg, err := parseConfig(tc.args, mapGetenv(tc.env), io.Discard)
		if err != nil || cfg.recommenderEndpoint != tc.endpoint || cfg.recommenderTimeout != tc.timeout || cfg.recommenderBound() != tc.timeout {
			t.Errorf("args %q env %v: endpoint %q timeout %v, %v; want %q %v", tc.args, tc.env, cfg.recommenderEndpoint, cfg.recommenderTimeout, err, tc.endpoint, tc.timeout)
		}
	}
}

func TestRecommenderConfigInvalid(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string // in the one line
	}{
		{env: map[string]string{"RECOMMENDER_URL": "ftp://127.0.0.1:5001"}, want: `invalid RECOMMENDER_URL "ftp://127.0.0.1:5001": want http://host:port or https://host:port`},
		{env: map[string]string{"RECOMMENDER_URL": "127.0.0.1:5001"}, want: `invalid RECOMMENDER_URL "127.0.0.1:5001": want http://`},
		{env: map[string]string{"RECOMMENDER_URL": "http://"}, want: `invalid RECOMMENDER_URL "http://": want`},
		{env: map[string]string{"RECOMMENDER_URL": "http://0.0.0.0:5001"}, want: `invalid RECOMMENDER_URL "http://0.0.0.0:5001"`},
		{env: map[string]string{"RECOMMENDER_URL": "http://999.1.1.1:5001"}, want: `invalid RECOMMENDER_URL "http://999.1.1.1:5001"`},
		{env: map[string]string{"RECOMMENDER_URL": "http://127.0.0.1:99999"}, want: `invalid RECOMMENDER_URL "http://127.0.0.1:99999": want a port from 1 to 65535`},
		{env: map[string]string{"RECOMMENDER_URL": "http://127.0.0.1:0"}, want: `want a port from 1 to 65535, not "0"`},
		{env: map[string]string{"RECOMMENDER_URL": "http://127.0.0.1:"}, want: `invalid RECOMMENDER_URL "http://127.0.0.1:"`},
		{env: map[string]string{"RECOMMENDER_URL": "http://127.0.0.1:5001/?k=v"}, want: `no user, query or fragment`},
		{env: map[string]string{"RECOMMENDER_URL": "http://127.0.0.1:5001/#top"}, want: `no user, query or fragment`},
		{env: map[string]string{"RECOMMENDER_URL": "http://admin:hunter2@127.0.0.1:5001"}, want: `invalid RECOMMENDER_URL "http://admin:xxxxx@127.0.0.1:5001"`},
		{args: []string{"-recommender-url", "http://exa mple"}, want: `invalid -recommender-url`},
		{env: map[string]string{"RECOMMENDER_URL": "http://admin:hunter2@127.0.0.1:port"}, want: `invalid RECOMMENDER_URL "http://admin:xxxxx@127.0.0.1:port"`},
		{env: map[string]string{"RECOMMENDER_TIMEOUT": "0s"}, want: `invalid RECOMMENDER_TIMEOUT "0s": want a duration from 1ms to 1m`},
		{env: map[string]string{"RECOMMENDER_TIMEOUT": "500"}, want: `invalid RECOMMENDER_TIMEOUT "500"`},
		{args: []string{"-recommender-timeout", "2m"}, want: `invalid -recommender-timeout "2m"`},
	} {
		_, err := parseConfig(tc.args, mapGetenv(tc.env), io.Discard)
		var usage usageError
		if !errors.As(err, &usage) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("env %v args %q: error %q, want one usage line containing %q", tc.env, tc.args, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the error shows the recommender's password: %q", err)
		}
	}
}

// TestRecommenderBadConfigExitsTwo: the process, not only parseConfig,
// exits 2 with the one line.
func TestRecommenderBadConfigExitsTwo(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "SHOPSESSION_TEST_MAIN=1", "RECOMMENDER_URL=ftp://127.0.0.1:5001")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || strings.Count(stderr.String(), "\n") != 1 ||
		!strings.HasPrefix(stderr.String(), `invalid RECOMMENDER_URL "ftp://127.0.0.1:5001": want http://`) {
		t.Errorf("exit %v, stderr %q; want status 2 and one line naming RECOMMENDER_URL", err, stderr.String())
	}
}
