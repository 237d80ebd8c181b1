package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/sony/gobreaker/v2"
)

// recommenderDependency is the recommender's name in an experiment's
// dependencies, its metrics and its status.
const recommenderDependency = "recommender"

// The recommender: with RECOMMENDER_URL set, /search asks that service for
// recommendations for the session's interests instead of the built-in
// answer (docs/recommender.md). It is a dependency as Redis is: its own
// timeout, a circuit breaker with Redis's rules (breaker.go), and a page that
// still renders, with the interests and without recommendations, when it
// fails or is slow.

const (
	// maxRecommendationBytes bounds the body read from the recommender: a
	// page shows at most maxRecommendations of at most maxQueryRunes each,
	// which fit many times over; a larger body is a broken recommender.
	maxRecommendationBytes = 64 << 10
	maxRecommendations     = 10
	// maxErrorBodyBytes is what is read of a non-200 answer so that its
	// connection goes back to the pool; a longer one closes it.
	maxErrorBodyBytes   = 4 << 10
	recommendationsPath = "/recommendations"
)

// recommendations is the breaker's name for what it guards (breaker.go's
// half).
const recommendations half = "recommend"

// recommendation is one suggestion the page links to.
type recommendation struct {
	Title string `json:"title"`
	Query string `json:"query"`
}

type recommender struct {
	endpoint string // RECOMMENDER_URL's POST /recommendations
	client   *http.Client
	timeout  time.Duration
	breaker  *breaker
	logger   *slog.Logger
	metrics  *metrics
}

// parseRecommenderURL checks RECOMMENDER_URL and returns the endpoint the
// shop posts to, or what the URL should be instead. The host may be any, as
// REDIS_URL's: the recommender is a service of the operator's choosing. A
// URL's credentials would be logged with it, and a query or a fragment would
// be sent nowhere, so they are refused.
func parseRecommenderURL(raw string) (endpoint, want string) {
	const form = "http://host:port or https://host:port, with an optional path before " + recommendationsPath + ", no user, query or fragment"
	u, err := url.Parse(raw)
	if err != nil {
		return "", form
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", form + " (scheme " + u.Scheme + ")"
	case u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Opaque != "":
		return "", form
	case !validServiceHost(u.Hostname()):
		return "", form + " (the host an IP address or a DNS name)"
	}
	if port := u.Port(); port != "" && !hostPort("h:"+port) {
		return "", fmt.Sprintf("a port from 1 to 65535, not %q", port)
	}
	if strings.HasSuffix(u.Host, ":") {
		return "", form + " (an empty port)"
	}
	return strings.TrimSuffix(u.Scheme+"://"+u.Host+u.EscapedPath(), "/") + recommendationsPath, ""
}

// validServiceHost reports whether host can name a server to connect to: an
// IP address other than the unspecified one, or a DNS name.
func validServiceHost(host string) bool {
	if a, err := netip.ParseAddr(host); err == nil {
		return !a.IsUnspecified()
	}
	return host != "" && validListenHost(host)
}

// recommenderBound is what the recommender adds to the longest request:
// one call, bounded by RECOMMENDER_TIMEOUT; nothing without one.
func (c config) recommenderBound() time.Duration {
	if c.recommenderEndpoint == "" {
		return 0
	}
	return c.recommenderTimeout
}

