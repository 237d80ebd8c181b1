//go:build chaos

package main

import (
	"context"
	"io"
	"os"

	"example.com/shopsession/chaos"
	"github.com/redis/go-redis/v9"
)

// The fleet: every chaos instance follows the experiment its fleet keeps in
// the Redis they share, and `minimal-chaos ctl` writes it there.
// fleet_off.go declares the same names empty.

// fleetName keeps this service's records apart from others' on one Redis.
const fleetName = "visits"

// joinFleet follows the fleet's experiment through a client of its own,
// which no experiment is hooked into.
func (e *experiment) joinFleet(addr string) (leave func(), err error) {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	left, err := e.Join(chaos.Fleet{Redis: rdb, Name: fleetName})
	if err != nil {
		rdb.Close()
		return nil, err
	}
	return func() { left(); rdb.Close() }, nil
}

// runCtl is `minimal-chaos ctl start|patch|stop|halt|resume|status`, with
// the instances' token: the records are signed with it.
func runCtl(ctx context.Context, args []string, addr string, getenv func(string) string, stdout, stderr io.Writer) error {
	token, err := chaos.TokenFromEnv(getenv)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	c := &chaos.Ctl{Fleet: chaos.Fleet{Redis: rdb, Name: fleetName}, Token: token, Commands: commands,
		Program: "minimal-chaos ctl", Stdin: os.Stdin, Stdout: stdout, Stderr: stderr}
	return c.Run(ctx, args)
}
