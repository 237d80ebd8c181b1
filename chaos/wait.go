package chaos

import (
	"context"
	"errors"
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
		return err
	}
	return timerWait(ctx, plan, conn, deadline)
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
