//go:build !linux

package chaos

import (
	"context"
	"time"
)

// kernelWait has no kernel timer to wait on outside Linux: the caller waits
// on a Go timer.
func kernelWait(context.Context, time.Time, <-chan struct{}, <-chan struct{}) (bool, error) {
	return false, nil
}
