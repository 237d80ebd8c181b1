// Package recommender is the reference recommender: the small service the
// shop asks for recommendations over HTTP when RECOMMENDER_URL is set. The
// command under cmd/recommender serves it; the shop's tests serve it on a
// loopback port of their own, and change how it misbehaves while it runs.
//
// It answers POST /recommendations with one recommendation for each
// interest it is sent, and GET /healthz with "ok". Its two ways of failing
// are real ones, not injected: every Nth request answered 503, and every
// answer held back a while before it is written.
package recommender

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Request is the body of POST /recommendations.
type Request struct {
	Interests []string `json:"interests"`
}

// Recommendation is one suggestion: the text shown, and the query that
// searching for it sends.
type Recommendation struct {
	Title string `json:"title"`
	Query string `json:"query"`
}

// Response is the body of a 200 answer to POST /recommendations.
type Response struct {
	Recommendations []Recommendation `json:"recommendations"`
}

// Limits on a request: the shop sends at most three interests of at most
// 200 characters each, so these leave room and refuse what no shop sends.
const (
	MaxRequestBytes = 16 << 10
	MaxInterests    = 10
	MaxInterestRune = 200
)

// Settings are how the recommender misbehaves; the zero value answers every
// request at once.
type Settings struct {
	// FailEvery answers every FailEvery-th request 503 (1: all of them,
	// 2: every other one); 0: none.
	FailEvery int
	// Delay holds each answer back, 503s included, for this long, or until
	// the caller goes away.
	Delay time.Duration
}

// Server is the recommender. Its settings may change while it serves.
type Server struct {
	settings atomic.Pointer[Settings]
	requests atomic.Uint64 // POST /recommendations received
	failed   atomic.Uint64 // of them, answered 503 by FailEvery
	released chan struct{} // closed by Release
	release  sync.Once
}

// New returns a recommender with the given settings.
func New(s Settings) *Server {
	srv := &Server{released: make(chan struct{})}
	srv.Set(s)
	return srv
}

// Release ends every delay, those held now and those to come, so that a
// server shutting down waits for no held answer.
func (s *Server) Release() { s.release.Do(func() { close(s.released) }) }

// Set changes the settings; requests already waiting keep theirs.
func (s *Server) Set(settings Settings) { s.settings.Store(&settings) }

// Requests is how many recommendation requests the server has received, and
// Failed how many of them FailEvery answered 503.
func (s *Server) Requests() uint64 { return s.requests.Load() }
func (s *Server) Failed() uint64   { return s.failed.Load() }

// Handler serves the recommender's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /recommendations", s.recommend)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	return mux
}

func (s *Server) recommend(w http.ResponseWriter, r *http.Request) {
	n := s.requests.Add(1)
	settings := s.settings.Load()
	var req Request
	r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBytes)
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, "want a JSON body {\"interests\": [\"…\"]} of at most 16 KiB", http.StatusBadRequest)
		return
	}
	if msg := invalid(req.Interests); msg != "" {
		http.Error(w, msg, http.StatusBadRequest)
		return
	}
	if settings.Delay > 0 {
		t := time.NewTimer(settings.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done(): // the caller gave up: nobody reads the answer
			t.Stop()
			return
		case <-s.released:
			t.Stop()
		}
	}
	if settings.FailEvery > 0 && n%uint64(settings.FailEvery) == 0 {
		s.failed.Add(1)
		http.Error(w, "recommender unavailable", http.StatusServiceUnavailable)
		return
	}
	resp := Response{Recommendations: make([]Recommendation, 0, len(req.Interests))}
	// The newest interest first: it says most about what the visitor wants now.
	for i := len(req.Interests) - 1; i >= 0; i-- {
		// Cut so that title and query stay within what a shop shows, a
		// search query's 200 characters: a visitor's longest search must
		// not make the answer one the shop refuses, whose breaker would then
		// count the recommender failing for every visitor.
		interest := cutRunes(req.Interests[i], MaxInterestRune-len("bestsellers in "))
		resp.Recommendations = append(resp.Recommendations, Recommendation{
			Title: "bestsellers in " + interest,
			Query: interest + " bestsellers",
		})
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}

// invalid says what is wrong with a request's interests, or "".
func invalid(interests []string) string {
	if len(interests) == 0 || len(interests) > MaxInterests {
		return fmt.Sprintf("want 1 to %d interests, not %d", MaxInterests, len(interests))
	}
	for _, interest := range interests {
		if interest == "" || !utf8.ValidString(interest) || utf8.RuneCountInString(interest) > MaxInterestRune {
			return fmt.Sprintf("want each interest 1 to %d characters of UTF-8", MaxInterestRune)
		}
	}
	return ""
}

// cutRunes is s cut to at most n runes, its trailing space trimmed.
func cutRunes(s string, n int) string {
	for i := range s {
		if n == 0 {
			return strings.TrimRight(s[:i], " ")
		}
		n--
	}
	return s
}
