package chaos

import (
	"math"
	"slices"
	"sync"
	"time"
)

// The stop conditions judge what the experiment group's visitors get: each
// group's latest pages go into a window of their own, and only the
// experiment group's is judged, the control group's kept beside it for the
// comparison an abort records (Netflix's ChAP: the experiment is judged
// against its control, not mixed with it). They judge once stopMinSearches
// pages are in, on each page as it ends and once a second on the
// guardrails' clock (guard.go's judge), which also counts the pages still
// in progress: a page that hangs is slow before it ends.

// The stop conditions' names, as Abort.Condition gives them.
const (
	ConditionFailedReads = "failed_reads_share"
	ConditionDegraded    = "degraded_share"
	ConditionPageP99     = "search_p99_seconds"
)

// Abort is why a stop condition aborted an experiment.
type Abort struct {
	Condition string  `json:"condition"`
	Observed  float64 `json:"observed"`
	Threshold float64 `json:"threshold"`
	Window    int     `json:"window_searches"`
	// Groups are both groups' windows when it aborted; the experiment
	// group's is the one judged.
	Groups AbortGroups `json:"groups"`
}

// AbortGroups are the two groups' windows at an abort.
type AbortGroups struct {
	Experiment WindowFigures `json:"experiment"`
	Control    WindowFigures `json:"control"`
}

// WindowFigures are one group's window as the stop conditions see it.
type WindowFigures struct {
	// Searches are the pages in the window that ended, which the shares
	// are of.
	Searches int `json:"searches"`
	// InProgress are the group's pages not yet ended; those in progress for
	// longer than the p99 threshold count in the p99 as slow.
	InProgress       int     `json:"in_progress"`
	FailedReadsShare float64 `json:"failed_reads_share"`
	DegradedShare    float64 `json:"degraded_share"`
	P99Seconds       float64 `json:"search_p99_seconds"`
}

// outcome is what a page gave its visitor.
type outcome struct {
	failedRead bool // the page did not read (failed, or answered first)
	degraded   bool // a Redis operation failed, or it answered non-2xx, or it panicked
	took       time.Duration
}

// stopWindow holds each group's latest pages for the stop conditions, and
// the pages in progress.
type stopWindow struct {
	mu            sync.Mutex
	size          int
	minSearches   int
	failedShare   float64       // 0: not a condition
	degradedShare float64       // 0: not a condition
	p99           time.Duration // 0: not a condition
	groupOf       func(unit string) group
	groups        [2]groupWindow
	// inProgress are the pages begun and not yet ended, since when on the
	// guardrails' clock. Their group is read when they are judged: a
	// handler may name the unit during the page.
	inProgress map[*request]time.Time
	// stopJudge stops the once-a-second judge's timer; judgeStopped, set when the
	// run ends, keeps it from being set again.
	stopJudge    func() bool
	judgeStopped bool
}

// groupWindow is a ring of one group's latest pages and their counts.
type groupWindow struct {
	pages                  []outcome
	next, n                int
	failed, degraded, slow int // slow: took more than the p99 threshold
}

func newStopWindow(g Guardrails, groupOf func(string) group) *stopWindow {
	w := &stopWindow{size: g.stopWindow(), minSearches: g.stopMinSearches(),
		failedShare: g.StopFailedReadsShare, degradedShare: g.StopDegradedShare,
		p99:     time.Duration(g.StopSearchP99Seconds * float64(time.Second)),
		groupOf: groupOf, inProgress: map[*request]time.Time{}}
	for i := range w.groups {
		w.groups[i].pages = make([]outcome, w.size)
	}
	return w
}

// begin counts a page in progress from now.
func (w *stopWindow) begin(r *request, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.inProgress[r] = now
}

// add records an ended page of group g and returns the condition the
// experiment group then breaks, if any; now is when, on the guardrails'
// clock.
func (w *stopWindow) add(r *request, g group, o outcome, now time.Time) *Abort {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.inProgress, r)
	gw := &w.groups[g]
	if gw.n == w.size {
		w.count(gw, gw.pages[gw.next], -1)
	} else {
		gw.n++
	}
	gw.pages[gw.next] = o
	w.count(gw, o, 1)
	gw.next = (gw.next + 1) % w.size
	if g != experimentGroup || !w.breaks(gw) {
		return nil
	}
	return w.judgeLocked(now)
}

