//go:build chaos

package main

import (
	"bytes"
	"errors"
	"example.com/shopsession/chaos"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"testing"
)

// TestTruthyChaosTakesTheNamedExperiment: the book starts experiment 1 with
// CHAOS=true CHAOS_DELAY_SECONDS=0.1. A truthy CHAOS runs the experiments
// whose settings are given, and the start-up warning says how to spell it.
func TestTruthyChaosTakesTheNamedExperiment(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want chaos.Config
	}{
		{map[string]string{"CHAOS": "true", "CHAOS_DELAY_SECONDS": "0.1", "CHAOS_SEED": "7"}, chaos.Config{Experiment: "latency", DelaySeconds: 0.1, ErrorEvery: 2, Seed: 7, Layer: chaos.LayerCommand,
			readAs: "CHAOS=true read as CHAOS=latency (CHAOS_DELAY_SECONDS set); write CHAOS=latency next time"}},
		{map[string]string{"CHAOS": "On", "CHAOS_ERROR_EVERY": "3", "CHAOS_SEED": "7"}, chaos.Config{Experiment: "error", DelaySeconds: 0.75, ErrorEvery: 3, Seed: 7, Layer: chaos.LayerCommand,
			readAs: "CHAOS=On read as CHAOS=error (CHAOS_ERROR_EVERY set); write CHAOS=error next time"}},
		{map[string]string{"CHAOS": "1", "CHAOS_DELAY_SECONDS": "0.2", "CHAOS_ERROR_RATE": "0.3", "CHAOS_SEED": "7"}, chaos.Config{Experiment: "latency,error", DelaySeconds: 0.2, ErrorEvery: 2, ErrorRate: 0.3, Seed: 7, Layer: chaos.LayerCommand,
			readAs: "CHAOS=1 read as CHAOS=latency,error (CHAOS_DELAY_SECONDS and CHAOS_ERROR_RATE set); write CHAOS=latency,error next time"}},
		// Spelled out, there is nothing to warn about.
		{map[string]string{"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "0.1", "CHAOS_SEED": "7"}, chaos.Config{Experiment: "latency", DelaySeconds: 0.1, ErrorEvery: 2, Seed: 7, Layer: chaos.LayerCommand}},
	} {
		got, err := chaos.FromEnv(mapGetenv(tc.env))
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("env %v: %+v, %v; want %+v", tc.env, got, err, tc.want)
		}
	}

	app := startApp(t, map[string]string{"CHAOS": "true", "CHAOS_DELAY_SECONDS": "0.1"})
	app.logs.waitFor(t, regexp.MustCompile(`level=WARN msg="CHAOS BUILD[^"]*" experiment=latency delay_seconds=0.1 `))
	app.logs.waitFor(t, regexp.MustCompile(`level=WARN msg="CHAOS=true read as CHAOS=latency \(CHAOS_DELAY_SECONDS set\); write CHAOS=latency next time"`))
}

// TestBareTruthyChaosExitsTwo: a truthy CHAOS with no setting that names an
// experiment (the jitter and the commands only tune one) stops the program
// with status 2 and one line naming the choices.
func TestBareTruthyChaosExitsTwo(t *testing.T) {
	for _, env := range [][]string{
		{"CHAOS=true"},
		{"CHAOS=yes", "CHAOS_COMMANDS=get", "CHAOS_DELAY_JITTER_SECONDS=0.1"},
	} {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(append(os.Environ(), "SHOPSESSION_TEST_MAIN=1", "REDIS_URL="+testRedis.url()), env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 {
			t.Fatalf("%v: exit = %v, want status 2; stderr %q", env, err, stderr.String())
		}
		want := regexp.MustCompile(`^invalid CHAOS "(true|yes)": ambiguous, it does not say which experiment; want latency, error or latency,error \(none, unset or empty: no experiment\)\n$`)
		if !want.MatchString(stderr.String()) {
			t.Errorf("%v: stderr = %q, want one line naming CHAOS and the choices", env, stderr.String())
		}
	}
}
