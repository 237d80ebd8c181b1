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
// of the connection whose reply it holds back.

// Why a wait ended before its deadline, besides the context's error.
var (
	errPlanEnded  = errors.New("chaos: the plan that injected the delay ended")
	errConnClosed = errors.New("chaos: the delayed connection was closed")
)

// wait waits until deadline and returns nil, or returns as soon as ctx is
// done (its error), planDone is closed (errPlanEnded) or connClosed is
// closed (errConnClosed). A nil channel never ends it.
func wait(ctx context.Context, deadline time.Time, planDone, connClosed <-chan struct{}) error {
	if err := ended(ctx, planDone, connClosed); err != nil {
		return err
	}
	if time.Until(deadline) <= 0 {
		return nil
	}
	if ok, err := kernelWait(ctx, deadline, planDone, connClosed); ok {
		return err
	}
	return timerWait(ctx, deadline, planDone, connClosed)
}

// ended is why a wait would end at once, or nil.
func ended(ctx context.Context, planDone, connClosed <-chan struct{}) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-planDone:
		return errPlanEnded
	case <-connClosed:
		return errConnClosed
	default:
		return nil
	}
}

// timerWait is wait on a Go timer: the fallback where the kernel's timer
// cannot be had. It is up to about a millisecond late, since the runtime's
// poller sleeps in whole milliseconds while nothing else runs.
func timerWait(ctx context.Context, deadline time.Time, planDone, connClosed <-chan struct{}) error {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-planDone:
		return errPlanEnded
	case <-connClosed:
		return errConnClosed
	}
}
