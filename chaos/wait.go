package chaos

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"time"
)

// The one wait both layers' delays make: until a deadline, on a timer that
// costs no CPU while it waits, and cut short by whatever ends the delay's
// reason to exist: the command's context, the end of the plan that injected
// it (Stop, a replacement, an abort, the end of the duration), or the close
// of the connection whose reply it holds back. Each of these is a context,
// so that the wait can be interrupted by a callback (context.AfterFunc)
// rather than by a goroutine watching channels.

// Why a wait ended before its deadline, besides the command context's error.
var (
	errPlanEnded  = errors.New("chaos: the plan that injected the delay ended")
	errConnClosed = errors.New("chaos: the delayed connection was closed")
)

// wait waits until deadline and returns nil, or returns as soon as ctx is
// done (its error), plan is done (errPlanEnded) or conn is done
// (errConnClosed).
func wait(ctx, plan, conn context.Context, deadline time.Time) error {
	if err := ended(ctx, plan, conn); err != nil {
		return err
	}
	if time.Until(deadline) <= 0 {
		return nil
	}
	if ok, err := kernelWait(ctx, plan, conn, deadline); ok {
		if err != nil {
			return err
		}
		return spinUntil(ctx, plan, conn, deadline)
	}
	return timerWait(ctx, plan, conn, deadline)
}

// maxWakeLead bounds how early a kernel timer is set, and so the CPU a
// delay may spin: wake-ups that queue behind busy processors come late by
// more than the machine's own wake-up, and spinning cannot make up for that.
const maxWakeLead = 200 * time.Microsecond

// wakeLateness is an exponentially weighted mean of how late the kernel's
// timer wake-ups came, in nanoseconds: a property of the machine, shared by
// every wait.
var wakeLateness atomic.Int64

func wakeLead() time.Duration { return min(time.Duration(wakeLateness.Load()), maxWakeLead) }

// learnWakeLateness folds one wake-up's lateness into the mean, with a
// weight of 1/16.
func learnWakeLateness(late time.Duration) {
	late = max(0, min(late, 4*maxWakeLead)) // one descheduled outlier moves it little
	for {
		old := wakeLateness.Load()
		if wakeLateness.CompareAndSwap(old, old+(int64(late)-old)/16) {
			return
		}
	}
}

// spinUntil yields the processor until deadline: the microseconds between a
// kernel timer's early wake-up and the deadline.
func spinUntil(ctx, plan, conn context.Context, deadline time.Time) error {
	for time.Now().Before(deadline) {
		if err := ended(ctx, plan, conn); err != nil {
			return err
		}
		runtime.Gosched()
	}
	return nil
}

// ended is why a wait ends before its deadline, or nil while nothing ended
// it.
func ended(ctx, plan, conn context.Context) error {
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case plan.Err() != nil:
		return errPlanEnded
	case conn.Err() != nil:
		return errConnClosed
	}
	return nil
}

// timerWait is wait on a Go timer: the fallback where the kernel's timer
// cannot be had. It is up to about a millisecond late, since the runtime's
// poller sleeps in whole milliseconds while nothing else runs.
func timerWait(ctx, plan, conn context.Context, deadline time.Time) error {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
	case <-plan.Done():
	case <-conn.Done():
	}
	return ended(ctx, plan, conn)
}
