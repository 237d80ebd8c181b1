package chaos

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// inProgress waits until n of the dependency's faults are waiting.
func inProgress(t *testing.T, e *Experiment, n int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for e.httpCalls["recommender"].inProgress.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d faults in progress, want %d", e.httpCalls["recommender"].inProgress.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestHTTPStopEndsEveryFaultInProgress: a stop ends a delay before the
// request, a body held after the headers and a hung call within 100 ms,
// and each call then gets its dependency's answer.
func TestHTTPStopEndsEveryFaultInProgress(t *testing.T) {
	dep := newDependency(t)
	for _, body := range []string{
		`{"experiment":"latency","delay_seconds":30,"dependencies":["recommender"]}`,
		`{"experiment":"latency","delay_seconds":30,"dependencies":["recommender"],"delay_after_headers":true}`,
		`{"experiment":"error","error_every":1,"dependencies":["recommender"],"http_fault":"hang"}`,
	} {
		e, c := httpExperiment(t, body, "recommender")
		type answer struct {
			body string
			err  error
			at   time.Time
		}
		done := make(chan answer, 1)
		go func() {
			// A deadline well past the test's own, so that a fault the stop
			// fails to end fails the test rather than hanging it.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, b, err := call(ctx, c, dep.URL)
			done <- answer{b, err, time.Now()}
		}()
		inProgress(t, e, 1)
		stopped := time.Now()
		e.Stop()
		select {
		case a := <-done:
			took := a.at.Sub(stopped)
			if took > 100*time.Millisecond || a.err != nil || !strings.Contains(a.body, "Pears") {
				t.Errorf("%s: after the stop, %v later: %q %v", body, took, a.body, a.err)
			}
			t.Logf("%s: answered %v after the stop", body, took)
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the call did not end within 5 s of the stop", body)
		}
		inProgress(t, e, 0)
	}
}

// TestHTTPExpiryEndsAHang: the end of the duration ends a hung call within
// 100 ms.
func TestHTTPExpiryEndsAHang(t *testing.T) {
	dep := newDependency(t)
	e, c := httpExperiment(t, `{"experiment":"error","error_every":1,"dependencies":["recommender"],"http_fault":"hang","duration_seconds":1}`, "recommender")
	ends := *e.Status("").EndsAt
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, b, err := call(ctx, c, dep.URL)
	late := time.Since(ends)
	if late > 100*time.Millisecond || err != nil || !strings.Contains(b, "Pears") {
		t.Errorf("the hung call ended %v after the experiment: %q %v", late, b, err)
	}
	t.Logf("the hung call answered %v after the experiment's end", late)
	if st := e.Status("").State; st != StateEnded {
		t.Errorf("state %s, want ended", st)
	}
}

// TestHTTPAbortEndsADelay: a stop condition that the HTTP faults themselves
// break (a 503 makes the page degraded) aborts the experiment, which ends
// another page's delayed call within 100 ms.
func TestHTTPAbortEndsADelay(t *testing.T) {
	dep := newDependency(t)
	e, c := httpExperiment(t, `{"experiment":"latency,error","delay_seconds":30,"error_every":2,"http_fault":"status",`+
		`"dependencies":["recommender"],"stop_degraded_share":0.5,"stop_window_searches":1,"stop_min_searches":1}`, "recommender")
	rdb := testClient(t, e, redis.Options{})
	shop := httptest.NewServer(e.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rdb.Get(r.Context(), "interests") // a read that succeeds: only the call can make the page degraded
		code, _, err := call(r.Context(), c, dep.URL)
		if err != nil || code != 200 {
			http.Error(w, "no recommendations", http.StatusOK)
			return
		}
		io.WriteString(w, "recommendations")
	})))
	defer shop.Close()
	delayed := make(chan time.Time, 1)
	go func() {
		http.Get(shop.URL) // the first call: delayed
		delayed <- time.Now()
	}()
	inProgress(t, e, 1)
	resp, err := http.Get(shop.URL) // the second: a 503, a degraded page
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	aborted := time.Now()
	select {
	case at := <-delayed:
		late := at.Sub(aborted)
		if late > 100*time.Millisecond {
			t.Errorf("the delayed page ended %v after the abort", late)
		}
		t.Logf("the delayed page ended %v after the aborting page", late)
	case <-time.After(5 * time.Second):
		t.Fatalf("the delayed page did not end within 5 s of the abort; status %+v", e.Status(""))
	}
	if s := e.Status(""); s.State != StateAborted || s.Abort.Condition != "degraded_share" || s.Abort.Groups.Experiment.FailedReadsShare != 0 {
		t.Errorf("state %s, abort %+v", s.State, s.Abort)
	}
}
