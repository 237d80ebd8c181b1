package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// oneLine reports whether an error body is one short line, as every refusal
// must be.
func oneLine(body string) bool {
	return strings.Count(body, "\n") == 1 && strings.HasSuffix(body, "\n") && len(body) < 200
}

// TestAdminGuardsEveryPath: every path of the admin listener, pprof's
// included, refuses what /debug/chaos refuses: a Host that is not this
// machine (a DNS-rebinding page in a local browser), a forwarding header (a
// proxy on this machine passing on someone else's request), and a request
// a web page made (an <img> on any site, which names 127.0.0.1 as its Host).
func TestAdminGuardsEveryPath(t *testing.T) {
	app := startApp(t, nil)
	paths := []string{"/", "/metrics", "/debug/pprof/", "/debug/pprof/heap?gc=1", "/debug/pprof/allocs?debug=1",
		"/debug/pprof/goroutine?debug=2", "/debug/pprof/symbol", "/debug/pprof/profile?seconds=1",
		"/debug/pprof/trace?seconds=0.1", "/debug/chaos", "/nope"}
	refused, tried := 0, 0
	for _, path := range paths {
		for _, header := range []string{"Host: evil.example", "Host: evil.example:6060", "X-Forwarded-For: 192.0.2.7",
			"Forwarded: for=192.0.2.7", "Via: 1.1 proxy", "Sec-Fetch-Site: cross-site", "Sec-Fetch-Site: same-site"} {
			req, err := http.NewRequest(http.MethodGet, app.admin.url+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			name, value, _ := strings.Cut(header, ": ")
			if name == "Host" {
				req.Host = value
			} else {
				req.Header.Set(name, value)
			}
			resp := app.admin.send(t, req)
			tried++
			if resp.status == http.StatusForbidden {
				refused++
				if !oneLine(resp.body) || resp.header.Get("Cache-Control") != "no-store" || resp.header.Get("Content-Security-Policy") == "" {
					t.Errorf("GET %s with %s: 403 %q with headers %v, want one line, no-store and the security headers", path, header, resp.body, resp.header)
				}
			} else {
				t.Errorf("GET %s with %s = %d, want 403", path, header, resp.status)
			}
		}
	}
	t.Logf("%d of %d refused", refused, tried)

	// What an operator's own tools send passes: a Go client, curl, and the
	// browser when the operator types the address (Sec-Fetch-Site: none) or
	// follows pprof's own links (same-origin).
	for _, header := range []string{"", "Sec-Fetch-Site: none", "Sec-Fetch-Site: same-origin"} {
		for _, host := range []string{"", "localhost"} {
			req, err := http.NewRequest(http.MethodGet, app.admin.url+"/metrics", nil)
			if err != nil {
				t.Fatal(err)
			}
			if host != "" {
				req.Host = host + ":" + req.URL.Port()
			}
			if name, value, ok := strings.Cut(header, ": "); ok {
				req.Header.Set(name, value)
			}
			if resp := app.admin.send(t, req); resp.status != http.StatusOK {
				t.Errorf("GET /metrics (Host %q, %s) = %d %q, want 200", req.Host, header, resp.status, resp.body)
			}
		}
	}
}

// adminRequest is a request to newAdminHandler as if it arrived from remote
// at the listener's address local.
func adminRequest(method, path, host, remote, local string) *http.Request {
	req := httptest.NewRequest(method, path, nil)
	req.Host, req.RemoteAddr = host, remote
	addr, err := net.ResolveTCPAddr("tcp", local)
	if err != nil {
		panic(err)
	}
	return req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, addr))
}

// TestAdminMetricsAnswerScrapersWhereTheListenerIsWider: bound to an
// address other hosts reach (ADMIN_ADDR=10.0.0.5:6060), the admin listener
// lets them read /metrics, a cheap GET, whatever Host they name, and nothing
// else: pprof, the index and /debug/chaos stay loopback-only. Reached
// through loopback, /metrics is guarded as every other path.
func TestAdminMetricsAnswerScrapersWhereTheListenerIsWider(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	e, err := newExperiment(mapGetenv(map[string]string{"CHAOS_CONTROL_TOKEN": testControlToken}), logger)
	if err != nil {
		t.Fatal(err)
	}
	handler := newAdminHandler(newMetrics(), e, logger)
	for _, tc := range []struct {
		path, host, remote, local string
		want                      int
	}{
		{"/metrics", "10.0.0.5:6060", "192.0.2.7:40000", "10.0.0.5:6060", http.StatusOK},
		{"/metrics", "shop-7.internal:6060", "192.0.2.7:40000", "10.0.0.5:6060", http.StatusOK},
		{"/metrics", "127.0.0.1:6060", "127.0.0.1:40000", "127.0.0.1:6060", http.StatusOK},
		{"/metrics", "evil.example", "127.0.0.1:40000", "127.0.0.1:6060", http.StatusForbidden},
		{"/metrics", "evil.example", "[::1]:40000", "[::1]:6060", http.StatusForbidden},
		{"/", "10.0.0.5:6060", "192.0.2.7:40000", "10.0.0.5:6060", http.StatusForbidden},
		{"/debug/pprof/", "10.0.0.5:6060", "192.0.2.7:40000", "10.0.0.5:6060", http.StatusForbidden},
		{"/debug/pprof/heap", "10.0.0.5:6060", "192.0.2.7:40000", "10.0.0.5:6060", http.StatusForbidden},
		{"/debug/pprof/heap", "127.0.0.1:6060", "192.0.2.7:40000", "10.0.0.5:6060", http.StatusForbidden},
		{"/debug/chaos", "10.0.0.5:6060", "192.0.2.7:40000", "10.0.0.5:6060", http.StatusForbidden},
		{"/metrics/../debug/pprof/heap", "10.0.0.5:6060", "192.0.2.7:40000", "10.0.0.5:6060", http.StatusForbidden},
	} {
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, adminRequest(http.MethodGet, tc.path, tc.host, tc.remote, tc.local))
		if rec.Code != tc.want {
			t.Errorf("GET %s (Host %s) from %s at %s = %d, want %d", tc.path, tc.host, tc.remote, tc.local, rec.Code, tc.want)
		}
	}
}

