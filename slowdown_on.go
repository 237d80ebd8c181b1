//go:build benchslow

package main

import (
	"net/http"
	"os"
	"strconv"
	"time"
)

// knownSlowdown is what the bench's calibration build spends on the CPU per
// request, on top of the production build's work: about 2 % of a -c 1
// search's CPU time on the build machine. make bench builds it as
// bin/shopsession-slow to check that its comparison of two builds detects a
// slowdown of that size; it is never shipped.
const knownSlowdown = 5 * time.Microsecond

// BENCH_SLOWDOWN_SPINS, when set, spins that many rounds of spinRound
// instead: a known count of instructions, not of time, for the bench's
// instruction counts under callgrind, where time runs many times slower.
var slowdownSpins, _ = strconv.Atoi(os.Getenv("BENCH_SLOWDOWN_SPINS"))

var spinSink uint64

// spinRound is one round of the counted spin; the package variable keeps
// the compiler from dropping it.
func spinRound(i int) { spinSink = spinSink*31 + uint64(i) }

func withKnownSlowdown(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slowdownSpins > 0 {
			for i := range slowdownSpins {
				spinRound(i)
			}
		} else {
			for start := time.Now(); time.Since(start) < knownSlowdown; {
				// spin: the cost must be CPU time, as an inefficiency would be
			}
		}
		h.ServeHTTP(w, r)
	})
}
