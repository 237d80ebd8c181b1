//go:build chaos

package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"testing"

	"example.com/shopsession/chaos"
)

// TestTruthyChaosTakesTheNamedExperiment: the book starts experiment 1 with
// CHAOS=true CHAOS_DELAY_SECONDS=0.1. A truthy CHAOS runs the experiments
// whose settings are given (chaos.TestFromEnvReadsATruthyChaos reads every
// spelling), and the start-up warning says how to spell it.
func TestTruthyChaosTakesTheNamedExperiment(t *testing.T) {
	app := startApp(t, map[string]string{"CHAOS": "true", "CHAOS_DELAY_SECONDS": "0.1"})
	app.logs.waitFor(t, regexp.MustCompile(`level=WARN msg="CHAOS BUILD[^"]*" experiment=latency delay_seconds=0.1 `))
	app.logs.waitFor(t, regexp.MustCompile(`level=WARN msg="CHAOS=true read as CHAOS=latency \(CHAOS_DELAY_SECONDS set\); write CHAOS=latency next time"`))
	if s := chaosStatusOf(t, app); s.Experiment != "latency" || s.DelaySeconds != 0.1 || s.State != chaos.StateRunning {
		t.Errorf("status = %+v, want the latency experiment of 0.1 s running", s.Config)
	}
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
