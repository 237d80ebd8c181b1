//go:build !chaos

package main

import (
	"context"
	"errors"
	"io"
)

// The production half of fleet_on.go: no fleet, no ctl.

func (*experiment) joinFleet(addr string) (leave func(), err error) { return leaveNothing, nil }

func leaveNothing() {}

func runCtl(ctx context.Context, args []string, addr string, getenv func(string) string, stdout, stderr io.Writer) error {
	return errors.New("ctl is a command of the chaos build only (go build -tags chaos)")
}
