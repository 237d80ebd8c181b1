//go:build chaos

package main

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"example.com/shopsession/chaos"
)

// putChaos sends a PUT /debug/chaos with the control token and returns the
// response.
func putChaos(t *testing.T, app *testApp, body string) response {
	t.Helper()
	return changeChaos(t, app, http.MethodPut, testControlToken, body)
}

// deleteChaos stops the experiment, with the control token.
func deleteChaos(t *testing.T, app *testApp) response {
	t.Helper()
	return changeChaos(t, app, http.MethodDelete, testControlToken, "")
}

func TestSwitchExperimentAtRunTime(t *testing.T) {
	app := startApp(t, map[string]string{"CHAOS_SEED": "5"})
	if s := chaosStatusOf(t, app); s.Experiment != "none" || s.Seed != 5 {
		t.Fatalf("at start: %+v", s.Config)
	}
	resp := putChaos(t, app, `{"experiment":"latency","delay_seconds":0.05,"delay_jitter_seconds":0.01,"commands":["get"],"seed":9}`)
	if resp.status != http.StatusOK {
		t.Fatalf("PUT = %d %s", resp.status, resp.body)
	}
	want := chaos.Config{Experiment: "latency", DelaySeconds: 0.05, JitterSeconds: 0.01, Commands: []string{"get"}, ErrorEvery: 2, Seed: 9, Layer: chaos.LayerCommand,
		Guardrails: chaos.Guardrails{DurationSeconds: 1800}}
	s := chaosStatusOf(t, app)
	if !reflect.DeepEqual(s.Config, want) || s.ActiveSince.Latency == nil || s.ActiveSince.Error != nil {
		t.Errorf("after PUT: %+v since %+v, want %+v", s.Config, s.ActiveSince, want)
	}
	latencySince := *s.ActiveSince.Latency

	// Adding the error experiment keeps the latency's start and stamps the error's.
	putChaos(t, app, `{"experiment":"latency,error","delay_seconds":0.05,"error_every":3,"seed":9}`)
	s = chaosStatusOf(t, app)
	if s.ActiveSince.Latency == nil || !s.ActiveSince.Latency.Equal(latencySince) || s.ActiveSince.Error == nil || s.ErrorEvery != 3 {
		t.Errorf("after adding error: %+v since %+v", s.Config, s.ActiveSince)
	}

	for _, body := range []string{
		`{"experiment":"true"}`, `{"experiment":"slow"}`, `{"delay_seconds":61}`, `{"delay_seconds":-1}`,
		`{"error_rate":2}`, `{"error_every":0}`, `{"commands":["get*"]}`, `{"delay":1}`, `not json`, `{} {}`, `{"seed":-1}`,
	} {
		resp := putChaos(t, app, body)
		if resp.status != http.StatusBadRequest || len(resp.body) < 10 {
			t.Errorf("PUT %s = %d %q, want 400 with the reason", body, resp.status, resp.body)
		}
		if now := chaosStatusOf(t, app); now.Experiment != "latency,error" || now.ErrorEvery != 3 {
			t.Errorf("PUT %s changed the experiment to %+v", body, now.Config)
		}
	}

	if resp := deleteChaos(t, app); resp.status != http.StatusOK {
		t.Fatalf("DELETE = %d", resp.status)
	}
	before := chaosStatusOf(t, app).Counters
	start := time.Now()
	app.searchFor(t, "switched-off", "apple")
	after := chaosStatusOf(t, app)
	if after.Experiment != "none" || after.Counters.DelaysInjected != before.DelaysInjected || after.Counters.ErrorsInjected != before.ErrorsInjected {
		t.Errorf("after DELETE: %+v, %+v → %+v", after.Config, before, after.Counters)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("a search after DELETE took %v", time.Since(start))
	}
}

// TestSwitchingUnderLoad replaces the experiment over and over while clients
// search and read the status: every status shows one whole configuration.
func TestSwitchingUnderLoad(t *testing.T) {
	app := startApp(t, nil)
	configs := []string{
		`{"experiment":"latency","delay_seconds":0.001,"delay_jitter_seconds":0.001,"commands":["get"],"seed":11}`,
		`{"experiment":"error","error_rate":0.5,"seed":22}`,
		`{"experiment":"latency,error","delay_seconds":0.002,"error_every":3,"seed":33}`,
	}
	var allowed []chaos.Config
	for _, c := range configs {
		cfg, err := chaos.FromJSON([]byte(c))
		if err != nil {
			t.Fatal(err)
		}
		allowed = append(allowed, cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var statuses atomic.Int64
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				if resp := putChaos(t, app, configs[(w+i)%len(configs)]); resp.status != http.StatusOK {
					t.Errorf("PUT = %d", resp.status)
				}
			}
		})
	}
	for c := range 8 {
		wg.Go(func() {
			for ctx.Err() == nil {
				if resp := app.searchFor(t, "switching-"+string(rune('a'+c)), "apple"); resp.status != http.StatusOK {
					t.Errorf("search = %d", resp.status)
				}
			}
		})
	}
	wg.Go(func() {
		for ctx.Err() == nil {
			var s chaos.Status
			if err := json.Unmarshal([]byte(app.admin.get(t, "/debug/chaos", "").body), &s); err != nil {
				t.Error(err)
				return
			}
			statuses.Add(1)
			whole := s.Experiment == "none" // the start, before the first PUT
			for _, a := range allowed {
				whole = whole || reflect.DeepEqual(s.Config, a)
			}
			if !whole {
				t.Errorf("a status showed a mixed configuration: %+v", s.Config)
			}
		}
	})
	wg.Wait()
	t.Logf("%d statuses read while the experiment was replaced", statuses.Load())
}

// TestUntargetedCommandsGetNoDelay delays only GET: a search waits once, for
// its read, and its write goes through at once.
func TestUntargetedCommandsGetNoDelay(t *testing.T) {
	const delay = 300 * time.Millisecond
	app := startApp(t, map[string]string{"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "0.3", "CHAOS_COMMANDS": "get"})
	app.searchFor(t, "targeted", "warm-up")
	before := chaosStatusOf(t, app).Counters
	start := time.Now()
	app.searchFor(t, "targeted", "apple")
	took := time.Since(start)
	after := chaosStatusOf(t, app).Counters
	if trips, delays := after.RedisRoundTrips-before.RedisRoundTrips, after.DelaysInjected-before.DelaysInjected; trips != 2 || delays != 1 {
		t.Errorf("a search made %d round trips and %d delays, want 2 and 1", trips, delays)
	}
	if took < delay || took >= 2*delay {
		t.Errorf("a search took %v, want one %v delay, not two", took, delay)
	}
}
