package chaos

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Handler serves the experiment's control on whichever path it is mounted
// (the shop mounts it at /debug/chaos on its admin listener): GET shows the
// Status, PUT with a JSON Config replaces the running experiment, DELETE
// stops it. It answers only requests that a person on this machine sent
// straight to it, and none is ever cached.
func (e *Experiment) Handler() http.Handler {
	return localOnly(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			e.serveStatus(w, r)
		case http.MethodPut:
			e.replace(w, r)
		case http.MethodDelete:
			e.Stop()
			e.serveStatus(w, r)
		default:
			w.Header().Set("Allow", "DELETE, GET, HEAD, PUT")
			http.Error(w, "method not allowed: want GET, PUT or DELETE", http.StatusMethodNotAllowed)
		}
	}))
}

func (e *Experiment) serveStatus(w http.ResponseWriter, r *http.Request) {
	unit := r.URL.Query().Get("session")
	if r.URL.Query().Has("session") {
		if ok, want := e.opts.validUnit(unit); !ok {
			http.Error(w, "invalid session: "+want, http.StatusBadRequest)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(e.Status(unit))
}

// replace serves PUT: a valid body becomes the running experiment; an
// invalid one is refused and changes nothing.
func (e *Experiment) replace(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		http.Error(w, "body is larger than 64 KiB", http.StatusRequestEntityTooLarge)
		return
	}
	if err != nil {
		http.Error(w, "malformed body: "+err.Error(), http.StatusBadRequest)
		return
	}
	cfg, err := FromJSON(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	e.Use(cfg)
	e.serveStatus(w, r)
}

var noStore = []string{"no-store"}

// localOnly lets through only requests that a person on this machine sent
// straight to the service: the control changes what the service does. A
// loopback peer alone does not prove that: a proxy on this machine forwards
// other people's requests (and says so in forwarding headers), and a page in
// a local browser can rebind its own host name to 127.0.0.1 (and then sends
// that name as Host).
func localOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Cache-Control"] = noStore
		w.Header()["X-Content-Type-Options"] = []string{"nosniff"}
		path := r.URL.Path
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if ip, parseErr := netip.ParseAddr(host); err != nil || parseErr != nil || !ip.Unmap().IsLoopback() {
			http.Error(w, path+" answers loopback clients only", http.StatusForbidden)
			return
		}
		if !loopbackHost(r.Host) {
			http.Error(w, path+" answers requests for localhost or a loopback address only", http.StatusForbidden)
			return
		}
		for name := range r.Header {
			if forwardingHeader(name) {
				http.Error(w, path+" refuses forwarded requests ("+name+")", http.StatusForbidden)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// loopbackHost reports whether a Host header names this machine: localhost
// or a loopback address, with or without a port.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	return err == nil && ip.Unmap().IsLoopback()
}

// forwardingHeader reports whether a (canonical) header name is one that
// proxies add to say whom they forward for.
func forwardingHeader(name string) bool {
	switch name {
	case "Forwarded", "Via", "X-Real-Ip", "X-Client-Ip", "True-Client-Ip", "Cf-Connecting-Ip", "Fastly-Client-Ip", "X-Cluster-Client-Ip":
		return true
	}
	return strings.HasPrefix(name, "X-Forwarded-")
}
