package chaos

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// secondInterrupt is a context that ends at the second SIGINT or SIGTERM
// of the process once ctx (the caller's, ended by the first) has ended:
// ctl run's rollback stops the fault whatever happens, and then waits for
// the steady state, a wait a second interrupt cuts short. stop ends the
// watch.
func secondInterrupt(ctx context.Context) (again context.Context, stop func()) {
	again, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		defer signal.Stop(signals)
		seen := 0
		for {
			select {
			case <-signals:
				// The first is the caller's, which ended ctx too.
				if seen++; seen >= 2 && ctx.Err() != nil {
					cancel()
					return
				}
			case <-done:
				return
			}
		}
	}()
	return again, func() { close(done); cancel() }
}
