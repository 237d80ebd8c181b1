//go:build !chaos

package main

import (
	"context"
	"io"
	"log/slog"
)

// The production twin of fleet_on.go: no fleet, no ctl.

func (*experiment) joinFleet(cfg config, logger *slog.Logger) (leave func(), err error) {
	return leaveNoFleet, nil
}

// leaveNoFleet is a function of its own: a closure would be named after
// the method, and put the chaos build's words in the production binary.
func leaveNoFleet() {}

func runCtl(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return usageError("ctl is a command of the chaos build only: build it with make build-chaos and run bin/shopsession-chaos ctl")
}
