package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// The real conditions the catalogue brings about on a side's redis-server
// after the warm-up, each with what ends it after the measured run.

type realCondition func(ctx context.Context, r *catalogueRedis) (end func(), err error)

func (r *catalogueRedis) client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: r.addr, MaxRetries: -1})
}

// sigstopped: the process stopped, its sockets accepting and answering
// nothing.
func sigstopped(_ context.Context, r *catalogueRedis) (func(), error) {
	if err := r.signal(syscall.SIGSTOP); err != nil {
		return nil, err
	}
	return func() { r.signal(syscall.SIGCONT) }, nil
}

// scriptFlushes flushes the script cache every 5 ms, as a failover to a
// replica that never loaded the script does to each EVALSHA after it.
func scriptFlushes(ctx context.Context, r *catalogueRedis) (func(), error) {
	rdb := r.client()
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				rdb.ScriptFlush(ctx)
			}
		}
	}()
	return func() { close(stop); <-stopped; rdb.Close() }, nil
}

// atMaxmemory: a server with noeviction (its redisArgs) whose maxmemory is
// below what it holds refuses every write with OOM.
func atMaxmemory(ctx context.Context, r *catalogueRedis) (func(), error) {
	rdb := r.client()
	if err := rdb.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		rdb.Close()
		return nil, err
	}
	return func() { rdb.ConfigSet(ctx, "maxmemory", "0"); rdb.Close() }, nil
}

// busyScript: a script that loops past busy-reply-threshold (its
// redisArgs) makes the server answer every command but SCRIPT KILL with
// BUSY.
func busyScript(ctx context.Context, r *catalogueRedis) (func(), error) {
	conn, err := net.Dial("tcp", r.addr)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(conn, "*3\r\n$4\r\neval\r\n$17\r\nwhile true do end\r\n$1\r\n0\r\n")
	rdb := r.client()
	end := func() { rdb.ScriptKill(ctx); conn.Close(); rdb.Close() }
	if err := untilReply(ctx, rdb, "BUSY "); err != nil {
		end()
		return nil, err
	}
	return end, nil
}

// masterGone: the server made a replica of a master that is not there,
// with replica-serve-stale-data no, answers every read with MASTERDOWN.
func masterGone(ctx context.Context, r *catalogueRedis) (func(), error) {
	port, err := freePort() // nothing listens there
	if err != nil {
		return nil, err
	}
	rdb := r.client()
	end := func() {
		rdb.ReplicaOf(ctx, "NO", "ONE")
		rdb.ConfigSet(ctx, "replica-serve-stale-data", "yes")
		rdb.Close()
	}
	if err := errors.Join(rdb.ConfigSet(ctx, "replica-serve-stale-data", "no").Err(),
		rdb.ReplicaOf(ctx, "127.0.0.1", strconv.Itoa(port)).Err()); err != nil {
		end()
		return nil, err
	}
	if err := untilReply(ctx, rdb, "MASTERDOWN "); err != nil {
		end()
		return nil, err
	}
	return end, nil
}

// untilReply waits, up to 5 s, for a GET to fail with an error reply
// beginning prefix.
func untilReply(ctx context.Context, rdb *redis.Client, prefix string) error {
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		err := rdb.Get(ctx, "catalogue-probe").Err()
		if err != nil && strings.HasPrefix(err.Error(), prefix) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the server never answered %s: %v", strings.TrimSpace(prefix), err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}
