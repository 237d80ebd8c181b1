package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	reference "example.com/shopsession/internal/recommender"
)

// testRecommender is the reference recommender on a loopback port of the
// test's, counting the connections the shop opens to it.
type testRecommender struct {
	*reference.Server
	url   string
	conns atomic.Int64
}

func startRecommender(t *testing.T, settings reference.Settings) *testRecommender {
	t.Helper()
	rec := &testRecommender{Server: reference.New(settings)}
	srv := serveRecommender(t, rec.Handler(), &rec.conns)
	rec.url = srv.URL
	return rec
}

func serveRecommender(t *testing.T, h http.Handler, conns *atomic.Int64) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew && conns != nil {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// startShopWith runs the shop against the recommender at url. Its timeout
// is 10 s unless env says otherwise: a loaded machine under -race took
// longer than the default 500 ms, which opened the breaker of a test that
// counts calls.
func startShopWith(t *testing.T, url string, env ...string) *testApp {
	t.Helper()
	return startApp(t, withEnv(map[string]string{"RECOMMENDER_URL": url, "RECOMMENDER_TIMEOUT": "10s"}, env...))
}

var recommendationLink = regexp.MustCompile(`<li><a href="[^"]*">([^<]*)</a></li>`)

// recommendationsOn returns the titles of the recommendations a page lists.
func recommendationsOn(page string) []string {
	start := strings.Index(page, `<ul id="recommendations">`)
	if start < 0 {
		return nil
	}
	list := page[start:]
	list = list[:strings.Index(list, "</ul>")]
	var out []string
	for _, m := range recommendationLink.FindAllStringSubmatch(list, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestRecommenderRecommends(t *testing.T) {
	rec := startRecommender(t, reference.Settings{})
	app := startShopWith(t, rec.url)
	session := "rec-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	app.searchFor(t, session, "apple")
	page := app.searchFor(t, session, "pear")
	if page.status != http.StatusOK {
		t.Fatalf("search = %d", page.status)
	}
	if got := fmt.Sprint(recommendationsOn(page.body)); got != "[bestsellers in pear bestsellers in apple]" {
		t.Errorf("recommendations = %s; page:\n%s", got, page.body)
	}
	if !strings.Contains(page.body, `href="/search?query=pear%20bestsellers"`) || hasRecommendation(page.body) {
		t.Errorf("want the recommender's links and not the built-in one; page:\n%s", page.body)
	}
	// A visitor with no interests yet: nothing to ask for.
	before := rec.Requests()
	if page := app.get(t, "/search", ""); !strings.Contains(page.body, "No recommendations yet.") || rec.Requests() != before {
		t.Errorf("a new visitor's page asked the recommender (%d → %d calls), or says:\n%s", before, rec.Requests(), page.body)
	}
	s := scrape(t, app)
	s.expect(t, 2, "shopsession_search_pages_total", "outcome", outcomeWith)
	s.expect(t, 1, "shopsession_search_pages_total", "outcome", outcomeWithout)
	s.expect(t, 2, "shopsession_recommender_requests_total", "outcome", "ok")
	s.expect(t, 1, "shopsession_recommender_breaker_state", "state", "closed")
	if resp := app.get(t, "/readyz", ""); resp.body != "ready\n" {
		t.Errorf("/readyz = %q", resp.body)
	}
}

// TestRecommenderOffChangesNothing: without RECOMMENDER_URL, the built-in
// recommendation and no recommender metric.
func TestRecommenderOffChangesNothing(t *testing.T) {
	app := startApp(t, nil)
	page := app.searchFor(t, "rec-off", "apple")
	if !hasRecommendation(page.body) || strings.Contains(page.body, "no-recommendations") {
		t.Errorf("page without a recommender:\n%s", page.body)
	}
	if s := scrape(t, app); strings.Contains(s.text, "recommender") {
		t.Errorf("/metrics names the recommender without RECOMMENDER_URL")
	}
}

// failedPage checks a search page served while the recommender fails: 200,
// the interests, no recommendation.
func failedPage(t *testing.T, page response, interests string) {
	t.Helper()
	if page.status != http.StatusOK || fmt.Sprint(interestsOn(page.body)) != interests ||
		recommendationsOn(page.body) != nil || !strings.Contains(page.body, `<p id="no-recommendations">`) {
		t.Fatalf("status %d, interests %v, recommendations %v; want 200, %s, none; page:\n%s",
			page.status, interestsOn(page.body), recommendationsOn(page.body), interests, page.body)
	}
}

// TestRecommenderFailures: the recommender answering 503, slower than
// RECOMMENDER_TIMEOUT, down, or answering what the page cannot show. Each
// page is a 200 with the interests within the timeout (plus a slack, far
// below the slow recommender's minute); after
// BREAKER_FAILURES the breaker opens and pages stop calling; /readyz says so.
func TestRecommenderFailures(t *testing.T) {
	const timeout = 100 * time.Millisecond
	bodies := map[string]http.HandlerFunc{
		"larger than 64 KiB": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"recommendations":[{"title":"x","query":"%s"}]}`, strings.Repeat("y", 70<<10))
		},
		"not JSON": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte("<html>maintenance</html>"))
		},
		"too many": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"recommendations":[` + strings.Repeat(`{"title":"a","query":"b"},`, 10) + `{"title":"a","query":"b"}]}`))
		},
		"a right-to-left override": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"recommendations":[{"title":"evil \u202e txt.exe","query":"b"}]}`))
		},
	}
	cases := map[string]func(t *testing.T) (url string, calls func() int64){
		"503": func(t *testing.T) (string, func() int64) {
			rec := startRecommender(t, reference.Settings{FailEvery: 1})
			return rec.url, func() int64 { return int64(rec.Requests()) }
		},
		"slow": func(t *testing.T) (string, func() int64) {
			rec := startRecommender(t, reference.Settings{Delay: time.Minute})
			return rec.url, func() int64 { return int64(rec.Requests()) }
		},
		"down": func(t *testing.T) (string, func() int64) {
			port, err := freePort()
			if err != nil {
				t.Fatal(err)
			}
			return "http://127.0.0.1:" + strconv.Itoa(port), nil
		},
	}
	for name, h := range bodies {
		cases[name] = func(t *testing.T) (string, func() int64) {
			var calls atomic.Int64
			srv := serveRecommender(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				h(w, r)
			}), nil)
			return srv.URL, calls.Load
		}
	}
	for name, setUp := range cases {
		t.Run(name, func(t *testing.T) {
			url, calls := setUp(t)
			app := startShopWith(t, url, "RECOMMENDER_TIMEOUT", timeout.String(), "BREAKER_FAILURES", "3", "BREAKER_COOLDOWN", "10m")
			session := "rec-fail-" + strings.ReplaceAll(name, " ", "-")
			for i := range 6 {
				start := time.Now()
				page := app.searchFor(t, session, "apple")
				// The slack is a loaded CI machine's under -race; the slow
				// recommender holds its answer a minute.
				if took := time.Since(start); took > timeout+900*time.Millisecond {
					t.Errorf("page %d took %v with RECOMMENDER_TIMEOUT=%v", i, took, timeout)
				}
				failedPage(t, page, "[apple]")
			}
			if calls != nil && calls() != 3 {
				t.Errorf("the recommender got %d calls; want 3, then the breaker open", calls())
			}
			s := scrape(t, app)
			s.expect(t, 1, "shopsession_recommender_breaker_state", "state", "open")
			s.expect(t, 1, "shopsession_recommender_degraded")
			s.expect(t, 6, "shopsession_search_pages_total", "outcome", outcomeWithout)
			if resp := app.get(t, "/readyz", ""); resp.status != http.StatusOK ||
				resp.body != "degraded: recommender unavailable; pages show the interests without recommendations\n" {
				t.Errorf("/readyz = %d %q", resp.status, resp.body)
			}
		})
	}
}

// TestRecommenderRecovers: once the recommender answers again the canary
// closes the breaker, and pages have recommendations again.
func TestRecommenderRecovers(t *testing.T) {
	rec := startRecommender(t, reference.Settings{FailEvery: 1})
	app := startShopWith(t, rec.url, "BREAKER_FAILURES", "3", "BREAKER_COOLDOWN", "20ms")
	for range 3 {
		failedPage(t, app.searchFor(t, "rec-recovers", "apple"), "[apple]")
	}
	rec.Set(reference.Settings{})
	deadline := time.Now().Add(5 * time.Second)
	for recommendationsOn(app.searchFor(t, "rec-recovers", "apple").body) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("no recommendations 5 s after the recommender recovered; log:\n%s", app.logs)
		}
	}
	s := scrape(t, app)
	s.expect(t, 1, "shopsession_recommender_breaker_transitions_total", "from", "half-open", "to", "closed")
	if !strings.Contains(app.logs.String(), "recommender circuit breaker closed") {
		t.Errorf("the log does not say the breaker closed")
	}
}

// TestRecommenderHalfFailing: a recommender failing every other call keeps
// its breaker closed (Redis's rule: a run of consecutive failures opens it),
// and half the pages have recommendations.
func TestRecommenderHalfFailing(t *testing.T) {
	rec := startRecommender(t, reference.Settings{FailEvery: 2})
	app := startShopWith(t, rec.url, "BREAKER_FAILURES", "3")
	with := 0
	for range 40 {
		page := app.searchFor(t, "rec-half", "apple")
		if page.status != http.StatusOK {
			t.Fatalf("search = %d", page.status)
		}
		if recommendationsOn(page.body) != nil {
			with++
		}
	}
	if with != 20 || rec.Requests() != 40 {
		t.Errorf("%d of 40 pages with recommendations, %d calls; want 20 and 40", with, rec.Requests())
	}
	scrape(t, app).expect(t, 0, "shopsession_recommender_breaker_transitions_total", "from", "closed", "to", "open")
}

// TestRecommenderKeepAlive: 16 visitors searching at once reuse their
// connections to the recommender rather than dial one a page (net/http's
// default keeps 2 idle connections a host, which dialled about one a page).
func TestRecommenderKeepAlive(t *testing.T) {
	rec := startRecommender(t, reference.Settings{})
	app := startShopWith(t, rec.url)
	const visitors, searches = 16, 25
	var wg sync.WaitGroup
	for v := range visitors {
		wg.Go(func() {
			for range searches {
				app.searchFor(t, "rec-keepalive-"+strconv.Itoa(v), "apple")
			}
		})
	}
	wg.Wait()
	if rec.Requests() != visitors*searches || rec.conns.Load() > visitors {
		t.Errorf("%d calls over %d connections; want %d over at most %d; log:\n%s", rec.Requests(), rec.conns.Load(), visitors*searches, visitors, app.logs)
	}
}

// probeRecorder is a Transport that notes which probe each call is.
type probeRecorder struct {
	mu    sync.Mutex
	kinds []string
	next  http.RoundTripper
}

func (p *probeRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	p.mu.Lock()
	p.kinds = append(p.kinds, recommenderProbe(r))
	p.mu.Unlock()
	return p.next.RoundTrip(r)
}

// TestRecommenderProbesAreMarked: a page's call carries no probe mark,
// /readyz's and the canary's do, so that the chaos build can spare /readyz's
// as it spares Redis's.
func TestRecommenderProbesAreMarked(t *testing.T) {
	rec := startRecommender(t, reference.Settings{})
	cfg, err := parseConfig([]string{"-recommender-url", rec.url, "-breaker-failures", "3"}, mapGetenv(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	client := newRecommenderClient(cfg.maxConns, cfg.recommenderTimeout)
	recorder := &probeRecorder{next: client.Transport}
	client.Transport = recorder
	r := newRecommender(cfg.recommenderEndpoint, client, cfg.recommenderTimeout, cfg.breaker, slog.New(slog.DiscardHandler), nil)
	if _, err := r.recommend(t.Context(), []string{"apple"}); err != nil {
		t.Fatal(err)
	}
	if err := r.ready(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := r.breaker.canary(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%q", recorder.kinds); got != `["" "readiness" "canary"]` {
		t.Errorf("probe marks = %s", got)
	}
}

type connRequestsKey struct{}

// TestRecommenderRetriesAClosedKeepAlive: a recommender that closes a
// kept-alive connection just as the shop reuses it (its idle timeout
// shorter than the shop's, or a restart) costs no recommendation: the call
// is retried once on a new connection.
func TestRecommenderRetriesAClosedKeepAlive(t *testing.T) {
	ref := reference.New(reference.Settings{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The second request on each connection finds it closed, unanswered.
		if r.Context().Value(connRequestsKey{}).(*atomic.Int64).Add(1) == 2 {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		ref.Handler().ServeHTTP(w, r)
	}))
	srv.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
		return context.WithValue(ctx, connRequestsKey{}, new(atomic.Int64))
	}
	srv.Start()
	defer srv.Close()
	cfg, err := parseConfig([]string{"-recommender-url", srv.URL}, mapGetenv(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	r := newRecommender(cfg.recommenderEndpoint, newRecommenderClient(cfg.maxConns, cfg.recommenderTimeout), cfg.recommenderTimeout, cfg.breaker, slog.New(slog.DiscardHandler), nil)
	for i := range 4 {
		if recs, err := r.recommend(t.Context(), []string{"apple"}); err != nil || len(recs) != 1 {
			t.Errorf("call %d: %v, %v; want one recommendation", i, recs, err)
		}
	}
}

// TestRecommenderVisitorGone: a visitor who leaves while the recommender
// holds the answer gets no page, and none is counted without
// recommendations; the call is counted as canceled.
func TestRecommenderVisitorGone(t *testing.T) {
	rec := startRecommender(t, reference.Settings{Delay: time.Minute})
	app := startShopWith(t, rec.url)
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, app.url+"/search", strings.NewReader("query=apple"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", formMediaType)
	req.AddCookie(&http.Cookie{Name: "sessionID", Value: "rec-gone"})
	done := make(chan error, 1)
	go func() {
		resp, err := noRedirects.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	if !pollUntil(10*time.Second, func() bool { return rec.Requests() == 1 }) {
		t.Fatal("the recommender has not had the call after 10 s")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("the visitor's request ended with %v, want context.Canceled", err)
	}
	if !pollUntil(10*time.Second, func() bool {
		return scrape(t, app).value("shopsession_http_requests_total", "route", "/search", "method", "POST", "code", "200") == 1
	}) {
		t.Fatal("the shop has not answered the search after 10 s")
	}
	s := scrape(t, app)
	s.expect(t, 1, "shopsession_recommender_requests_total", "outcome", "canceled")
	s.expect(t, 0, "shopsession_search_pages_total", "outcome", outcomeWithout)
	s.expect(t, 0, "shopsession_search_pages_total", "outcome", outcomeWith)
}
