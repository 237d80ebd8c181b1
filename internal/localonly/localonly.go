// Package localonly guards endpoints that only a person on this machine may
// use: the shop's admin listener and package chaos's control. Package chaos
// imports it rather than the shop importing chaos, so that the production
// build, which links nothing of chaos, has the same guard.
package localonly

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

var (
	noStore = []string{"no-store"}
	noSniff = []string{"nosniff"}
)

// Handler lets through only requests that a person on this machine sent
// straight to the service. A loopback peer alone does not prove that: a
// proxy on this machine forwards other people's requests (and says so in
// forwarding headers), a page in a local browser can rebind its own host
// name to 127.0.0.1 (and then sends that name as Host), and any page can
// make the browser fetch http://127.0.0.1:… (an <img>, a form), naming the
// loopback address as Host (and browsers say so in Sec-Fetch-Site). Every
// answer, refusals included, is neither stored nor sniffed.
func Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Cache-Control"] = noStore
		w.Header()["X-Content-Type-Options"] = noSniff
		if why := refusal(r); why != "" {
			http.Error(w, why, http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// refusal says in one line why Handler refuses r, or returns "".
func refusal(r *http.Request) string {
	path := r.URL.Path
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if ip, parseErr := netip.ParseAddr(host); err != nil || parseErr != nil || !ip.Unmap().IsLoopback() {
		return path + " answers loopback clients only"
	}
	if !loopbackHost(r.Host) {
		return path + " answers requests for localhost or a loopback address only"
	}
	for name := range r.Header {
		if forwardingHeader(name) {
			return path + " refuses forwarded requests (" + name + ")"
		}
	}
	// "none": the person typed the address or opened a bookmark;
	// "same-origin": they followed a link on a page of the same listener,
	// as pprof's index has. Anything else is another site's page.
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "none" && site != "same-origin" {
		return path + " refuses requests that another site's page made (Sec-Fetch-Site: " + site + ")"
	}
	return ""
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
