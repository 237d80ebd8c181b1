//go:build !linux

package chaos

import (
	"context"
	"time"
)

// kernelWait has no kernel timer to wait on outside Linux: the caller waits
// on a Go timer.
func kernelWait(context.Context, context.Context, context.Context, time.Time) (bool, error) {
	return false, nil
}
