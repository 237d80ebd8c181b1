//go:build !benchslow

package main

import "net/http"

// withKnownSlowdown is the identity outside the bench's calibration build
// (slowdown_on.go): the production and chaos builds carry nothing of it.
func withKnownSlowdown(h http.Handler) http.Handler { return h }
