package chaos

import (
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// gathered is what a registry holds, by series: name and labels.
type gathered map[string]float64

func gather(t *testing.T, reg *prometheus.Registry) gathered {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	g := gathered{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += " " + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case m.Counter != nil:
				g[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				g[key] = m.Gauge.GetValue()
			}
		}
	}
	return g
}

func (g gathered) expect(t *testing.T, want float64, series string) {
	t.Helper()
	if got, ok := g[series]; !ok || got != want {
		t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
	}
}

// TestRegisterExportsEveryMetric: Register adds the package's metrics under
// Namespace_chaos_, all of them, each series once with an empty run_id; a
// second Register on the same registry is an error, not a panic.
func TestRegisterExportsEveryMetric(t *testing.T) {
	e := testExperiment(t, nil, Options{Namespace: "shop"})
	reg := prometheus.NewRegistry()
	if err := e.Register(reg); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"shop_chaos_connection_delays_injected_total",
		"shop_chaos_connection_layer",
		"shop_chaos_connections_dropped_total",
		"shop_chaos_connections_reset_total",
		"shop_chaos_reads_blackholed_total",
		"shop_chaos_slow_replies_total",
		"shop_chaos_delay_seconds_total",
		"shop_chaos_delays_in_progress",
		"shop_chaos_delays_injected_total",
		"shop_chaos_delays_would_inject_total",
		"shop_chaos_dry_run experiment=error",
		"shop_chaos_dry_run experiment=latency",
		"shop_chaos_error_replies_injected_total",
		"shop_chaos_errors_injected_total",
		"shop_chaos_errors_would_inject_total",
		"shop_chaos_experiment_active experiment=error",
		"shop_chaos_experiment_active experiment=latency",
	}
	for _, name := range []string{"searches", "failed_reads", "degraded_searches", "delays_injected", "errors_injected",
		"delays_would_inject", "errors_would_inject", "search_seconds"} {
		for _, group := range []string{"control", "experiment"} {
			want = append(want, "shop_chaos_group_"+name+"_total chaos_group="+group)
		}
	}
	// Every series has the run id, "" while no run with one is on.
	for i := range want {
		want[i] += " run_id="
	}
	slices.Sort(want)
	g := gather(t, reg)
	if got := slices.Sorted(maps.Keys(g)); !slices.Equal(got, want) {
		t.Errorf("series:\n%q\nwant\n%q", got, want)
	}
	for series, v := range g {
		if v != 0 {
			t.Errorf("%s = %v with no experiment, want 0", series, v)
		}
	}
	var already prometheus.AlreadyRegisteredError
	if err := e.Register(reg); !errors.As(err, &already) {
		t.Errorf("a second Register = %v, want AlreadyRegisteredError", err)
	}
}

// TestMetricsFollowTheExperiment: the gauges say which fault kinds and
// which layer are active as Use changes them; the counters read what the
// hooks did, and the group counters what Middleware counted.
func TestMetricsFollowTheExperiment(t *testing.T) {
	e := testExperiment(t, map[string]string{"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "0.05", "CHAOS_COMMANDS": "get"}, Options{})
	reg := prometheus.NewRegistry()
	if err := e.Register(reg); err != nil {
		t.Fatal(err)
	}
	rdb := testClient(t, e, redis.Options{})
	g := gather(t, reg)
	g.expect(t, 1, "chaos_experiment_active experiment=latency run_id=")
	g.expect(t, 0, "chaos_experiment_active experiment=error run_id=")
	g.expect(t, 0, "chaos_connection_layer run_id=")

	// A page that reads, and degrades as the shop's search does when the
	// read fails: still a 200.
	page := e.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rdb.Get(r.Context(), "chaos-test:metrics")
	}))
	search := func() {
		rec := httptest.NewRecorder()
		page.ServeHTTP(rec, httptest.NewRequest("GET", "/search", nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("page = %d %s", rec.Code, rec.Body)
		}
	}
	for range 2 {
		search()
	}
	g = gather(t, reg)
	g.expect(t, 2, "chaos_delays_injected_total run_id=")
	// Measured, not delays × the setting: at least the two delays, and less
	// than a delay more than them.
	if waited := g["chaos_delay_seconds_total run_id="]; waited < 0.1 || waited > 0.15 {
		t.Errorf("delay seconds = %v, want from 0.1 to 0.15 for two delays of 0.05", waited)
	}
	g.expect(t, 2, "chaos_group_searches_total chaos_group=experiment run_id=")
	g.expect(t, 2, "chaos_group_delays_injected_total chaos_group=experiment run_id=")
	g.expect(t, 0, "chaos_group_searches_total chaos_group=control run_id=")

	cfg, err := FromJSON([]byte(`{"experiment":"error","error_every":1}`))
	if err != nil {
		t.Fatal(err)
	}
	e.Use(cfg)
	search()
	g = gather(t, reg)
	g.expect(t, 0, "chaos_experiment_active experiment=latency run_id=")
	g.expect(t, 1, "chaos_experiment_active experiment=error run_id=")
	g.expect(t, 1, "chaos_errors_injected_total run_id=")
	g.expect(t, 3, "chaos_group_searches_total chaos_group=experiment run_id=")
	g.expect(t, 1, "chaos_group_failed_reads_total chaos_group=experiment run_id=")
	g.expect(t, 1, "chaos_group_degraded_searches_total chaos_group=experiment run_id=")
	g.expect(t, 1, "chaos_group_errors_injected_total chaos_group=experiment run_id=")

	cfg, err = FromJSON([]byte(`{"experiment":"latency","layer":"connection"}`))
	if err != nil {
		t.Fatal(err)
	}
	e.Use(cfg)
	gather(t, reg).expect(t, 1, "chaos_connection_layer run_id=")
	e.Stop()
	g = gather(t, reg)
	g.expect(t, 0, "chaos_connection_layer run_id=")
	g.expect(t, 0, "chaos_experiment_active experiment=latency run_id=")
	g.expect(t, 0, "chaos_experiment_active experiment=error run_id=")
	// The totals only grow: a new experiment does not reset them.
	g.expect(t, 2, "chaos_delays_injected_total run_id=")
	g.expect(t, 3, "chaos_group_searches_total chaos_group=experiment run_id=")
}
