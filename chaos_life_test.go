//go:build chaos

package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"example.com/shopsession/chaos"
)

const lifeToken = "life-test-token-0123456789abcdef"

// TestEveryExperimentEnds: an experiment started without a duration gets the
// default one, so the status shows when it ends; a PUT that only changes the
// delay starts a whole new experiment, with that default too.
func TestEveryExperimentEnds(t *testing.T) {
	app := startApp(t, map[string]string{"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "0.01", "CHAOS_CONTROL_TOKEN": lifeToken})
	s := chaosStatusOf(t, app)
	if s.State != chaos.StateRunning || s.EndsAt == nil || s.DurationSeconds != 1800 {
		t.Fatalf("at start: state %s, ends %v, duration %v; want running, ending 1800 s on", s.State, s.EndsAt, s.DurationSeconds)
	}
	if resp := changeChaos(t, app, http.MethodPut, lifeToken, `{"experiment":"latency","delay_seconds":0.02}`); resp.status != http.StatusOK {
		t.Fatalf("PUT = %d %s", resp.status, resp.body)
	}
	s = chaosStatusOf(t, app)
	if s.State != chaos.StateRunning || s.EndsAt == nil || time.Until(*s.EndsAt) < 1700*time.Second {
		t.Errorf("after a PUT of the delay: state %s, ends %v; want running with an end 1800 s on", s.State, s.EndsAt)
	}
}

// TestPATCHKeepsWhatItDoesNotName: a PATCH changes the fields it names and
// keeps the rest, the end time included; naming the duration restarts it
// from the PATCH. When nothing runs, there is nothing to patch: 409.
func TestPATCHKeepsWhatItDoesNotName(t *testing.T) {
	app := startApp(t, map[string]string{"CHAOS_CONTROL_TOKEN": lifeToken})
	patch := func(body string) response { return changeChaos(t, app, http.MethodPatch, lifeToken, body) }
	if resp := patch(`{"delay_seconds":0.02}`); resp.status != http.StatusConflict || strings.Count(resp.body, "\n") != 1 || !strings.Contains(resp.body, "PUT") {
		t.Errorf("PATCH with no experiment = %d %q, want 409 and one line saying to PUT", resp.status, resp.body)
	}
	resp := changeChaos(t, app, http.MethodPut, lifeToken, `{"experiment":"latency,error","delay_seconds":0.01,"commands":["get"],"error_every":3,"duration_seconds":600,"seed":9}`)
	if resp.status != http.StatusOK {
		t.Fatalf("PUT = %d %s", resp.status, resp.body)
	}
	before := chaosStatusOf(t, app)
	if resp := patch(`{"delay_seconds":0.02}`); resp.status != http.StatusOK {
		t.Fatalf("PATCH = %d %s", resp.status, resp.body)
	}
	after := chaosStatusOf(t, app)
	want := before.Config
	want.DelaySeconds = 0.02
	if !equalConfig(after.Config, want) || after.EndsAt == nil || before.EndsAt == nil || !after.EndsAt.Equal(*before.EndsAt) {
		t.Errorf("PATCH of the delay: %+v ending %v; want %+v ending %v", after.Config, after.EndsAt, want, before.EndsAt)
	}

	// Naming error_every makes the every-Nth mode take effect; naming the
	// duration ends it that long after the PATCH.
	patch(`{"error_rate":0.5}`)
	patched := time.Now()
	if resp := patch(`{"error_every":4,"duration_seconds":60}`); resp.status != http.StatusOK {
		t.Fatalf("PATCH = %d %s", resp.status, resp.body)
	}
	s := chaosStatusOf(t, app)
	if s.ErrorEvery != 4 || s.ErrorRate != 0 || s.DurationSeconds != 60 || s.EndsAt == nil ||
		s.EndsAt.Before(patched.Add(59*time.Second)) || s.EndsAt.After(time.Now().Add(60*time.Second)) {
		t.Errorf("PATCH of error_every and the duration: every %d, rate %v, duration %v, ends %v",
			s.ErrorEvery, s.ErrorRate, s.DurationSeconds, s.EndsAt)
	}

	if resp := changeChaos(t, app, http.MethodDelete, lifeToken, ""); resp.status != http.StatusOK {
		t.Fatalf("DELETE = %d", resp.status)
	}
	if resp := patch(`{"experiment":"latency"}`); resp.status != http.StatusConflict {
		t.Errorf("PATCH after DELETE = %d %s, want 409: a stopped experiment is not resumed", resp.status, resp.body)
	}
}

func equalConfig(a, b chaos.Config) bool {
	return a.Experiment == b.Experiment && a.DelaySeconds == b.DelaySeconds && a.JitterSeconds == b.JitterSeconds &&
		strings.Join(a.Commands, ",") == strings.Join(b.Commands, ",") && a.ErrorEvery == b.ErrorEvery && a.ErrorRate == b.ErrorRate &&
		a.Seed == b.Seed && a.Layer == b.Layer && a.ErrorReply == b.ErrorReply && a.DurationSeconds == b.DurationSeconds
}

// TestSettingsThatDoNothingAreRefused: a command the shop never sends, a
// duration of 0 (no end) and error_every with error_rate are refused, by
// PUT with 400 and one line, and at start as a usage error.
func TestSettingsThatDoNothingAreRefused(t *testing.T) {
	app := startApp(t, map[string]string{"CHAOS": "error", "CHAOS_ERROR_EVERY": "3", "CHAOS_CONTROL_TOKEN": lifeToken})
	for body, want := range map[string]string{
		`{"experiment":"latency","commands":["gett"]}`:            `invalid commands "gett": gett is not a command this service sends; want some of get, evalsha`,
		`{"experiment":"latency","duration_seconds":0}`:           `invalid duration_seconds "0": want seconds from 1 to 86400`,
		`{"experiment":"error","error_every":3,"error_rate":0.5}`: `error_every and error_rate are both set`,
	} {
		resp := changeChaos(t, app, http.MethodPut, lifeToken, body)
		if resp.status != http.StatusBadRequest || !strings.HasPrefix(resp.body, want) || strings.Count(resp.body, "\n") != 1 {
			t.Errorf("PUT %s = %d %q, want 400 and one line starting %q", body, resp.status, resp.body, want)
		}
		if s := chaosStatusOf(t, app); s.Experiment != "error" || s.ErrorEvery != 3 || s.ErrorRate != 0 {
			t.Fatalf("PUT %s changed the experiment to %+v", body, s.Config)
		}
	}
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	for env, want := range map[string]string{
		"CHAOS_COMMANDS=gett":       `invalid CHAOS_COMMANDS "gett": gett is not a command this service sends`,
		"CHAOS_DURATION_SECONDS=0":  `invalid CHAOS_DURATION_SECONDS "0": want seconds from 1 to 86400`,
		"CHAOS_CONTROL_TOKEN=short": `invalid CHAOS_CONTROL_TOKEN: `,
	} {
		name, value, _ := strings.Cut(env, "=")
		e, err := newExperiment(mapGetenv(map[string]string{"CHAOS": "latency", name: value}), discard)
		var usage usageError
		if e != nil || !errors.As(err, &usage) || !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, error %v; want no experiment and one usage line starting %q", env, e, err, want)
		}
	}
}

// TestNoEndlessExperimentAtStart: CHAOS_DURATION_SECONDS=0 once meant no
// limit; now the program refuses it, exits 2 and says why in one line.
func TestNoEndlessExperimentAtStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), "SHOPSESSION_TEST_MAIN=1", "REDIS_URL="+testRedis.url(), "ADDR=127.0.0.1:0", "ADMIN_ADDR=127.0.0.1:0",
		"CHAOS=latency", "CHAOS_DURATION_SECONDS=0", "CHAOS_CONTROL_TOKEN="+lifeToken)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("exit = %v, want status 2; stderr %q", err, stderr.String())
	}
	want := regexp.MustCompile(`^invalid CHAOS_DURATION_SECONDS "0": want seconds from 1 to 86400[^\n]*no unlimited run[^\n]*\n$`)
	if !want.MatchString(stderr.String()) {
		t.Errorf("stderr = %q, want one line saying there is no unlimited run", stderr.String())
	}
}