// TestAdminBodiesAreBounded: POST /debug/pprof/symbol used to read a body of
// any size and build its whole answer in memory (two 180 MB uploads took the
// process to 1.07 GB). A body over the limit is refused, however it
// arrives, with one line; so is one over the admin listener's limit on any
// other path.
func TestAdminBodiesAreBounded(t *testing.T) {
	app := startApp(t, nil)
	mib := strings.Repeat("0x401000+", (1<<20)/9)
	for _, tc := range []struct {
		method, path string
		chunked      bool
	}{
		{"POST", "/debug/pprof/symbol", false},
		{"POST", "/debug/pprof/symbol", true},
		{"GET", "/metrics", false},
		{"GET", "/debug/pprof/heap", false},
		{"GET", "/", false},
	} {
		req, err := http.NewRequest(tc.method, app.admin.url+tc.path, strings.NewReader(mib))
		if err != nil {
			t.Fatal(err)
		}
		if tc.chunked {
			req.ContentLength = -1
			req.Body = io.NopCloser(strings.NewReader(mib))
		}
		resp := app.admin.send(t, req)
		if resp.status != http.StatusRequestEntityTooLarge || !oneLine(resp.body) {
			t.Errorf("%s %s with a 1 MiB body (chunked %v) = %d %.100q, want 413 and one line", tc.method, tc.path, tc.chunked, resp.status, resp.body)
		}
	}
	// A lookup of a few addresses, as pprof's symbolizer sends, is answered.
	pc := fmt.Sprintf("%#x", adminPC())
	resp := app.admin.do(t, "POST", "/debug/pprof/symbol", "", "", strings.NewReader(pc+"+"+pc))
	if resp.status != http.StatusOK || !strings.Contains(resp.body, "num_symbols: 1") || !strings.Contains(resp.body, pc+" ") {
		t.Errorf("POST /debug/pprof/symbol %s = %d %q", pc, resp.status, resp.body)
	}
}

// TestAdminServesOneProfileAtATime: a pprof request while another is being
// served is refused with 429, one line and Retry-After, instead of taking
// another share of the shop's CPU. The first is held in the middle
// of its body: the server asks for the body (100 Continue) only once the
// handler reads it.
func TestAdminServesOneProfileAtATime(t *testing.T) {
	app := startApp(t, nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(app.admin.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pc := fmt.Sprintf("%#x", adminPC())
	fmt.Fprintf(conn, "POST /debug/pprof/symbol HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", len(pc))
	r := bufio.NewReader(conn)
	if line, err := r.ReadString('\n'); err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("POST /debug/pprof/symbol with Expect: 100-continue: %q, %v", line, err)
	}
	r.ReadString('\n')

	// Each refusal comes after a pause, so they are asked together.
	var wg sync.WaitGroup
	for _, path := range []string{"/debug/pprof/allocs?debug=1", "/debug/pprof/heap?gc=1", "/debug/pprof/", "/debug/pprof/symbol?" + pc} {
		wg.Go(func() {
			resp, err := http.Get(app.admin.url + path)
			if err != nil {
				t.Errorf("GET %s: %v", path, err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			retry, err := strconv.Atoi(resp.Header.Get("Retry-After"))
			if resp.StatusCode != http.StatusTooManyRequests || err != nil || retry < 1 || !oneLine(string(body)) {
				t.Errorf("GET %s while a profile is served = %d (Retry-After %q) %.100q, want 429, one line and Retry-After", path, resp.StatusCode, resp.Header.Get("Retry-After"), body)
			}
		})
	}
	wg.Wait()
	if resp := app.admin.get(t, "/metrics", ""); resp.status != http.StatusOK {
		t.Errorf("GET /metrics while a profile is served = %d, want 200", resp.status)
	}
	if resp := app.get(t, "/healthz", ""); resp.status != http.StatusOK {
		t.Errorf("shop GET /healthz while a profile is served = %d, want 200", resp.status)
	}

	io.WriteString(conn, pc)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), pc+" ") {
		t.Errorf("the held POST /debug/pprof/symbol = %d %q", resp.StatusCode, body)
	}
}
