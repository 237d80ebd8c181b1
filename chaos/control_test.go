package chaos

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// controlled is an experiment, error every 3rd read, and its control
// handler, with a client of the test's redis-server hooked in.
func controlled(t *testing.T) (*Experiment, http.Handler) {
	t.Helper()
	e := testExperiment(t, map[string]string{"CHAOS": "error", "CHAOS_ERROR_EVERY": "3"}, Options{})
	testClient(t, e, redis.Options{})
	return e, e.Handler()
}

// serve sends a request as if from remote to host, with the control token
// when the method needs one.
func serve(h http.Handler, method, host, remote, body string) *httptest.ResponseRecorder {
	token := ""
	if method != http.MethodGet && method != http.MethodHead {
		token = testToken
	}
	return serveWith(h, method, host, remote, token, body)
}

// serveWith sends a request with token as its bearer credential ("": no
// Authorization).
func serveWith(h http.Handler, method, host, remote, token, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "/debug/chaos", strings.NewReader(body))
	req.Host, req.RemoteAddr = host, remote
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestHandlerAnswersLoopbackOnly(t *testing.T) {
	_, handler := controlled(t)
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		for remote, want := range map[string]int{"192.0.2.7:40000": http.StatusForbidden, "[2001:db8::1]:40000": http.StatusForbidden, "127.0.0.1:40000": http.StatusOK, "[::1]:40000": http.StatusOK} {
			if rec := serve(handler, method, "127.0.0.1:5000", remote, `{"experiment":"none"}`); rec.Code != want {
				t.Errorf("%s from %s = %d, want %d", method, remote, rec.Code, want)
			}
		}
	}
}

// TestHandlerRefusesWhatALoopbackPeerDoesNotProve: a loopback peer is not
// enough. A Host that is not this machine (a DNS-rebinding page in a local
// browser) or a forwarding header (a proxy on this machine passing on
// someone else's request) is refused, for every method, and nothing changes.
func TestHandlerRefusesWhatALoopbackPeerDoesNotProve(t *testing.T) {
	e, handler := controlled(t)
	start := e.Config()
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
			req.Header.Set("Authorization", "Bearer "+testToken)
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
			if now := e.Config(); tc.want == http.StatusForbidden && !reflect.DeepEqual(now, start) {
				t.Fatalf("%s Host %q %s changed the experiment to %+v", method, tc.host, tc.header, now)
			}
			if tc.want == http.StatusOK && method != http.MethodGet {
				e.Use(start) // back to the start
			}
		}
	}
}

// TestHandlerAnswersAreNeverCached on every answer, refusals included, and
// never sniffed. (The shop adds its own security headers around it:
// TestDebugChaosSendsTheShopsSecurityHeaders in the root package.)
func TestHandlerAnswersAreNeverCached(t *testing.T) {
	_, handler := controlled(t)
	for _, tc := range []struct {
		method, host, remote, body string
		want                       int
	}{
		{"GET", "127.0.0.1", "127.0.0.1:1", "", http.StatusOK},
		{"HEAD", "127.0.0.1", "127.0.0.1:1", "", http.StatusOK},
		{"PUT", "127.0.0.1", "127.0.0.1:1", `{"experiment":"latency"}`, http.StatusOK},
		{"PUT", "127.0.0.1", "127.0.0.1:1", `nope`, http.StatusBadRequest},
		{"DELETE", "127.0.0.1", "127.0.0.1:1", "", http.StatusOK},
		{"POST", "127.0.0.1", "127.0.0.1:1", "", http.StatusMethodNotAllowed},
		{"GET", "attacker.example", "127.0.0.1:1", "", http.StatusForbidden},
		{"GET", "127.0.0.1", "192.0.2.7:1", "", http.StatusForbidden},
	} {
		rec := serve(handler, tc.method, tc.host, tc.remote, tc.body)
		h := rec.Header()
		if rec.Code != tc.want || h.Get("Cache-Control") != "no-store" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s from %s to Host %s = %d, want %d; headers %v", tc.method, tc.remote, tc.host, rec.Code, tc.want, h)
		}
		if tc.want == http.StatusMethodNotAllowed && h.Get("Allow") != "DELETE, GET, HEAD, PATCH, PUT" {
			t.Errorf("%s: Allow %q", tc.method, h.Get("Allow"))
		}
	}
}

// TestHandlerRefusesBodiesThatAreNotAnExperiment: a PUT body must be one
// JSON object; anything else is a 400 and changes nothing. Only a body over
// the limit is a 413. (A malformed chunked body, which needs a real
// connection, is TestDebugChaosRefusesBodiesThatAreNotAnExperiment's.)
func TestHandlerRefusesBodiesThatAreNotAnExperiment(t *testing.T) {
	e, handler := controlled(t)
	start := e.Config()
	for _, body := range []string{`null`, ` null `, `[]`, `"latency"`, `1`, `true`, ``, `{`, `{"experiment":"latency"} x`, `{"delay":1}`, `{"experiment":"true"}`} {
		if rec := serve(handler, http.MethodPut, "127.0.0.1", "127.0.0.1:1", body); rec.Code != http.StatusBadRequest || len(rec.Body.String()) < 10 {
			t.Errorf("PUT %q = %d %q, want 400 with the reason", body, rec.Code, rec.Body)
		}
	}
	if rec := serve(handler, http.MethodPut, "127.0.0.1", "127.0.0.1:1", `{"experiment":"latency","pad":"`+strings.Repeat("x", 64<<10)+`"}`); rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("PUT of more than 64 KiB = %d, want 413", rec.Code)
	}
	if now := e.Config(); !reflect.DeepEqual(now, start) {
		t.Errorf("refused bodies changed the experiment to %+v", now)
	}
}

