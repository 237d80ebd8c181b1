package chaos

import (
	"context"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// kernelWait waits on a timerfd: a kernel timer on CLOCK_MONOTONIC, to the
// nanosecond, whose file the runtime's poller watches. The poller wakes the
// moment the file is readable, where a Go timer waits for the poller's next
// whole millisecond (netpoll's epoll_wait takes its timeout in
// milliseconds): 0.2–0.4 ms late on average, 2–4 % of a 10 ms delay.
//
// What is left of the lateness is the kernel's, and the virtual machine's,
// wake-up of a sleeping thread, the same for a thread blocked in read or
// nanosleep. So the timer is set that much early (wakeLead: the wake-ups'
// recent lateness), and wait spins the few microseconds from the wake-up to
// the deadline: a delay never ends early, and on a machine whose wake-ups
// come late it costs tens of microseconds of CPU, not the whole lead
// (docs/performance.md has the figures).
//
// ok is false when no timerfd can be had: the caller waits on a Go timer.
func kernelWait(ctx, plan, conn context.Context, deadline time.Time) (ok bool, err error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return false, nil
	}
	f := os.NewFile(uintptr(fd), "chaos-delay")
	defer f.Close()
	target := deadline.Add(-wakeLead())
	d := time.Until(target)
	if d <= 0 {
		return true, nil
	}
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
	if unix.TimerfdSettime(fd, 0, &spec, nil) != nil {
		return false, nil
	}
	// A file the poller does not watch takes no deadline, and its Read
	// would hold a thread with nothing to end it. No deadline is set: a
	// runtime timer beside the kernel's, as a backstop, costs the wait a
	// wake-up of its own (the poller sleeps until it, even once stopped),
	// 40–90 µs of CPU a delay on the build machine.
	if f.SetReadDeadline(time.Time{}) != nil {
		return false, nil
	}
	interrupt := func() { f.SetReadDeadline(time.Unix(1, 0)) } // in the past: the Read ends at once
	for _, c := range []context.Context{ctx, plan, conn} {
		defer context.AfterFunc(c, interrupt)()
	}
	var expirations [8]byte
	_, readErr := f.Read(expirations[:])
	switch {
	case readErr == nil: // the kernel's timer expired
		learnWakeLateness(time.Since(target))
		return true, nil
	case ended(ctx, plan, conn) != nil:
		return true, ended(ctx, plan, conn)
	}
	return false, nil
}
