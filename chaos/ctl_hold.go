package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// The lease a held ctl start renews, and how it ends: the experiment's end,
// the caller's interrupt, another ctl's stop, a halt, or the lease lost.

func refusedByHalt(record string) error {
	var h haltRecord
	json.Unmarshal([]byte(record), &h)
	return fmt.Errorf("refused: chaos is halted fleet-wide by %s at %s (%s): ctl resume lifts it",
		h.By, h.At.Format(time.RFC3339), h.Reason)
}

// hold renews the lease every third of it until the experiment's end (a
// patch may move it), ctx's end, or its record's removal.
//
// The lease counts from the start's write being sent, which Redis's TTL
// cannot precede: a lease Redis let expire is then one that ctl sees
// expired too.
func (c *Ctl) hold(ctx context.Context, key [32]byte, l leased, lease time.Duration) error {
	k := c.Fleet.keys()
	leaseID, end, renewed := l.id, l.end, l.sent
	tick := time.NewTicker(lease / 3)
	defer tick.Stop()
	// A change announced (another ctl's stop, a halt) is looked at now,
	// not at the next renewal.
	sub := c.Fleet.Redis.Subscribe(ctx, k.channel)
	defer sub.Close()
	changes := sub.Channel()
	ends := time.NewTimer(time.Until(end))
	defer ends.Stop()
	var unreachable error
	for {
		select {
		case <-ctx.Done():
			return c.stopOwn(leaseID, interruption(ctx))
		case <-ends.C:
			return c.stopOwn(leaseID, "its duration ran out")
		case <-tick.C:
		case <-changes:
		}
		sent := time.Now()
		rctx, cancel := context.WithTimeout(ctx, lease/3)
		rec, err := renewScript.Run(rctx, c.Fleet.Redis, []string{k.experiment}, leaseID, lease.Milliseconds()).Text()
		cancel()
		switch {
		case errors.Is(err, redis.Nil) && time.Since(renewed) > lease:
			// Gone because no renewal reached Redis in time (ctl was paused,
			// or its renewals were late): the experiment did not run its
			// course, as when Redis is unreachable for the lease.
			return fmt.Errorf("lost the lease: it expired in Redis, the last renewal at %s; every instance stopped by its expiry",
				renewed.Format(time.RFC3339Nano))
		case errors.Is(err, redis.Nil):
			return c.gone()
		case err != nil && ctx.Err() != nil:
			return c.stopOwn(leaseID, interruption(ctx))
		case err != nil:
			if unreachable == nil {
				fmt.Fprintf(c.Stderr, "cannot renew the lease: %v; every instance stops by %s unless it is renewed\n",
					err, renewed.Add(lease).Format(time.RFC3339Nano))
			}
			unreachable = err
			if time.Since(renewed) > lease {
				return fmt.Errorf("lost the lease: the control plane has been unreachable since %s (%v); every instance stopped by its expiry",
					renewed.Format(time.RFC3339), err)
			}
			continue
		}
		if unreachable != nil {
			fmt.Fprintln(c.Stderr, "lease renewed again")
			unreachable = nil
		}
		renewed = sent
		var r experimentRecord
		if json.Unmarshal([]byte(rec), &r) == nil && !r.EndsAt.Equal(end) {
			end = r.EndsAt
			ends.Reset(time.Until(end))
		}
	}
}

// errStopNotTaken is a stop that did not reach the control plane.
var errStopNotTaken = errors.New("the control plane did not take the stop")

// stopReason ends a hold for a reason of ctl run's, which the stop reports.
type stopReason string

func (r stopReason) Error() string { return string(r) }

// interruption is why ctx ended: ctl run's reason, or the caller's
// interrupt.
func interruption(ctx context.Context) string {
	var r stopReason
	if errors.As(context.Cause(ctx), &r) {
		return string(r)
	}
	return "interrupted"
}

// gone says why the held experiment's record is gone: a halt (exit 1) or
// another ctl's stop, or its lease expired in Redis.
func (c *Ctl) gone() error {
	k := c.Fleet.keys()
	ctx, cancel := context.WithTimeout(context.Background(), ctlTimeout)
	defer cancel()
	h, err := c.Fleet.Redis.HMGet(ctx, k.halt, "record", "halted").Result()
	if err == nil && h[1] == "1" {
		rec, _ := h[0].(string)
		return refusedByHalt(rec)
	}
	c.printf("the fleet experiment is gone: stopped by another ctl, or its lease expired before a renewal reached Redis")
	return nil
}

// stopOwn removes the held experiment, if it is still this lease's.
func (c *Ctl) stopOwn(leaseID, why string) error {
	k := c.Fleet.keys()
	ctx, cancel := context.WithTimeout(context.Background(), ctlTimeout)
	defer cancel()
	rec, err := stopScript.Run(ctx, c.Fleet.Redis, []string{k.experiment}, k.channel, leaseID).Text()
	switch {
	case errors.Is(err, redis.Nil):
		return c.gone()
	case err != nil:
		return fmt.Errorf("%s, but %w: %v; every instance stops when the lease lapses", why, errStopNotTaken, err)
	}
	var r experimentRecord
	json.Unmarshal([]byte(rec), &r)
	c.printf("stopped fleet experiment version %d: %s", r.Version, why)
	return nil
}
