package chaos

import (
	"math"
	"slices"
	"sync"
	"time"
)

// The stop conditions' names, as Abort.Condition gives them.
const (
	ConditionFailedReads = "failed_reads_share"
	ConditionPageP99     = "search_p99_seconds"
)

// Abort is why a stop condition aborted an experiment.
type Abort struct {
	Condition string  `json:"condition"`
	Observed  float64 `json:"observed"`
	Threshold float64 `json:"threshold"`
	Window    int     `json:"window_searches"`
}

// stopWindow holds the latest pages' outcomes for the stop conditions.
type stopWindow struct {
	mu          sync.Mutex
	size        int
	failedShare float64       // 0: not a condition
	p99         time.Duration // 0: not a condition
	failed      []bool
	took        []time.Duration
	next, n     int
	failedCount int
	slowCount   int // pages slower than p99
}

func newStopWindow(size int, failedShare, p99Seconds float64) *stopWindow {
	return &stopWindow{size: size, failedShare: failedShare, p99: time.Duration(p99Seconds * float64(time.Second)),
		failed: make([]bool, size), took: make([]time.Duration, size)}
}

// add records a page and returns the condition it breaks, once the window
// is full.
func (w *stopWindow) add(failed bool, took time.Duration) *Abort {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n == w.size {
		if w.failed[w.next] {
			w.failedCount--
		}
		if w.p99 > 0 && w.took[w.next] > w.p99 {
			w.slowCount--
		}
	} else {
		w.n++
	}
	w.failed[w.next], w.took[w.next] = failed, took
	if failed {
		w.failedCount++
	}
	if w.p99 > 0 && took > w.p99 {
		w.slowCount++
	}
	w.next = (w.next + 1) % w.size
	if w.n < w.size {
		return nil
	}
	if share := float64(w.failedCount) / float64(w.size); w.failedShare > 0 && share > w.failedShare {
		return &Abort{Condition: ConditionFailedReads, Observed: share, Threshold: w.failedShare, Window: w.size}
	}
	// The nearest-rank p99 is the rank-k value, k = ⌈0.99 n⌉: it is above the
	// threshold when at least n-k+1 pages are.
	if rank := int(math.Ceil(0.99 * float64(w.size))); w.p99 > 0 && w.slowCount >= w.size-rank+1 {
		sorted := slices.Clone(w.took)
		slices.Sort(sorted)
		return &Abort{Condition: ConditionPageP99, Observed: sorted[rank-1].Seconds(), Threshold: w.p99.Seconds(), Window: w.size}
	}
	return nil
}
