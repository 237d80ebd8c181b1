package main

import (
	"log/slog"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The admin listener serves what operators read and change, on its own
// address (ADMIN_ADDR, loopback by default), never on the shop's: behind a
// reverse proxy every visitor would reach the shop's listener, and a proxy
// that forwards from the same host makes every visitor look local.

// adminWriteTimeout leaves room for pprof's default 30-second CPU profile;
// pprof refuses a profile longer than the server's write timeout.
const adminWriteTimeout = 2 * time.Minute

// newAdminHandler returns the admin listener's routes, all of them:
// /metrics, /debug/pprof/ and, in the chaos build, /debug/chaos.
func newAdminHandler(m *metrics, experiment *experiment, logger *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", adminIndex)
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	}))
	// pprof's handlers, mounted here rather than through its import side
	// effect on http.DefaultServeMux, which nothing serves. Not cmdline: a
	// -redis-url on the command line may carry a password.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", http.NotFound)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	experiment.mountControl(mux)
	return securityHeaders(mux)
}

func adminIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	body := "shopsession admin listener\n/metrics        Prometheus metrics\n/debug/pprof/   Go profiles\n"
	if chaosBuild {
		body += "/debug/chaos    the running experiment: GET, PUT, PATCH, DELETE (loopback clients only; PUT, PATCH and DELETE need the control token as Authorization: Bearer)\n"
	}
	w.Write([]byte(body))
}
