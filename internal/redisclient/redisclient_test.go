package redisclient

import (
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// settings is what the tests read back from either kind of options.
type settings struct {
	protocol, dialerRetries, maxRetries int
	contextTimeout, disableIdentity     bool
	maint                               *maintnotifications.Config
}

func TestDefaults(t *testing.T) {
	single := func(o redis.Options) settings {
		Defaults(&o)
		return settings{o.Protocol, o.DialerRetries, o.MaxRetries, o.ContextTimeoutEnabled, o.DisableIdentity, o.MaintNotificationsConfig}
	}
	cluster := func(o redis.ClusterOptions) settings {
		ClusterDefaults(&o)
		return settings{o.Protocol, o.DialerRetries, o.MaxRetries, o.ContextTimeoutEnabled, o.DisableIdentity, o.MaintNotificationsConfig}
	}
	for _, tc := range []struct {
		name                                string
		got                                 settings
		protocol, dialerRetries, maxRetries int
	}{
		{"single, nothing set", single(redis.Options{Addr: "127.0.0.1:6379"}), 2, 1, -1},
		{"cluster, nothing set", cluster(redis.ClusterOptions{Addrs: []string{"127.0.0.1:7000"}}), 2, 1, -1},
		{"single, set by the URL", single(redis.Options{Protocol: 3, DialerRetries: 4, MaxRetries: 2}), 3, 4, 2},
		{"cluster, set by the URL", cluster(redis.ClusterOptions{Protocol: 3, DialerRetries: 4, MaxRetries: 2}), 3, 4, 2},
	} {
		g := tc.got
		if g.protocol != tc.protocol || g.dialerRetries != tc.dialerRetries || g.maxRetries != tc.maxRetries {
			t.Errorf("%s: protocol %d, dialer retries %d, max retries %d; want %d, %d, %d",
				tc.name, g.protocol, g.dialerRetries, g.maxRetries, tc.protocol, tc.dialerRetries, tc.maxRetries)
		}
		if !g.contextTimeout || !g.disableIdentity {
			t.Errorf("%s: ContextTimeoutEnabled %v, DisableIdentity %v; want both true", tc.name, g.contextTimeout, g.disableIdentity)
		}
		if g.maint == nil || g.maint.Mode != maintnotifications.ModeDisabled {
			t.Errorf("%s: maintenance notifications %+v; want disabled", tc.name, g.maint)
		}
	}
}

// TestParsedURLs: the defaults on what ParseURL and ParseClusterURL give,
// as the service and the bench's floor call them.
func TestParsedURLs(t *testing.T) {
	opts, err := redis.ParseURL("redis://127.0.0.1:6379/0?max_retries=5")
	if err != nil {
		t.Fatal(err)
	}
	Defaults(opts)
	if opts.MaxRetries != 5 || opts.DialerRetries != 1 || opts.Protocol != 2 {
		t.Errorf("single: max retries %d, dialer retries %d, protocol %d; want 5, 1, 2", opts.MaxRetries, opts.DialerRetries, opts.Protocol)
	}
	copts, err := redis.ParseClusterURL("redis://127.0.0.1:7000?addr=127.0.0.1:7001&protocol=3")
	if err != nil {
		t.Fatal(err)
	}
	ClusterDefaults(copts)
	if copts.MaxRetries != -1 || copts.DialerRetries != 1 || copts.Protocol != 3 {
		t.Errorf("cluster: max retries %d, dialer retries %d, protocol %d; want -1, 1, 3", copts.MaxRetries, copts.DialerRetries, copts.Protocol)
	}
}
