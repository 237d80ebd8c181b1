//go:build chaos

package main

import (
	"bufio"
	"example.com/shopsession/chaos"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// chaosHandler is the chaos build's admin handler with its experiment.
func chaosHandler(t *testing.T) (http.Handler, *chaosExperiment) {
	t.Helper()
	e, err := newChaosExperiment(mapGetenv(map[string]string{"CHAOS": "error", "CHAOS_ERROR_EVERY": "3"}))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: testRedis.addr()})
	t.Cleanup(func() { rdb.Close() })
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	e.attach(logger, rdb)
	return newAdminHandler(newMetrics(), e, logger), e
}

// TestDebugChaosRefusesWhatALoopbackPeerDoesNotProve: a loopback peer is not
// enough. A Host that is not this machine (a DNS-rebinding page in a local
// browser) or a forwarding header (a proxy on this machine passing on
// someone else's request) is refused, for every method, and nothing changes.
func TestDebugChaosRefusesWhatALoopbackPeerDoesNotProve(t *testing.T) {
	handler, e := chaosHandler(t)
	for _, tc := range []struct {
		host   string
		header string
		want   int
	}{
		{"127.0.0.1:5000", "", http.StatusOK},
		{"localhost:5000", "", http.StatusOK},
		{"LOCALHOST", "", http.StatusOK},
		{"[::1]:5000", "", http.StatusOK},
		{"127.1.2.3", "", http.StatusOK},
		{"attacker.example", "", http.StatusForbidden},
		{"attacker.example:5000", "", http.StatusForbidden},
		{"localhost.attacker.example", "", http.StatusForbidden},
		{"10.0.0.1:5000", "", http.StatusForbidden},
		{"", "", http.StatusForbidden},
		{"127.0.0.1:5000", "Forwarded: for=192.0.2.7", http.StatusForbidden},
		{"127.0.0.1:5000", "X-Forwarded-For: 192.0.2.7", http.StatusForbidden},
		{"127.0.0.1:5000", "X-Forwarded-Host: shop.example", http.StatusForbidden},
		{"127.0.0.1:5000", "X-Forwarded-Proto: https", http.StatusForbidden},
		{"127.0.0.1:5000", "X-Real-IP: 192.0.2.7", http.StatusForbidden},
		{"127.0.0.1:5000", "Via: 1.1 proxy", http.StatusForbidden},
	} {
		for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
			req := httptest.NewRequest(method, "/debug/chaos", strings.NewReader(`{"experiment":"latency"}`))
			req.RemoteAddr = "127.0.0.1:40000"
			req.Host = tc.host
			if name, value, ok := strings.Cut(tc.header, ": "); ok {
				req.Header.Set(name, value)
			}
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Errorf("%s Host %q %s = %d, want %d", method, tc.host, tc.header, rec.Code, tc.want)
			}
			if tc.want == http.StatusForbidden && e.active.Load().config.Experiment != "error" {
				t.Fatalf("%s Host %q %s changed the experiment to %q", method, tc.host, tc.header, e.active.Load().config.Experiment)
			}
			if tc.want == http.StatusOK && method != http.MethodGet {
				e.use(chaos.Config{Experiment: "error", ErrorEvery: 3, Seed: 1}) // back to the start
			}
		}
	}
}

// TestDebugChaosSendsTheShopsSecurityHeaders on every answer, refusals
// included.
func TestDebugChaosSendsTheShopsSecurityHeaders(t *testing.T) {
	handler, _ := chaosHandler(t)
	for _, tc := range []struct{ method, host, remote, body string }{
		{"GET", "127.0.0.1", "127.0.0.1:1", ""},
		{"PUT", "127.0.0.1", "127.0.0.1:1", `{"experiment":"latency"}`},
		{"PUT", "127.0.0.1", "127.0.0.1:1", `nope`},
		{"DELETE", "127.0.0.1", "127.0.0.1:1", ""},
		{"POST", "127.0.0.1", "127.0.0.1:1", ""},
		{"GET", "attacker.example", "127.0.0.1:1", ""},
		{"GET", "127.0.0.1", "192.0.2.7:1", ""},
	} {
		req := httptest.NewRequest(tc.method, "/debug/chaos", strings.NewReader(tc.body))
		req.Host, req.RemoteAddr = tc.host, tc.remote
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		h := rec.Header()
		if h.Get("Content-Security-Policy") != contentSecurityPolicy[0] || h.Get("X-Content-Type-Options") != "nosniff" ||
			h.Get("Referrer-Policy") != "no-referrer" || h.Get("Cache-Control") != "no-store" {
			t.Errorf("%s from %s to Host %s (%d): headers %v", tc.method, tc.remote, tc.host, rec.Code, h)
		}
	}
}

// TestDebugChaosRefusesBodiesThatAreNotAnExperiment: a PUT body must be one
// JSON object; anything else, however it arrives, is a 400 and changes
// nothing. Only a body over the limit is a 413.
func TestDebugChaosRefusesBodiesThatAreNotAnExperiment(t *testing.T) {
	app := startApp(t, map[string]string{"CHAOS": "error", "CHAOS_ERROR_EVERY": "3"})
	for _, body := range []string{`null`, ` null `, `[]`, `"latency"`, `1`, `true`, ``, `{`, `{"experiment":"latency"} x`} {
		resp := putChaos(t, app, body)
		if resp.status != http.StatusBadRequest {
			t.Errorf("PUT %q = %d %q, want 400", body, resp.status, resp.body)
		}
	}
	if resp := putChaos(t, app, `{"experiment":"latency","pad":"`+strings.Repeat("x", 64<<10)+`"}`); resp.status != http.StatusRequestEntityTooLarge {
		t.Errorf("PUT of more than 64 KiB = %d, want 413", resp.status)
	}

	// A chunked body with a malformed chunk size, sent as bytes on the wire.
	conn, err := net.Dial("tcp", strings.TrimPrefix(app.admin.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "PUT /debug/chaos HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("PUT with a malformed chunked body = %d, want 400", resp.StatusCode)
	}
	if s := chaosStatusOf(t, app); s.Experiment != "error" || s.ErrorEvery != 3 {
		t.Errorf("refused bodies changed the experiment to %+v", s.Config)
	}
}
