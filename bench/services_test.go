package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestSearchPagesFromMetrics reads the page counts from an exposition the
// way the service writes it.
func TestSearchPagesFromMetrics(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Write([]byte(`# HELP shopsession_search_pages_total Search pages rendered, by outcome.
# TYPE shopsession_search_pages_total counter
shopsession_search_pages_total{outcome="with_recommendations"} 13644
shopsession_search_pages_total{outcome="without_recommendations"} 1.3643e+04
# HELP shopsession_redis_commands_total Redis commands.
# TYPE shopsession_redis_commands_total counter
shopsession_redis_commands_total{command="get"} 27287
`))
	}))
	defer srv.Close()
	got, err := (&appProcess{admin: srv.URL}).searchPages()
	if err != nil || got != (pageCounts{WithRecommendations: 13644, WithoutRecommendations: 13643}) {
		t.Errorf("searchPages = %+v, %v", got, err)
	}
	if _, err := (&appProcess{admin: srv.URL + "/nope"}).searchPages(); err == nil {
		t.Errorf("searchPages from a 404 gave no error")
	}
}

// TestCPUSeconds reads this process's CPU time, which must grow, in /proc's
// 10 ms ticks, as it spins.
func TestCPUSeconds(t *testing.T) {
	self, err := os.FindProcess(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	app := &appProcess{cmd: &exec.Cmd{Process: self}}
	before, err := app.cpuSeconds()
	if err != nil {
		t.Fatal(err)
	}
	after := before
	for start := time.Now(); after-before < 0.05 && time.Since(start) < 30*time.Second; {
		for spin := time.Now(); time.Since(spin) < 10*time.Millisecond; {
		}
		if after, err = app.cpuSeconds(); err != nil {
			t.Fatal(err)
		}
	}
	if after-before < 0.05 {
		t.Errorf("CPU seconds stayed at %v → %v over 30 s of spinning", before, after)
	}
}
