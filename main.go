// Command shopsession is a web shop's session-tracking service: it remembers a
// visitor's last three searches in Redis and recommends from them.
//
// Built with -tags chaos it also carries fault-injection experiments, picked by
// environment variables; the default build carries none of that code.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
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

const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	// renderAndWrite is what a request takes besides reading it and Redis:
	// rendering a page of a few kilobytes and handing it to the kernel.
	renderAndWrite = 5 * time.Second
)

// longestRequest bounds how long a request can take: reading it, then the
// search's two Redis operations (the read; the write with its retries), each
// bounded by REDIS_TIMEOUT, then the page. The server's timeouts enforce it.
func longestRequest(redisTimeout time.Duration) time.Duration {
	return readTimeout + 2*redisTimeout + renderAndWrite
}

// shutdownGrace is how long SIGINT or SIGTERM lets in-flight requests finish:
// as long as the longest can take, so that none is cut and the drain ends in
// time.
func shutdownGrace(redisTimeout time.Duration) time.Duration {
	return longestRequest(redisTimeout) + time.Second
}

// run serves until ctx is done, then drains in-flight requests and returns.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "ctl" {
		return runCtl(ctx, args[1:], getenv, stdout, stderr)
	}
	cfg, err := parseConfig(args, getenv, stdout)
	if errors.Is(err, errHelpShown) {
		return nil
	}
	if err != nil {
		return err
	}
	logger := newLogger(cfg.logFormat, stderr)
	// In production newExperiment is a no-op returning nil (chaos_off.go).
	var httpDependencies []string
	if cfg.recommenderEndpoint != "" {
		httpDependencies = append(httpDependencies, recommenderDependency)
	}
	experiment, err := newExperiment(getenv, logger, httpDependencies...)
	if err != nil {
		return err
	}
	// In the chaos build every line from here on names the run id of the
	// experiment running, if it has one; in production the logger as it is.
	logger = experiment.withRunID(logger)

	rdb, closeRedis, err := openRedis(cfg, logger)
	if err != nil {
		return err
	}
	defer closeRedis()

	var m *metrics // nil, recording nothing, when no admin listener would serve them
	if cfg.adminAddr != "" {
		m = newMetrics()
		experiment.registerMetrics(m.registry)
	}
	// Metrics count commands as the store sees them, the experiment's faults
	// included, so their hook goes first. The experiment hooks the client
	// before its first command, so that on a cluster it reaches every node
	// client as go-redis creates it.
	m.watchRedis(rdb)
	experiment.instrument(rdb)
	// In the chaos build, the fleet's control plane on the same Redis, through
	// a client of its own, once the experiment has its client; in production
	// a no-op.
	leaveFleet, err := experiment.joinFleet(cfg, logger)
	if err != nil {
		return err
	}
	defer leaveFleet()
	st := newStore(rdb, cfg.redisTimeout, cfg.sessionTTL, cfg.breaker, logger, m)
	m.watchBreaker(st.cacheState().String())
	m.watchDegraded(st.degraded)
	// In the chaos build the experiment watches the searches it serves, for
	// its guardrails; in production observe returns the handler unchanged.
	// Without RECOMMENDER_URL rec is nil, and pages carry the built-in
	// recommendation. The chaos build wraps the client's Transport.
	recClient := newRecommenderClient(cfg.maxConns, cfg.recommenderTimeout)
	if cfg.recommenderEndpoint != "" {
		recClient = experiment.instrumentHTTP("recommender", recClient)
	}
	rec := newRecommender(cfg.recommenderEndpoint, recClient, cfg.recommenderTimeout, cfg.breaker, logger, m)
	handler := experiment.observe(newHandler(st, rec, logger, cfg.cookieSecure, m))
	st.loadScripts(ctx)

	tcp, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.addr, err)
	}
	ln := newConnLimit(tcp, cfg.maxConns)
	workers := newWorkerPool(boundBodyRead(handler))
	defer workers.Close()
	srv := &http.Server{
		Handler:           workers,
		ConnState:         ln.trackState,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		// Counted from the end of the headers, so it holds the body's reading too.
		WriteTimeout:   longestRequest(cfg.redisTimeout) + cfg.recommenderBound(),
		IdleTimeout:    60 * time.Second,
		MaxHeaderBytes: maxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(func() { logger.Info("stopped accepting connections; draining in-flight requests") })
	build := "production"
	if chaosBuild {
		build = "chaos"
	}
	admin, adminLn, err := listenAdmin(cfg, m, experiment, logger)
	if err != nil {
		ln.Close()
		return err
	}
	logger.Info("listening", "addr", ln.Addr().String(), "build", build)

	served := make(chan error, 2)
	go func() { served <- srv.Serve(ln) }()
	if admin != nil {
		go func() { served <- admin.Serve(adminLn) }()
	}
	select {
	case err := <-served:
		srv.Close()
		if admin != nil {
			admin.Close()
		}
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	grace := shutdownGrace(cfg.redisTimeout) + cfg.recommenderBound()
	logger.Info("shutting down", "grace", grace)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	if admin != nil {
		// Operators can watch the drain: the admin listener stops after the
		// shop's, and lets a scrape or a PUT under way finish.
		if adminErr := admin.Shutdown(shutdownCtx); adminErr != nil {
			admin.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("drain in-flight requests: %w", err)
	}
	return nil
}

// listenAdmin opens the admin listener, or returns nils when cfg disables it.
func listenAdmin(cfg config, m *metrics, experiment *experiment, logger *slog.Logger) (*http.Server, net.Listener, error) {
	if cfg.adminAddr == "" {
		logger.Info("admin listener disabled: no /metrics or /debug/pprof/")
		return nil, nil, nil
	}
	tcp, err := net.Listen("tcp", cfg.adminAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("admin listener: listen on %s: %w (set ADMIN_ADDR or -admin-addr to another host:port, or off)", cfg.adminAddr, err)
	}
	logger.Info("admin listening", "addr", tcp.Addr().String())
	// A cap of its own, as the shop's listener has: the two share the
	// process's file descriptors, and without it connections to this one
	// took them all.
	ln := newConnLimit(tcp, cfg.adminConns)
	return &http.Server{
		Handler:           boundBodyRead(newAdminHandler(m, experiment, logger)),
		ConnState:         ln.trackState,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      adminWriteTimeout,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}, ln, nil
}