// breaks is a page's quick test, from the counts of the pages that ended:
// those in progress only add slow ones, so judgeLocked, which counts them
// too, finds the window broken as well. The judge looks at them each second.
func (w *stopWindow) breaks(gw *groupWindow) bool {
	if gw.n < w.minSearches {
		return false
	}
	n := float64(gw.n)
	return w.failedShare > 0 && float64(gw.failed)/n > w.failedShare ||
		w.degradedShare > 0 && float64(gw.degraded)/n > w.degradedShare ||
		w.p99 > 0 && gw.slow >= gw.n-nearestRank(gw.n)+1
}

func (w *stopWindow) count(gw *groupWindow, o outcome, by int) {
	if o.failedRead {
		gw.failed += by
	}
	if o.degraded {
		gw.degraded += by
	}
	if w.slow(o.took) {
		gw.slow += by
	}
}

func (w *stopWindow) slow(took time.Duration) bool { return w.p99 > 0 && took > w.p99 }

// judge is the once-a-second judgement, of the pages in progress too.
func (w *stopWindow) judge(now time.Time) *Abort {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.judgeLocked(now)
}

// judgeLocked judges the experiment group's window at now from its counts,
// and returns the first condition it breaks, with both groups' figures.
func (w *stopWindow) judgeLocked(now time.Time) *Abort {
	gw := &w.groups[experimentGroup]
	condition, observed, threshold := "", 0.0, 0.0
	share := func(count int) float64 { return float64(count) / float64(gw.n) }
	n, slow, _, _ := w.sample(experimentGroup, now)
	switch {
	case gw.n >= w.minSearches && w.failedShare > 0 && share(gw.failed) > w.failedShare:
		condition, observed, threshold = ConditionFailedReads, share(gw.failed), w.failedShare
	case gw.n >= w.minSearches && w.degradedShare > 0 && share(gw.degraded) > w.degradedShare:
		condition, observed, threshold = ConditionDegraded, share(gw.degraded), w.degradedShare
	case n >= w.minSearches && w.p99 > 0 && slow >= n-nearestRank(n)+1:
		condition, threshold = ConditionPageP99, w.p99.Seconds()
	default:
		return nil
	}
	abort := &Abort{Condition: condition, Observed: observed, Threshold: threshold, Window: w.size,
		Groups: AbortGroups{Experiment: w.figures(experimentGroup, now), Control: w.figures(controlGroup, now)}}
	if condition == ConditionPageP99 {
		abort.Observed = abort.Groups.Experiment.P99Seconds
	}
	return abort
}

// sample is what group g's p99 is of at now: the latest pages that ended
// and, while the p99 is a condition, the pages in progress for longer than
// its threshold so far (hung), in place of the oldest ended ones. It
// returns their number, how many are slow, the pages in progress, and
// hung's times so far.
func (w *stopWindow) sample(g group, now time.Time) (n, slow, inProgress int, hung []time.Duration) {
	for r, since := range w.inProgress {
		if w.groupOf(r.unitName()) != g {
			continue
		}
		inProgress++
		if elapsed := now.Sub(since); w.slow(elapsed) && len(hung) < w.size {
			hung = append(hung, elapsed)
		}
	}
	gw := &w.groups[g]
	ended := min(gw.n, w.size-len(hung))
	slow = gw.slow + len(hung)
	for i := range gw.n - ended {
		if w.slow(gw.pages[w.oldest(gw, i)].took) {
			slow--
		}
	}
	return ended + len(hung), slow, inProgress, hung
}

// oldest is the ring index of group window gw's i-th oldest page.
func (w *stopWindow) oldest(gw *groupWindow, i int) int {
	return (gw.next - gw.n + i + w.size) % w.size
}

// figures are group g's window at now, for an abort.
func (w *stopWindow) figures(g group, now time.Time) WindowFigures {
	gw := &w.groups[g]
	n, _, inProgress, took := w.sample(g, now)
	f := WindowFigures{Searches: gw.n, InProgress: inProgress}
	for i := gw.n - (n - len(took)); i < gw.n; i++ {
		took = append(took, gw.pages[w.oldest(gw, i)].took)
	}
	if gw.n > 0 {
		f.FailedReadsShare = float64(gw.failed) / float64(gw.n)
		f.DegradedShare = float64(gw.degraded) / float64(gw.n)
	}
	if len(took) > 0 {
		slices.Sort(took)
		f.P99Seconds = took[nearestRank(len(took))-1].Seconds()
	}
	return f
}

// nearestRank is the rank of the p99 of n values, ⌈0.99 n⌉: it is above
// the threshold when at least n-rank+1 values are. Below 100 values it is
// the largest.
func nearestRank(n int) int { return int(math.Ceil(0.99 * float64(n))) }
