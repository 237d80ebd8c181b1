package chaos

import (
	"testing"
	"time"
)

// TestStopWindowP99 checks the nearest-rank p99 of a full window of 100: one
// slow search is the 100th value and leaves it below the threshold, a second
// one makes it the 99th.
func TestStopWindowP99(t *testing.T) {
	w := newStopWindow(100, 0, 0.1)
	for i := range 99 {
		took := 10 * time.Millisecond
		if i == 50 {
			took = time.Second
		}
		if abort := w.add(false, took); abort != nil {
			t.Fatalf("search %d: %+v", i, abort)
		}
	}
	if abort := w.add(false, 20*time.Millisecond); abort != nil {
		t.Fatalf("one slow search of 100 aborted: %+v", abort)
	}
	// The window slides: the oldest search leaves as the second slow one comes.
	abort := w.add(false, 500*time.Millisecond)
	if abort == nil || *abort != (Abort{Condition: "search_p99_seconds", Observed: 0.5, Threshold: 0.1, Window: 100}) {
		t.Fatalf("two slow searches of 100: %+v", abort)
	}
}
