//go:build benchslow

package main

import (
	"net/http"
	"time"
)

// knownSlowdown is what the bench's calibration build spends on the CPU per
// request, on top of the production build's work: about 2 % of a -c 1
// search's CPU time on the build machine. make bench builds it as
// bin/shopsession-slow to check that its comparison of two builds detects a
// slowdown of that size; it is never shipped.
const knownSlowdown = 5 * time.Microsecond

func withKnownSlowdown(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for start := time.Now(); time.Since(start) < knownSlowdown; {
			// spin: the cost must be CPU time, as an inefficiency would be
		}
		h.ServeHTTP(w, r)
	})
}
