package main

import (
	_ "embed"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

const (
	sessionCookie  = "sessionID"
	maxQueryRunes  = 200
	maxBodyBytes   = 64 << 10
	maxHeaderBytes = 32 << 10
)

type app struct {
	store       *store
	recommender *recommender // nil: the built-in recommendation
	logger      *slog.Logger
	metrics     *metrics
	// cookieAttributes follow "sessionID=<id>" in every session cookie.
	cookieAttributes string
}

// newHandler returns the service's routes, all of them.
func newHandler(st *store, rec *recommender, logger *slog.Logger, cookieSecure bool, m *metrics) http.Handler {
	a := &app{store: st, recommender: rec, logger: logger, metrics: m,
		cookieAttributes: sessionCookieAttributes(st.ttl, cookieSecure)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.home)
	mux.HandleFunc("GET /search", a.search)
	mux.HandleFunc("POST /search", a.search)
	mux.HandleFunc("GET /reset", a.reset)
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.HandleFunc("GET /readyz", a.readyz)
	mux.HandleFunc("GET /style.css", serveStylesheet)
	return withKnownSlowdown(m.instrumentHTTP(securityHeaders(mux)))
}

// The pages use nothing but a same-origin stylesheet, form and links: the
// policy allows exactly that, and no framing.
var (
	contentSecurityPolicy = []string{"default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"}
	noSniff               = []string{"nosniff"}
	noReferrer            = []string{"no-referrer"}
	// The session id is a bearer token for the visitor's interests: no cache
	// may keep a response that sets or shows it.
	noStore = []string{"no-store"}
)

// securityHeaders sets the browser policy headers on every response. The
// value slices are shared and never modified; assigning them skips header
// canonicalisation on the hot path.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Security-Policy"] = contentSecurityPolicy
		h["X-Content-Type-Options"] = noSniff
		h["Referrer-Policy"] = noReferrer
		next.ServeHTTP(w, r)
	})
}

func (a *app) home(w http.ResponseWriter, r *http.Request) {
	a.sessionID(w, r)
	writePage(w, homePage)
}

type searchPage struct {
	Query     string
	Interests []string
	SessionID string
	// NotRemembered: the query was to be remembered and Redis did not
	// store it; Interests are those stored before.
	NotRemembered bool
	// Recommender: the recommender is configured, and Recommendations are
	// what it answered for Interests; none when it failed or was slow.
	Recommender     bool
	Recommendations []recommendation
}

func (a *app) search(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && r.ContentLength != 0 {
		contentType, ok := formContentType(r.Header)
		if !ok {
			http.Error(w, "send the search form as "+formMediaType, http.StatusUnsupportedMediaType)
			return
		}
		// ParseForm reads the body by the first Content-Type field only.
		r.Header["Content-Type"] = contentType
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	form, err := searchForm(r)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, "request body is larger than 64 KiB", http.StatusRequestEntityTooLarge)
			return
		}
		if errors.Is(err, os.ErrDeadlineExceeded) { // boundBodyRead's deadline
			w.Header().Set("Connection", "close")
			http.Error(w, "request body took longer than "+bodyReadTimeout.String(), http.StatusRequestTimeout)
			return
		}
		http.Error(w, "malformed form data", http.StatusBadRequest)
		return
	}
	// A POST's query comes from its body only, as the reference reads it.
	// A GET's is shown but never remembered: any site can link a visitor to
	// /search?query=…, and a top-level navigation carries the Lax cookie, so
	// remembering it would let any site write into the visitor's interests.
	raw, remembered := form.Get("query"), r.Method == http.MethodPost
	query, err := normalizeQuery(raw)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	page := searchPage{Query: query, SessionID: a.sessionID(w, r)}
	added := query
	if !remembered {
		// What is stored still has its TTL refreshed: using the session
		// keeps it alive, whoever sent the visitor here.
		added = ""
	}
	// On a Redis error the store has logged it; the page shows what it read.
	interests, err := a.store.remember(r.Context(), page.SessionID, added)
	if visitorGone(r) {
		return
	}
	page.Interests = interests
	page.NotRemembered = err != nil && added != "" && !slices.Contains(interests, added)
	if err != nil {
		// For the chaos build's stop conditions: a breaker may have spared
		// Redis the command that would have failed.
		pageDegraded(r.Context())
	}
	recommended := len(page.Interests) > 0
	if a.recommender != nil {
		page.Recommender = true
		if len(page.Interests) > 0 {
			// On its failure the page shows the interests alone, as a
			// Redis failure shows none: a 200 either way.
			recs, err := a.recommender.recommend(r.Context(), page.Interests)
			if visitorGone(r) {
				return
			}
			if err != nil {
				pageDegraded(r.Context())
			}
			page.Recommendations = recs
		}
		recommended = len(page.Recommendations) > 0
	}
	a.metrics.searchPage(recommended)
	if err == nil && len(page.Interests) > 0 && len(w.Header()["Set-Cookie"]) == 0 {
		// The store has just refreshed the session's TTL; the cookie follows,
		// so that a visitor who keeps searching keeps their session.
		a.setSessionCookie(w, page.SessionID)
	}
	renderSearch(w, &page)
}

