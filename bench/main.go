// Command bench runs Apache Bench against the production and chaos builds of
// shopsession, compares the steady state with each experiment and says
// whether each experiment's hypothesis held.
//
// Exit status: 0 when every hypothesis held, 1 when any deviated, 2 when the
// bench could not run.
//
// bench -profile -prod BINARY (make profile) profiles production under the
// -c 16 load instead; bench -fleet -chaos BINARY (make fleet) instead starts the fleet
// scenario's redis-server and three chaos instances and leaves them serving,
// for trying shopsession-chaos ctl by hand, until SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if os.Getenv(serveFloorEnv) != "" {
		err := serveFloor(ctx, os.Getenv)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench floor:", err)
			os.Exit(1)
		}
		return
	}
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type settings struct {
	prodBinary  string
	chaosBinary string
	slowBinary  string // optional: the calibration build, production plus a known slowdown
	outDir      string
	redisURL    string
	seconds     int
	concurrency int
	pairs       int
	loadSeconds int       // the 64-client load scenario; 0 skips it
	delays      []float64 // the latency sweep, in seconds
	only        string    // BENCH_ONLY: one scenario alone ("fleet", "catalogue", "recommender", "floor", "instructions", "validate"); "" runs them all
}

// Exit statuses.
const (
	exitHeld     = 0
	exitDeviated = 1
	exitCannot   = 2
)

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "-fleet" {
		return runFleetMode(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "-profile" {
		return runProfileMode(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 2 && args[0] == "-redraw" {
		if err := redraw(args[1]); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return exitCannot
		}
		return exitHeld
	}
	s, err := parseSettings(args, getenv)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return exitCannot
	}
	if _, err := exec.LookPath("ab"); err != nil {
		fmt.Fprintln(stderr, "bench: ab (Apache Bench) is not installed: apt-get install apache2-utils")
		return exitCannot
	}
	report, err := runScenarios(ctx, s, newProgress(stderr))
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return exitCannot
	}
	if err := report.write(stdout, s.outDir); err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return exitCannot
	}
	if !report.allHeld() {
		return exitDeviated
	}
	return exitHeld
}

func parseSettings(args []string, getenv func(string) string) (settings, error) {
	s := settings{redisURL: getenv("REDIS_URL"), seconds: 10, concurrency: 1, pairs: 5, loadSeconds: 60}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&s.prodBinary, "prod", "", "production `binary`")
	fs.StringVar(&s.chaosBinary, "chaos", "", "chaos `binary`")
	fs.StringVar(&s.slowBinary, "slow", "", "calibration `binary` (-tags benchslow), optional")
	fs.StringVar(&s.outDir, "out", "bench/results", "`directory` for latest.json and latest.svg")
	if err := fs.Parse(args); err != nil {
		return s, fmt.Errorf("%v: want -prod BINARY -chaos BINARY [-slow BINARY] [-out DIR]", err)
	}
	for _, b := range []struct{ flag, path string }{{"-prod", s.prodBinary}, {"-chaos", s.chaosBinary}} {
		if b.path == "" {
			return s, fmt.Errorf("%s is required (make bench builds both binaries and passes them)", b.flag)
		}
		if _, err := os.Stat(b.path); err != nil {
			return s, fmt.Errorf("%s %s: %v (run make build build-chaos)", b.flag, b.path, err)
		}
	}
	if s.slowBinary != "" {
		if _, err := os.Stat(s.slowBinary); err != nil {
			return s, fmt.Errorf("-slow %s: %v (run make build-slow)", s.slowBinary, err)
		}
	}
	whole := func(env string, value *int, lowest, highest int) error {
		raw := getenv(env)
		if raw == "" {
			return nil
		}
		n, err := strconv.Atoi(raw)
		if err != nil || n < lowest || n > highest {
			return fmt.Errorf("invalid %s %q: want a whole number from %d to %d", env, raw, lowest, highest)
		}
		*value = n
		return nil
	}
	if err := errors.Join(
		whole("BENCH_SECONDS", &s.seconds, 1, 600),
		whole("BENCH_CONCURRENCY", &s.concurrency, 1, 1000),
		// Fewer pairs cannot show a difference beyond chance (the verdict
		// needs every pair to agree).
		whole("BENCH_PAIRS", &s.pairs, 5, 50),
		whole("BENCH_LOAD_SECONDS", &s.loadSeconds, 0, 3600),
	); err != nil {
		return s, err
	}
	switch s.only = getenv("BENCH_ONLY"); s.only {
	case "", "fleet", "catalogue", "floor", "instructions", "validate":
	case "recommender": // bench/recommender.go
	default:
		return s, fmt.Errorf("invalid BENCH_ONLY %q: want fleet, catalogue, recommender, floor, instructions or validate (the scenarios that run alone), or unset for all", s.only)
	}
	if raw := getenv("BENCH_DELAYS"); raw != "" {
		for part := range strings.SplitSeq(raw, ",") {
			d, err := strconv.ParseFloat(strings.TrimSpace(part), 64)
			if err != nil || math.IsNaN(d) || d <= 0 || d > 5 {
				return s, fmt.Errorf("invalid BENCH_DELAYS %q: want delays in seconds above 0 and up to 5, comma-separated, such as 0.01,0.05,0.1", raw)
			}
			s.delays = append(s.delays, d)
		}
	}
	return s, nil
}
