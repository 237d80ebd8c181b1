// Command recommender is the reference recommender the shop asks for
// recommendations when RECOMMENDER_URL is set (docs/recommender.md). It can
// fail for real, for tests, the bench and by hand: -fail-every answers every
// Nth request 503, -delay holds every answer back.
//
//	go run ./cmd/recommender                  # http://127.0.0.1:5001
//	go run ./cmd/recommender -fail-every 2    # every other request 503
//	go run ./cmd/recommender -delay 2s        # slower than the shop waits
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"example.com/shopsession/internal/recommender"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		var usage usageError
		if errors.As(err, &usage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError is a configuration mistake: exit status 2, as the shop's.
type usageError string

func (e usageError) Error() string { return string(e) }

type config struct {
	addr     string
	settings recommender.Settings
}

func parseConfig(args []string, getenv func(string) string, stdout io.Writer) (config, bool, error) {
	fs := flag.NewFlagSet("recommender", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	envOr := func(env, def string) string {
		if v := getenv(env); v != "" {
			return v
		}
		return def
	}
	addr := fs.String("addr", envOr("RECOMMENDER_ADDR", "127.0.0.1:5001"), "`host:port` to listen on (env RECOMMENDER_ADDR)")
	failEvery := fs.String("fail-every", envOr("RECOMMENDER_FAIL_EVERY", "0"), "answer every Nth recommendation request 503, a whole `number`: 1 all of them, 2 every other one, 0 none (env RECOMMENDER_FAIL_EVERY)")
	delay := fs.String("delay", envOr("RECOMMENDER_DELAY", "0s"), "hold every answer back this long, a Go `duration` (env RECOMMENDER_DELAY)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, "Usage: recommender [flags]\nEach flag falls back to the environment variable named in its help, then to its default.")
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return config{}, true, nil
		}
		return config{}, false, usageError(err.Error() + " (see -h)")
	}
	if fs.NArg() > 0 {
		return config{}, false, usageError(fmt.Sprintf("unexpected argument %q: recommender takes only flags (see -h)", fs.Arg(0)))
	}
	fromFlag := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { fromFlag[f.Name] = true })
	invalid := func(flagName, env, value, want string) error {
		name := env
		if fromFlag[flagName] {
			name = "-" + flagName
		}
		return usageError(fmt.Sprintf("invalid %s %q: want %s", name, value, want))
	}
	cfg := config{addr: *addr}
	if _, port, err := net.SplitHostPort(*addr); err != nil || !validPort(port) {
		return config{}, false, invalid("addr", "RECOMMENDER_ADDR", *addr, "host:port such as 127.0.0.1:5001 or :5001")
	}
	n, err := strconv.Atoi(*failEvery)
	if err != nil || n < 0 || n > 1000000 {
		return config{}, false, invalid("fail-every", "RECOMMENDER_FAIL_EVERY", *failEvery, "a whole number from 0 (none) to 1000000, such as 2")
	}
	cfg.settings.FailEvery = n
	if cfg.settings.Delay, err = time.ParseDuration(*delay); err != nil || cfg.settings.Delay < 0 || cfg.settings.Delay > 10*time.Minute {
		return config{}, false, invalid("delay", "RECOMMENDER_DELAY", *delay, "a duration from 0s to 10m, such as 2s")
	}
	return cfg, false, nil
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && n <= 65535
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, helped, err := parseConfig(args, getenv, stdout)
	if helped || err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (set RECOMMENDER_ADDR or -addr to another host:port)", cfg.addr, err)
	}
	rec := recommender.New(cfg.settings)
	srv := &http.Server{
		Handler:           rec.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		IdleTimeout:       90 * time.Second, // longer than the shop keeps an idle connection
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("listening", "addr", ln.Addr().String(), "fail_every", cfg.settings.FailEvery, "delay", cfg.settings.Delay)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	// Held answers are sent at once, so that the drain waits for none of
	// them; a second bounds the rest.
	srv.RegisterOnShutdown(rec.Release)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
	}
	logger.Info("stopped")
	return nil
}