// TestHandlerShowsAndReplaces: GET is the Status as JSON; PUT replaces the
// experiment and answers with the new status; DELETE stops it; GET
// ?session= says which group a unit is in, and refuses a unit ValidUnit
// does not take.
func TestHandlerShowsAndReplaces(t *testing.T) {
	_, handler := controlled(t)
	status := func(rec *httptest.ResponseRecorder) Status {
		t.Helper()
		var s Status
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("answer = %d %s %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil {
			t.Fatalf("%v in %s", err, rec.Body)
		}
		return s
	}
	if s := status(serve(handler, "GET", "127.0.0.1", "127.0.0.1:1", "")); s.Experiment != "error" || s.ErrorEvery != 3 || s.State != StateRunning || s.Build != "chaos" {
		t.Errorf("GET = %+v", s)
	}
	s := status(serve(handler, "PUT", "127.0.0.1", "127.0.0.1:1", `{"experiment":"latency","delay_seconds":0.05,"seed":9}`))
	if want := (Config{Experiment: "latency", DelaySeconds: 0.05, ErrorEvery: 2, Seed: 9, Layer: LayerCommand, Guardrails: Guardrails{DurationSeconds: 1800}}); !reflect.DeepEqual(s.Config, want) || s.ActiveSince.Latency == nil || s.ActiveSince.Error != nil {
		t.Errorf("PUT = %+v since %+v, want %+v", s.Config, s.ActiveSince, want)
	}
	if s := status(serve(handler, "DELETE", "127.0.0.1", "127.0.0.1:1", "")); s.Experiment != "none" || s.State != StateOff || s.ActiveSince.Latency != nil {
		t.Errorf("DELETE = %+v", s)
	}
	if s := status(serve(handler, "GET", "127.0.0.1", "127.0.0.1:1", "")); s.Experiment != "none" {
		t.Errorf("GET after DELETE = %+v", s.Config)
	}
	session := func(query string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/debug/chaos?session="+query, nil)
		req.Host, req.RemoteAddr = "127.0.0.1", "127.0.0.1:1"
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		return rec
	}
	if s := status(session("abc")); s.Session == nil || s.Session.ID != "abc" || s.Session.Group != "experiment" {
		t.Errorf("GET ?session=abc: session %+v", s.Session)
	}
	for _, bad := range []string{"", "%7F", strings.Repeat("a", 257)} {
		if rec := session(bad); rec.Code != http.StatusBadRequest || rec.Body.String() != "invalid session: want 1 to 256 printable ASCII characters\n" {
			t.Errorf("GET ?session=%s = %d %q", bad, rec.Code, rec.Body)
		}
	}
}

// TestCommandsTheServiceNeverSendsAreRefused: with Options.Commands, a
// latency on a command the service never sends ("gett") would show as
// running and inject nothing, so New, Use, PUT and PATCH refuse it and
// say which commands there are; without it, only the names' syntax is
// checked.
func TestCommandsTheServiceNeverSendsAreRefused(t *testing.T) {
	opts := Options{Commands: []string{"GET", "evalsha", "ping"}, Token: testToken}
	env := map[string]string{"CHAOS": "latency", "CHAOS_COMMANDS": "get,gett"}
	cfg, err := FromEnv(mapGetenv(env))
	if err != nil {
		t.Fatal(err)
	}
	if e, err := New(cfg, opts); e != nil || err == nil ||
		err.Error() != `invalid CHAOS_COMMANDS "get,gett": gett is not a command this service sends; want some of get, evalsha, ping` {
		t.Errorf("New with CHAOS_COMMANDS=get,gett: %v, %v", e, err)
	}
	e := testExperiment(t, map[string]string{"CHAOS": "latency", "CHAOS_COMMANDS": "get"}, opts)
	handler := e.Handler()
	start := e.Config()
	bad, err := FromJSON([]byte(`{"experiment":"latency","commands":["gett"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Use(bad); err == nil || err.Error() != `invalid commands "gett": gett is not a command this service sends; want some of get, evalsha, ping` {
		t.Errorf("Use of commands gett: %v", err)
	}
	for _, method := range []string{http.MethodPut, http.MethodPatch} {
		rec := serve(handler, method, "127.0.0.1", "127.0.0.1:1", `{"experiment":"latency","commands":["PING","gett"]}`)
		if want := "invalid commands \"ping,gett\": gett is not a command this service sends; want some of get, evalsha, ping\n"; rec.Code != http.StatusBadRequest || rec.Body.String() != want {
			t.Errorf("%s of commands gett = %d %q, want 400 %q", method, rec.Code, rec.Body, want)
		}
	}
	if now := e.Config(); !reflect.DeepEqual(now, start) {
		t.Errorf("refused commands changed the experiment to %+v", now)
	}
	if rec := serve(handler, http.MethodPatch, "127.0.0.1", "127.0.0.1:1", `{"commands":["ping","evalsha"]}`); rec.Code != http.StatusOK {
		t.Errorf("PATCH of commands the service sends = %d %s", rec.Code, rec.Body)
	}
	// Without Options.Commands the package cannot know: syntax only.
	free := testExperiment(t, map[string]string{"CHAOS": "latency", "CHAOS_COMMANDS": "gett"}, Options{})
	if c := free.Config(); strings.Join(c.Commands, ",") != "gett" {
		t.Errorf("without Options.Commands: commands %v", c.Commands)
	}
}