// newRecommenderClient is the one place the recommender's HTTP client is
// made, so that the chaos build wraps its Transport (instrumentHTTP).
// HTTP/1.1 only, keep-alive: each of the at most maxConns searches in flight
// holds at most one call, so a pool of maxConns idle connections never makes
// one dial while another sits idle, and the cap keeps a slow recommender
// from being sent more than that. No proxy from the environment: the
// recommender is a neighbour, and HTTP_PROXY set for other tools must not
// reroute it. Redirects are not followed: a POST redirected is a
// misconfigured URL, better seen as a failure.
func newRecommenderClient(maxConns int, timeout time.Duration) *http.Client {
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: timeout,
		// A non-nil empty map turns HTTP/2 off on https:// too.
		TLSNextProto:           map[string]func(string, *tls.Conn) http.RoundTripper{},
		MaxIdleConns:           maxConns,
		MaxIdleConnsPerHost:    maxConns,
		MaxConnsPerHost:        maxConns,
		IdleConnTimeout:        60 * time.Second,
		MaxResponseHeaderBytes: 16 << 10,
		DisableCompression:     true, // a few hundred bytes of JSON: gzip costs more than it saves
	}
	return &http.Client{
		Transport:     transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// newRecommender returns the shop's client of the recommender at endpoint,
// or nil when there is none.
func newRecommender(endpoint string, client *http.Client, timeout time.Duration, settings breakerSettings, logger *slog.Logger, m *metrics) *recommender {
	if endpoint == "" {
		return nil
	}
	r := &recommender{endpoint: endpoint, client: client, timeout: timeout, logger: logger, metrics: m}
	// The canary and /readyz's probe ask for recommendations, as pages do,
	// rather than GET a health route: a recommender that answers its
	// health check and fails its work (every call 503) must not look up.
	probe := func(kind string) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := r.fetch(context.WithValue(ctx, recommenderProbeKey{}, kind), []string{kind})
			return err
		}
	}
	b := &breaker{half: recommendations, canary: probe("canary"), readiness: probe("readiness"),
		timeout: timeout, logger: logger, dependency: "recommender"}
	b.cb = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "recommender",
		MaxRequests: 1,
		Timeout:     settings.cooldown,
		// Redis's rules (newBreaker): a run of consecutive failures in the
		// order the calls started, so a recommender failing every other
		// call keeps its breaker closed and serves half the pages.
		ReadyToTrip:  settings.trips,
		IsSuccessful: func(err error) bool { return err == nil },
		IsExcluded: func(err error) bool {
			return errors.Is(err, context.Canceled) || errors.Is(err, errLeftToCanary)
		},
		OnStateChange: func(_ string, from, to gobreaker.State) {
			b.state.Store(int32(to))
			r.breakerChanged(from, to)
		},
	})
	r.breaker = b
	m.watchRecommender(r.degraded)
	return r
}

// recommenderProbeKey marks the context of a call that is a probe, not a
// page's: its value is "canary" or "readiness" (isRecommenderProbe).
type recommenderProbeKey struct{}

// recommenderProbe says which probe a request to the recommender is:
// "canary" (the half-open breaker's), "readiness" (/readyz's), or "" for a
// page's call. The chaos build spares /readyz's, as it spares Redis's.
func recommenderProbe(r *http.Request) string {
	kind, _ := r.Context().Value(recommenderProbeKey{}).(string)
	return kind
}

// recommend returns the recommendations for interests, or an error: the
// recommender's, its timeout, or errCacheUnavailable while the breaker is
// open, which answers at once. A nil recommender recommends nothing.
func (r *recommender) recommend(ctx context.Context, interests []string) ([]recommendation, error) {
	var recs []recommendation
	err := r.breaker.do(func() error {
		var err error
		recs, err = r.fetch(ctx, interests)
		return err
	})
	if err != nil && !errors.Is(err, errCacheUnavailable) && !errors.Is(err, context.Canceled) {
		// While the breaker is open the state change was logged once.
		r.logger.Warn("recommender error "+err.Error(), "op", "recommend")
	}
	return recs, err
}

