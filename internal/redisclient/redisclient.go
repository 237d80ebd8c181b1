// Package redisclient holds the go-redis settings that every client of the
// service's session cache is made with: the service's own (openRedis in
// store.go, a single server or a cluster) and the bench's floor server,
// which must measure the same client to be a floor at all.
package redisclient

import (
	"cmp"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Defaults sets the service's defaults on a single server's options, in
// place; a setting the URL gave (protocol, dialer_retries, max_retries)
// is kept.
func Defaults(opts *redis.Options) {
	apply(fields{&opts.Protocol, &opts.ContextTimeoutEnabled, &opts.DisableIdentity,
		&opts.DialerRetries, &opts.MaxRetries, &opts.MaintNotificationsConfig})
}

// ClusterDefaults sets the same defaults on a cluster's options, in place.
func ClusterDefaults(opts *redis.ClusterOptions) {
	apply(fields{&opts.Protocol, &opts.ContextTimeoutEnabled, &opts.DisableIdentity,
		&opts.DialerRetries, &opts.MaxRetries, &opts.MaintNotificationsConfig})
}

// fields are the settings Defaults and ClusterDefaults share: the same
// fields of redis.Options and redis.ClusterOptions, which have no common
// interface.
type fields struct {
	protocol              *int
	contextTimeoutEnabled *bool
	disableIdentity       *bool
	dialerRetries         *int
	maxRetries            *int
	maintNotifications    **maintnotifications.Config
}

// apply sets, on both kinds of client:
//   - RESP2 unless the URL asks otherwise: the store uses nothing of RESP3,
//     and RESP3 costs every command a check for push notifications;
//   - deadlines from each operation's context, bounded by REDIS_TIMEOUT;
//   - a bare handshake: no CLIENT SETINFO, no maintenance notifications;
//   - one dial per attempt: a session cache that is down should cost a page
//     one refused dial, not go-redis's default of five dials 100 ms apart;
//   - no command retries (MaxRetries -1), unless the URL sets max_retries.
//     go-redis retries a failed dial or a dropped connection three times
//     with a 10 ms–1 s exponential back-off, which cost every page about
//     100 ms while Redis was down (the figures: docs/resilience.md).
//     The pool already drops connections that Redis closed before using
//     them, a timed-out command is not retried anyway, and the breaker
//     deals with a Redis that keeps failing: a retry would only make a
//     page wait for data it can do without. A cluster client retries on
//     another node within MaxRedirects, which failover needs; it is left so.
func apply(f fields) {
	*f.protocol = cmp.Or(*f.protocol, 2)
	*f.contextTimeoutEnabled, *f.disableIdentity = true, true
	*f.dialerRetries = cmp.Or(*f.dialerRetries, 1)
	*f.maxRetries = cmp.Or(*f.maxRetries, -1)
	*f.maintNotifications = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
}
