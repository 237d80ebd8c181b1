// Command minimal counts a user's visits in Redis: GET /visits?user=ann
// answers "ann visit 3". It is the smallest service that builds package
// chaos in with -tags chaos (chaos_on.go) and leaves it out without
// (chaos_off.go); main.go is the same in both builds.
package main

import (
	"cmp"
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
	"regexp"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		// ctl's usage errors say 2, as the flag package's do.
		var coded interface{ ExitCode() int }
		if errors.As(err, &coded) {
			os.Exit(coded.ExitCode())
		}
		os.Exit(1)
	}
}

// run serves until ctx is done.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	redisAddr := cmp.Or(getenv("REDIS_ADDR"), "127.0.0.1:6379")
	if len(args) > 0 && args[0] == "ctl" { // the chaos build's fleet control
		return runCtl(ctx, args[1:], redisAddr, getenv, stdout, stderr)
	}
	flags := flag.NewFlagSet("minimal", flag.ContinueOnError)
	flags.SetOutput(stderr)
	addr := flags.String("addr", "127.0.0.1:8080", "address to serve on")
	if err := flags.Parse(args); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	experiment, err := newExperiment(getenv, logger) // nil in production
	if err != nil {
		return err
	}

	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	experiment.instrument(rdb)
	leave, err := experiment.joinFleet(redisAddr) // the fleet's experiment, in the same Redis
	if err != nil {
		return err
	}
	defer leave()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	if err := experiment.registerMetrics(reg); err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /visits", func(w http.ResponseWriter, r *http.Request) {
		user := userOf(r)
		if !validUser(user) {
			http.Error(w, "want ?user= of 1 to 64 letters, digits or _", http.StatusBadRequest)
			return
		}
		n, err := rdb.Incr(r.Context(), "visits:"+user).Result()
		if err != nil {
			logger.Warn("redis", "err", err)
			http.Error(w, "cannot count just now", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "%s visit %d\n", user, n)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := rdb.Ping(r.Context()).Err(); err != nil {
			http.Error(w, "redis: "+err.Error(), http.StatusServiceUnavailable)
		}
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	experiment.mountControl(mux)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "listening on http://%s\n", ln.Addr())
	srv := &http.Server{Handler: experiment.observe(mux), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

var userName = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

func userOf(r *http.Request) string { return r.URL.Query().Get("user") }

func validUser(user string) bool { return userName.MatchString(user) }
