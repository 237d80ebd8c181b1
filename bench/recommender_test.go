package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"example.com/shopsession/internal/recommender"
)

func TestJudgeLongestPage(t *testing.T) {
	for _, tc := range []struct {
		longestMS, steadyLongestMS float64
		want                       string
	}{
		{longestMS: 209, steadyLongestMS: 143, want: verdictPass},
		{longestMS: 343, steadyLongestMS: 143, want: verdictPass},     // the timeout, steady's longest and the slack: the bound
		{longestMS: 344, steadyLongestMS: 143, want: verdictDeviated}, // a page that waited past RECOMMENDER_TIMEOUT
		{longestMS: 1010, steadyLongestMS: 10, want: verdictDeviated}, // the recommender's 1 s delay, no timeout at all
	} {
		sc := scenario{Summary: abResult{Percentiles: map[string]float64{"100": tc.longestMS, "99": 1}}}
		sc.judgeLongestPage(tc.steadyLongestMS)
		if sc.Verdict != tc.want {
			t.Errorf("longest %v ms, steady's %v ms: %s, want %s: %s", tc.longestMS, tc.steadyLongestMS, sc.Verdict, tc.want, strings.Join(sc.Findings, "; "))
		}
	}
}

func TestRecommenderFindings(t *testing.T) {
	log := `level=WARN msg="recommender circuit breaker open: x" from=closed to=open
level=WARN msg="recommender circuit breaker half-open: x"
level=WARN msg="recommender circuit breaker open: x" from=half-open to=open
`
	got := recommenderFindings(log, map[string]float64{"ok": 10, "timeout": 1}, map[string]float64{"ok": 10, "timeout": 20, "transport": 2})
	if want := "calls to the recommender: timeout 19, transport 2; its breaker opened 2 times, half-open 1, closed 0"; got != want {
		t.Errorf("findings = %q, want %q", got, want)
	}
}

// TestBenchRecommender: the bench's recommender serves the reference
// recommender's answers and failures on its loopback port.
func TestBenchRecommender(t *testing.T) {
	rec, err := startBenchRecommender(recommender.Settings{FailEvery: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.close()
	var codes []int
	for range 2 {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, rec.url+"/recommendations", strings.NewReader(`{"interests":["Apples"]}`))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body recommender.Response
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
		if resp.StatusCode == 200 && len(body.Recommendations) != 1 {
			t.Errorf("answer %+v", body)
		}
	}
	if codes[0] != 200 || codes[1] != 503 {
		t.Errorf("codes %v, want [200 503]", codes)
	}
}
