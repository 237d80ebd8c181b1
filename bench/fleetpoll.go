package main

import (
	"context"
	"time"
)

// How the fleet scenario times an instance: it reads GET /debug/chaos every
// few milliseconds from the instant it measures from (ctl start run, or ctl
// start sent SIGTERM) and keeps, per reading, when the answer arrived, the
// fleet version applied, and the delays begun and in progress. The answer's
// arrival bounds the instant the instance reported from above, so each
// figure errs long, by up to one interval and one request.

const (
	fleetPollInterval = 5 * time.Millisecond
	// fleetQuiet: how long after its last delay an instance must stay
	// without one before the stop is taken as done.
	fleetQuiet = time.Second
)

type fleetSample struct {
	at         time.Duration // since the instant measured from
	version    int64
	injected   int64 // delays begun since the process started
	inProgress int64
}

// pollInstance reads a's status every fleetPollInterval from from until
// enough says it has seen enough or limit has passed since from.
func pollInstance(ctx context.Context, a *appProcess, from time.Time, limit time.Duration, enough func([]fleetSample) bool) ([]fleetSample, error) {
	tick := time.NewTicker(fleetPollInterval)
	defer tick.Stop()
	var samples []fleetSample
	for {
		s, err := a.instanceStatus()
		if err != nil {
			return samples, err
		}
		samples = append(samples, fleetSample{at: time.Since(from), version: s.Fleet.Version,
			injected: s.Counters.DelaysInjected, inProgress: s.Counters.DelaysInProgress})
		if enough(samples) || time.Since(from) >= limit {
			return samples, nil
		}
		select {
		case <-ctx.Done():
			return samples, ctx.Err()
		case <-tick.C:
		}
	}
}

// firstApplied is when the instance first read a fleet version.
func firstApplied(samples []fleetSample) (time.Duration, int64, bool) {
	for _, s := range samples {
		if s.version != 0 {
			return s.at, s.version, true
		}
	}
	return 0, 0, false
}

// firstDelay is when the instance was first seen delaying a round trip: a
// delay in progress, or more begun than injectedBefore.
func firstDelay(samples []fleetSample, injectedBefore int64) (time.Duration, bool) {
	for _, s := range samples {
		if s.inProgress > 0 || s.injected > injectedBefore {
			return s.at, true
		}
	}
	return 0, false
}

// versionGone is when the instance was first seen applying no fleet
// experiment.
func versionGone(samples []fleetSample) (time.Duration, bool) {
	for _, s := range samples {
		if s.version == 0 {
			return s.at, true
		}
	}
	return 0, false
}

// lastDelayEnd is when the instance's last delay had ended: the first
// reading with none in progress after the last reading that showed one in
// progress or one begun since the reading before (injectedBefore for the
// first). False when the last reading still showed one: the delays had not
// stopped by the end of the readings.
func lastDelayEnd(samples []fleetSample, injectedBefore int64) (time.Duration, bool) {
	last, prev := -1, injectedBefore
	for i, s := range samples {
		if s.inProgress > 0 || s.injected > prev {
			last = i
		}
		prev = s.injected
	}
	if last == len(samples)-1 {
		return 0, false
	}
	return samples[last+1].at, true
}

// startSeen says the start readings are done: the instance applied a
// version and delayed a round trip.
func startSeen(injectedBefore int64) func([]fleetSample) bool {
	return func(samples []fleetSample) bool {
		_, _, applied := firstApplied(samples)
		_, delayed := firstDelay(samples, injectedBefore)
		return applied && delayed
	}
}

// stopSeen says the stop readings are done: the instance dropped the
// version, and no delay has begun or been in progress for fleetQuiet.
func stopSeen(injectedBefore int64) func([]fleetSample) bool {
	return func(samples []fleetSample) bool {
		_, gone := versionGone(samples)
		end, ended := lastDelayEnd(samples, injectedBefore)
		return gone && ended && samples[len(samples)-1].at-end >= fleetQuiet
	}
}