// visitorGone says the visitor went away while the page waited for a
// lookup (a request's context ends only when its connection does): nobody
// would see the page, so it is neither rendered nor counted, as a page
// without recommendations or as a degraded one, and its failed lookup is
// not the dependency's.
func visitorGone(r *http.Request) bool { return r.Context().Err() != nil }

const formMediaType = "application/x-www-form-urlencoded"

// formContentType returns the Content-Type field that says the body is a
// form, if any does. A request may carry several: ab with -p sends its own
// "Content-type: text/plain" before the one given with -H, which is how the
// book posts the search form. Werkzeug, the reference's server, keeps the last
// field; taking any field that names the form serves the book's command the
// same way and still admits every request whose first field is the form.
func formContentType(h http.Header) ([]string, bool) {
	fields := h.Values("Content-Type")
	for i, v := range fields {
		if namesForm(v) {
			return fields[i : i+1 : i+1], true
		}
	}
	return nil, false
}

// namesForm reports whether a Content-Type field names the form, parsing it
// only when it could: the usual field is the bare media type, and a field
// shorter than it (ab's "text/plain") cannot name it, for ParseMediaType's
// media type is the field's first part, trimmed and lower-cased.
func namesForm(v string) bool {
	if v == formMediaType {
		return true
	}
	if len(v) < len(formMediaType) {
		return false
	}
	mt, _, _ := mime.ParseMediaType(v)
	return mt == formMediaType
}

//go:embed static/style.css
var stylesheet []byte

func serveStylesheet(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Write(stylesheet)
}

func (a *app) reset(w http.ResponseWriter, r *http.Request) {
	a.newSession(w, r)
	http.Redirect(w, r, "/", http.StatusFound)
}

func (a *app) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
}

// readyz answers 200 while the process can serve pages, which it can with
// Redis down: a cache outage must not take every instance out of a load
// balancer's rotation at once. The body says whether pages come with
// recommendations and remember searches, and nothing about why not: the log
// has that. It asks each Redis server with its breakers' canaries, data
// commands of the kind sessions need, not a PING, which a server that cannot
// serve a session (a replica, a full one, a cluster that is down) answers.
// The recommender, when there is one, is asked the same way: for
// recommendations, outside its breaker (recommender.go).
func (a *app) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	var recommenderErr error
	var cache readiness
	if a.recommender == nil {
		cache = a.store.check(r.Context())
	} else {
		// Both at once: the answer waits for the slower, not their sum.
		recommenderReady := make(chan error, 1)
		go func() { recommenderReady <- a.recommender.ready(r.Context()) }()
		cache = a.store.check(r.Context())
		recommenderErr = <-recommenderReady
	}
	switch cache {
	case cacheReady:
		if recommenderErr == nil {
			w.Write([]byte("ready\n"))
		}
	case writesRefused:
		w.Write([]byte("degraded: session cache refuses writes; pages show the interests stored, and new searches are not remembered\n"))
	case partlyUnavailable:
		w.Write([]byte("degraded: session cache partly unavailable; some pages are served without recommendations\n"))
	default:
		w.Write([]byte("degraded: session cache unavailable; pages are served without recommendations\n"))
	}
	if recommenderErr != nil {
		w.Write([]byte("degraded: recommender unavailable; pages show the interests without recommendations\n"))
	}
}

