//go:build chaos

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"example.com/shopsession/chaos"
	"example.com/shopsession/internal/redisclient"
	"github.com/redis/go-redis/v9"
)

// The chaos build's fleet control plane: each instance joins the fleet on
// the Redis it uses, through a client of its own; `ctl` writes the fleet's
// experiment there. fleet_off.go is the production twin.

// joinFleet joins the fleet on the Redis REDIS_URL names, unless CHAOS_FLEET
// is off; the embedded Redis is this process's alone: no fleet.
func (e *experiment) joinFleet(cfg config, logger *slog.Logger) (leave func(), err error) {
	if !e.fleet || cfg.redisOptions == nil && cfg.redisCluster == nil {
		return func() {}, nil
	}
	rdb := controlClient(cfg)
	left, err := e.Join(chaos.Fleet{Redis: rdb, Name: metricsNamespace})
	if err != nil {
		rdb.Close()
		return nil, err
	}
	return func() {
		left()
		if err := rdb.Close(); err != nil {
			logger.Warn("close the fleet's redis client", "err", err)
		}
	}, nil
}

// fleetWanted reads CHAOS_FLEET: on (the default) or off.
func fleetWanted(getenv func(string) string) (bool, error) {
	switch v := getenv("CHAOS_FLEET"); v {
	case "", "on":
		return true, nil
	case "off":
		return false, nil
	default:
		return false, usageError(fmt.Sprintf("invalid CHAOS_FLEET %q: want on (join the fleet on REDIS_URL's Redis, the default) or off", v))
	}
}

// controlClient is a client of the control plane's own, with the service's
// settings (set here on a copy of REDIS_URL's options, not left to
// openRedis's) and a small pool: no experiment is hooked into it.
func controlClient(cfg config) redis.UniversalClient {
	if cfg.redisCluster != nil {
		o := *cfg.redisCluster
		redisclient.ClusterDefaults(&o)
		o.PoolSize, o.MinIdleConns = 4, 0
		return redis.NewClusterClient(&o)
	}
	o := *cfg.redisOptions
	redisclient.Defaults(&o)
	o.PoolSize, o.MinIdleConns = 4, 0
	return redis.NewClient(&o)
}

// stdin is what ctl start and patch read an experiment from without -f.
var stdin io.Reader = os.Stdin

// runCtl is `shopsession-chaos ctl [-redis-url URL] COMMAND [flags]`.
func runCtl(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	redisURL := fs.String("redis-url", getenv("REDIS_URL"), "the fleet's Redis (env REDIS_URL)")
	const usage = "shopsession-chaos ctl [-redis-url URL] start|patch|stop|halt|resume|status|run [flags]"
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stdout, "Usage: "+usage+"\nCOMMAND -h lists a command's flags; docs/fleet.md says what each does.")
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return nil
	} else if err != nil {
		return usageError("shopsession-chaos ctl: " + err.Error() + "; want " + usage)
	}
	fromFlag := false
	fs.Visit(func(*flag.Flag) { fromFlag = true })
	name := "REDIS_URL"
	if fromFlag {
		name = "-redis-url"
	}
	if *redisURL == "" {
		return usageError("shopsession-chaos ctl needs the fleet's Redis: set REDIS_URL (or -redis-url) to the one the instances use")
	}
	var cfg config
	var want string
	if cfg.redisOptions, cfg.redisCluster, want = parseRedisURL(*redisURL); want != "" {
		return usageError(fmt.Sprintf("invalid %s %q: want %s", name, redactURL(*redisURL), want))
	}
	token, err := chaos.TokenFromEnv(getenv)
	if err != nil {
		return usageError(err.Error())
	}
	// go-redis logs a failed dial on its own; ctl says what failed in one line.
	redis.SetLogger(quietRedis{})
	rdb := controlClient(cfg)
	defer rdb.Close()
	c := &chaos.Ctl{Fleet: chaos.Fleet{Redis: rdb, Name: metricsNamespace}, Token: token, Commands: shopCommands,
		Program: "shopsession-chaos ctl", Stdin: stdin, Stdout: stdout, Stderr: stderr}
	err = c.Run(ctx, fs.Args())
	var misuse chaos.UsageError
	if errors.As(err, &misuse) {
		return usageError(misuse.Error())
	}
	return err
}

type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}
