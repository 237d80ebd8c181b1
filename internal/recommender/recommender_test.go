package recommender

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func post(t *testing.T, ctx context.Context, url, body string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/recommendations", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return http.DefaultClient.Do(req)
}

func TestRecommends(t *testing.T) {
	srv := httptest.NewServer(New(Settings{}).Handler())
	defer srv.Close()
	resp, err := post(t, t.Context(), srv.URL, `{"interests":["apple","pear"]}`)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got Response
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %s, %v", resp.StatusCode, resp.Header.Get("Content-Type"), err)
	}
	if len(got.Recommendations) != 2 || got.Recommendations[0] != (Recommendation{"bestsellers in pear", "pear bestsellers"}) {
		t.Errorf("recommendations = %+v; want the newest interest's first", got.Recommendations)
	}
}

func TestRefusesBadRequests(t *testing.T) {
	srv := httptest.NewServer(New(Settings{}).Handler())
	defer srv.Close()
	for _, body := range []string{``, `[]`, `{"interests":[]}`, `{"interests":[""]}`, `{"interests":["` + strings.Repeat("x", 201) + `"]}`,
		`{"interests":["a","b","c","d","e","f","g","h","i","j","k"]}`, `{"interests":["` + strings.Repeat("x", 20<<10) + `"]}`} {
		resp, err := post(t, t.Context(), srv.URL, body)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("body %.40q: %d; want 400", body, resp.StatusCode)
		}
	}
}

// TestFailEvery: every other request 503 with FailEvery 2, and the count.
func TestFailEvery(t *testing.T) {
	rec := New(Settings{FailEvery: 2})
	srv := httptest.NewServer(rec.Handler())
	defer srv.Close()
	var codes []int
	for range 6 {
		resp, err := post(t, t.Context(), srv.URL, `{"interests":["apple"]}`)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
	if want := []int{200, 503, 200, 503, 200, 503}; !equal(codes, want) || rec.Requests() != 6 || rec.Failed() != 3 {
		t.Errorf("codes %v, %d requests, %d failed; want %v, 6, 3", codes, rec.Requests(), rec.Failed(), want)
	}
	rec.Set(Settings{FailEvery: 1})
	resp, err := post(t, t.Context(), srv.URL, `{"interests":["apple"]}`)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Errorf("FailEvery 1: %d; want 503", resp.StatusCode)
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestDelayEndsWithTheCaller: a held answer waits for its delay, and ends
// at once when the caller goes away, so a slow recommender holds nothing
// after the shop's timeout.
func TestDelayEndsWithTheCaller(t *testing.T) {
	handlerDone := make(chan struct{}, 1)
	rec := New(Settings{Delay: time.Hour})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.Handler().ServeHTTP(w, r)
		handlerDone <- struct{}{}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := post(t, ctx, srv.URL, `{"interests":["apple"]}`)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v; want the caller's deadline", err)
	}
	gaveUp := time.Now()
	select {
	case <-handlerDone:
		if took := time.Since(gaveUp); took > 100*time.Millisecond {
			t.Errorf("the held answer ended %v after its caller gave up; want within 100 ms", took)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the held answer never ended after its caller went away")
	}

	rec.Set(Settings{Delay: 30 * time.Millisecond})
	start := time.Now()
	resp, err := post(t, t.Context(), srv.URL, `{"interests":["apple"]}`)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || time.Since(start) < 30*time.Millisecond {
		t.Errorf("Delay 30ms: %d after %v; want 200 after at least 30 ms", resp.StatusCode, time.Since(start))
	}
}

func TestHealth(t *testing.T) {
	srv := httptest.NewServer(New(Settings{FailEvery: 1}).Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /healthz: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestReleaseEndsDelays: Release sends a held answer at once, so that a
// recommender shutting down waits for none.
func TestReleaseEndsDelays(t *testing.T) {
	rec := New(Settings{Delay: time.Hour})
	srv := httptest.NewServer(rec.Handler())
	defer srv.Close()
	// Ends the call before srv.Close waits for its handler, should Release fail.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	answered := make(chan int, 1)
	go func() {
		resp, err := post(t, ctx, srv.URL, `{"interests":["apple"]}`)
		if err != nil {
			answered <- 0
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	deadline := time.Now().Add(5 * time.Second)
	for rec.Requests() == 0 { // the request is held once counted
		if time.Now().After(deadline) {
			t.Fatal("the request never reached the recommender")
		}
		time.Sleep(time.Millisecond) // polling the counter
	}
	start := time.Now()
	rec.Release()
	select {
	case code := <-answered:
		if took := time.Since(start); code != 200 || took > 100*time.Millisecond {
			t.Errorf("released answer: %d after %v; want 200 within 100 ms", code, took)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the held answer was not released")
	}
}

// The longest interest a shop sends still gets a title and a query a shop
// shows: at most 200 characters each.
func TestRecommendsWithinWhatAShopShows(t *testing.T) {
	srv := httptest.NewServer(New(Settings{}).Handler())
	defer srv.Close()
	long := strings.Repeat("é", MaxInterestRune)
	resp, err := post(t, t.Context(), srv.URL, `{"interests":["`+long+`"]}`)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got Response
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || len(got.Recommendations) != 1 {
		t.Fatalf("%+v, %v", got, err)
	}
	for _, s := range []string{got.Recommendations[0].Title, got.Recommendations[0].Query} {
		if n := utf8.RuneCountInString(s); n > 200 {
			t.Errorf("%d characters: %q", n, s)
		}
	}
}