// fetch is one call, bounded by RECOMMENDER_TIMEOUT from its start to the
// end of the body.
func (r *recommender) fetch(ctx context.Context, interests []string) ([]recommendation, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	body, err := json.Marshal(struct {
		Interests []string `json:"interests"`
	}{interests})
	if err != nil {
		return nil, err // a []string always encodes
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	// The call only reads, so it is marked idempotent (a nil value: the
	// header is not sent): net/http then retries it once when the
	// recommender closes a kept-alive connection as the shop reuses it,
	// instead of failing the page over a race of two idle timeouts.
	req.Header["Idempotency-Key"] = nil
	resp, err := r.client.Do(req)
	if err != nil {
		r.metrics.recommenderCall(recommenderTransportError(ctx, err))
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBodyBytes))
		r.metrics.recommenderCall("status")
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	recs, err := decodeRecommendations(resp)
	if err != nil {
		r.metrics.recommenderCall(recommenderTransportError(ctx, err))
		return nil, err
	}
	r.metrics.recommenderCall("ok")
	return recs, nil
}

// recommenderTransportError is the metrics' reason for a call that failed
// without a status: its timeout, or the connection.
func recommenderTransportError(ctx context.Context, err error) string {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	var invalid errInvalidRecommendations
	if errors.As(err, &invalid) {
		return "invalid"
	}
	return "transport"
}

// errInvalidRecommendations is a 200 whose body the page cannot show.
type errInvalidRecommendations string

func (e errInvalidRecommendations) Error() string { return "invalid answer: " + string(e) }

// decodeRecommendations reads a 200's body: JSON of at most
// maxRecommendationBytes, with at most maxRecommendations that each could be
// a search query (normalizeQuery's rules). Anything else is the
// recommender's failure, and the page shows none of it.
func decodeRecommendations(resp *http.Response) ([]recommendation, error) {
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
		return nil, errInvalidRecommendations(fmt.Sprintf("Content-Type %q, not application/json", resp.Header.Get("Content-Type")))
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxRecommendationBytes+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > maxRecommendationBytes {
		return nil, errInvalidRecommendations("a body larger than 64 KiB")
	}
	var answer struct {
		Recommendations []recommendation `json:"recommendations"`
	}
	if err := json.Unmarshal(raw, &answer); err != nil {
		return nil, errInvalidRecommendations("a body that is not {\"recommendations\": [{\"title\": …, \"query\": …}]}")
	}
	if len(answer.Recommendations) > maxRecommendations {
		return nil, errInvalidRecommendations(fmt.Sprintf("%d recommendations, more than %d", len(answer.Recommendations), maxRecommendations))
	}
	for i, rec := range answer.Recommendations {
		title, errTitle := normalizeQuery(rec.Title)
		query, errQuery := normalizeQuery(rec.Query)
		if errTitle != nil || errQuery != nil || title == "" || query == "" {
			return nil, errInvalidRecommendations("a recommendation whose title or query is empty or not plain text of at most 200 characters")
		}
		answer.Recommendations[i] = recommendation{Title: title, Query: query}
	}
	return answer.Recommendations, nil
}

// ready is /readyz's answer for the recommender: nil with none configured.
func (r *recommender) ready(ctx context.Context) error {
	if r == nil {
		return nil
	}
	return r.breaker.ready(ctx)
}

// degraded reports whether pages are served without the recommender: its
// breaker is open, or half-open with its canary probing.
func (r *recommender) degraded() bool {
	return r != nil && r.breaker.currentState() != gobreaker.StateClosed
}

// breakerChanged logs each change of the breaker's state once. It runs under
// the breaker's lock.
func (r *recommender) breakerChanged(from, to gobreaker.State) {
	r.metrics.recommenderBreakerChanged(from.String(), to.String())
	attrs := []any{"from", from.String(), "to", to.String()}
	switch to {
	case gobreaker.StateOpen:
		r.logger.Warn("recommender circuit breaker open: pages show the interests without recommendations", attrs...)
	case gobreaker.StateHalfOpen:
		r.logger.Warn("recommender circuit breaker half-open: a canary probes the recommender", attrs...)
	case gobreaker.StateClosed:
		r.logger.Warn("recommender circuit breaker closed: the recommender answers again", attrs...)
	}
}
