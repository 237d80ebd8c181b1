package localonly

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHandler: only a loopback peer, naming this machine as Host, with no
// forwarding header and not sent by another site's page, reaches the
// handler; every refusal is one line, and no answer is stored or sniffed.
func TestHandler(t *testing.T) {
	reached := false
	h := Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached = true }))
	for _, tc := range []struct {
		remote, host, header string
		want                 string // "" reaches the handler
	}{
		{"127.0.0.1:40000", "127.0.0.1:6060", "", ""},
		{"[::1]:40000", "[::1]:6060", "", ""},
		{"[::ffff:127.0.0.1]:40000", "localhost", "", ""},
		{"127.0.0.1:40000", "LOCALHOST.:6060", "", ""},
		{"127.0.0.1:40000", "127.1.2.3", "", ""},
		{"127.0.0.1:40000", "127.0.0.1", "Sec-Fetch-Site: none", ""},
		{"127.0.0.1:40000", "127.0.0.1", "Sec-Fetch-Site: same-origin", ""},
		{"192.0.2.7:40000", "127.0.0.1", "", "/x answers loopback clients only"},
		{"[2001:db8::1]:40000", "127.0.0.1", "", "/x answers loopback clients only"},
		{"garbage", "127.0.0.1", "", "/x answers loopback clients only"},
		{"127.0.0.1:40000", "attacker.example", "", "/x answers requests for localhost or a loopback address only"},
		{"127.0.0.1:40000", "localhost.attacker.example:6060", "", "/x answers requests for localhost or a loopback address only"},
		{"127.0.0.1:40000", "10.0.0.1:6060", "", "/x answers requests for localhost or a loopback address only"},
		{"127.0.0.1:40000", "", "", "/x answers requests for localhost or a loopback address only"},
		{"127.0.0.1:40000", "127.0.0.1", "Forwarded: for=192.0.2.7", "/x refuses forwarded requests (Forwarded)"},
		{"127.0.0.1:40000", "127.0.0.1", "X-Forwarded-Host: shop.example", "/x refuses forwarded requests (X-Forwarded-Host)"},
		{"127.0.0.1:40000", "127.0.0.1", "X-Real-IP: 192.0.2.7", "/x refuses forwarded requests (X-Real-Ip)"},
		{"127.0.0.1:40000", "127.0.0.1", "Via: 1.1 proxy", "/x refuses forwarded requests (Via)"},
		{"127.0.0.1:40000", "127.0.0.1", "Cf-Connecting-Ip: 192.0.2.7", "/x refuses forwarded requests (Cf-Connecting-Ip)"},
		{"127.0.0.1:40000", "127.0.0.1", "Sec-Fetch-Site: cross-site", "/x refuses requests that another site's page made (Sec-Fetch-Site: cross-site)"},
		{"127.0.0.1:40000", "127.0.0.1", "Sec-Fetch-Site: same-site", "/x refuses requests that another site's page made (Sec-Fetch-Site: same-site)"},
	} {
		reached = false
		req := httptest.NewRequest(http.MethodGet, "/x", nil)
		req.RemoteAddr, req.Host = tc.remote, tc.host
		if name, value, ok := strings.Cut(tc.header, ": "); ok {
			req.Header.Set(name, value)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Header().Get("Cache-Control") != "no-store" || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("from %s to %q %s: headers %v", tc.remote, tc.host, tc.header, rec.Header())
		}
		if tc.want == "" {
			if !reached || rec.Code != http.StatusOK {
				t.Errorf("from %s to %q %s = %d %q, want it through", tc.remote, tc.host, tc.header, rec.Code, rec.Body)
			}
			continue
		}
		if reached || rec.Code != http.StatusForbidden || rec.Body.String() != tc.want+"\n" {
			t.Errorf("from %s to %q %s = %d %q (reached %v), want 403 %q", tc.remote, tc.host, tc.header, rec.Code, rec.Body, reached, tc.want)
		}
	}
}
