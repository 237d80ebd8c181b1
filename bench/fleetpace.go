package main

import (
	"context"
	"fmt"
	"time"
)

// The fleet's control group is searched at a pace, not by a flat-out ab:
// three instances' control clients running flat out took both cores, and
// every experiment page then waited for a processor after each of its two
// delays, which the difference counted as the injection's (+0.6 % to +2.9 %
// on a busy machine). A paced client leaves the processors idle, so the
// difference measures the delay.
const fleetControlEvery = 20 * time.Millisecond

// pacedSearches searches a as cookie once every `every` for d, and sums
// them up as ab would.
func pacedSearches(ctx context.Context, a *appProcess, cookie string, every, d time.Duration) (abResult, error) {
	r := abResult{Command: fmt.Sprintf("a Go client: POST /search with %s every %v", cookie, every)}
	tick := time.NewTicker(every)
	defer tick.Stop()
	start := time.Now()
	var total time.Duration
	for time.Since(start) < d {
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-tick.C:
		}
		t := time.Now()
		status, _, err := a.search("Apples", cookie)
		if err != nil {
			r.Failed++
			continue
		}
		total += time.Since(t)
		r.Complete++
		if status/100 != 2 {
			r.Non2xx++
		}
	}
	if r.Complete > 0 {
		r.MeanMS = float64(total.Microseconds()) / 1000 / float64(r.Complete)
	}
	r.RequestsPerS = float64(r.Complete) / time.Since(start).Seconds()
	return r, nil
}