// sessionID returns the request's session id for a page that shows it,
// issuing a new one (and its cookie) when the request has none or one that is
// not safe to use.
func (a *app) sessionID(w http.ResponseWriter, r *http.Request) string {
	w.Header()["Cache-Control"] = noStore // the page shows the id
	if id := requestSessionID(r); id != "" {
		return id
	}
	return a.newSession(w, r)
}

// requestSessionID returns the first sessionID cookie of the request that
// is a valid session id, or "" if none is. A page on a sibling subdomain can
// set a cookie of the same name that the browser sends before the visitor's
// own; taking only the first would let a bad one cost the visitor their
// session on every search. Whatever else names the request's session (the
// chaos build's blast radius) must pick it the same way.
func requestSessionID(r *http.Request) string {
	for _, c := range r.CookiesNamed(sessionCookie) {
		if validSessionID(c.Value) {
			return c.Value
		}
	}
	return ""
}

func (a *app) newSession(w http.ResponseWriter, r *http.Request) string {
	id := uuid.NewString()
	sessionIssued(r.Context(), id) // for the chaos build's blast radius; nothing in production
	a.setSessionCookie(w, id)
	return id
}

func (a *app) setSessionCookie(w http.ResponseWriter, id string) {
	h := w.Header()
	h["Cache-Control"] = noStore
	// A valid session id (validSessionID) is a cookie value as it is, which
	// http.Cookie would neither quote nor change; what follows it is the
	// same for every session. As http.SetCookie adds it.
	h["Set-Cookie"] = append(h["Set-Cookie"], sessionCookie+"="+id+a.cookieAttributes)
}

// sessionCookieAttributes returns what follows "sessionID=<id>" in the
// session cookie's Set-Cookie field, written by http.Cookie once rather
// than for every page that refreshes the cookie.
func sessionCookieAttributes(ttl time.Duration, secure bool) string {
	c := http.Cookie{
		Name:     sessionCookie,
		Value:    "id",
		Path:     "/",
		MaxAge:   int(ttl / time.Second),
		HttpOnly: true,
		Secure:   secure,
		SameSite: http.SameSiteLaxMode,
	}
	return strings.TrimPrefix(c.String(), sessionCookie+"=id")
}

// validSessionID reports whether a client-supplied session id may be used as
// is: 1 to 64 characters of [A-Za-z0-9._-], so it can never reach outside its
// key prefix or smuggle anything into a page.
func validSessionID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	return strings.IndexFunc(id, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '_' || r == '-')
	}) < 0
}

// normalizeQuery trims a search query and rejects one that cannot be stored
// and shown as plain text.
func normalizeQuery(raw string) (string, error) {
	q := strings.TrimSpace(raw)
	switch {
	case !utf8.ValidString(q):
		return "", errors.New("query must be valid UTF-8")
	case strings.IndexFunc(q, unsafeToShow) >= 0:
		return "", errors.New("query must not contain control characters or invisible format characters")
	case utf8.RuneCountInString(q) > maxQueryRunes:
		return "", errors.New("query is longer than 200 characters")
	}
	return q, nil
}

// Format characters (Cf: bidirectional overrides and isolates, zero-width
// spaces and joiners, soft hyphens, tags) and the line and paragraph
// separators (Zl, Zp) are invisible or reorder the text around them: an
// interest with a right-to-left override shows reversed, and two that differ
// by a zero-width space look alike. Plain text has no use for them.
var formatCharacters = []*unicode.RangeTable{unicode.Cf, unicode.Zl, unicode.Zp}

// unsafeToShow reports whether r may not appear in a query: a control
// character or a format character.
func unsafeToShow(r rune) bool {
	if ' ' <= r && r <= '~' {
		return false // printable ASCII, most of what visitors type
	}
	return unicode.IsControl(r) || unicode.IsOneOf(formatCharacters, r)
}
