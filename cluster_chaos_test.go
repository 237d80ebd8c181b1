//go:build chaos

package main

import (
	"fmt"
	"testing"

	"github.com/google/uuid"
)

// TestClusterLatencyExperiment: on a cluster the delay applies where the
// round trips happen, in each node's client, and a search is still two.
func TestClusterLatencyExperiment(t *testing.T) {
	app := startApp(t, map[string]string{"REDIS_URL": testCluster(t).url(), "CHAOS": "latency", "CHAOS_DELAY_SECONDS": "0.01"})
	ids := []string{uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()}
	for _, id := range ids { // the first search of each reaches its node and loads the slot map
		app.searchFor(t, id, "warm-up")
	}
	before := chaosStatusOf(t, app).Counters
	for _, id := range ids {
		if resp := app.searchFor(t, id, "apple"); !hasRecommendation(resp.body) {
			t.Errorf("no recommendation for a search under 10 ms latency")
		}
	}
	after := chaosStatusOf(t, app).Counters
	if trips, delays := after.RedisRoundTrips-before.RedisRoundTrips, after.DelaysInjected-before.DelaysInjected; trips != 8 || delays != 8 {
		t.Errorf("4 searches on the cluster made %d round trips and %d delays, want 8 and 8", trips, delays)
	}
}

// TestClusterErrorExperiment: every other read fails, whichever node holds
// the session.
func TestClusterErrorExperiment(t *testing.T) {
	app := startApp(t, map[string]string{"REDIS_URL": testCluster(t).url(), "CHAOS": "error"})
	for i := 1; i <= 8; i++ {
		resp := app.searchFor(t, fmt.Sprint("cluster-error-", i), "apple")
		if resp.status != 200 || hasRecommendation(resp.body) != (i%2 == 1) {
			t.Errorf("read %d: status %d, recommendation %v; want one on odd reads only", i, resp.status, hasRecommendation(resp.body))
		}
	}
	if c := chaosStatusOf(t, app).Counters; c.Reads != 8 || c.ErrorsInjected != 4 {
		t.Errorf("counters %+v, want 8 reads and 4 errors", c)
	}
}

// TestClusterConnectionLayer: the connection layer reaches the connections
// of every node: a search's two round trips are delayed on whichever node
// holds the session. Every other read's connection is dropped, and the
// cluster client, unlike the single-node one, retries a dropped connection
// (within MaxRedirects, see openRedis) as it would a real one: the retry is
// the next read in the count, which succeeds, so every page has
// recommendations and every read but the first is dropped once.
func TestClusterConnectionLayer(t *testing.T) {
	app := startApp(t, map[string]string{"REDIS_URL": testCluster(t).url(), "CHAOS": "latency", "CHAOS_DELAY_SECONDS": "0.01", "CHAOS_LAYER": "connection"})
	ids := []string{uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()}
	for _, id := range ids {
		app.searchFor(t, id, "warm-up")
	}
	before := chaosStatusOf(t, app).Counters
	for _, id := range ids {
		if resp := app.searchFor(t, id, "apple"); !hasRecommendation(resp.body) {
			t.Errorf("no recommendation for a search under 10 ms latency")
		}
	}
	after := chaosStatusOf(t, app).Counters
	// The totals count both layers: here, the connection layer's delays alone.
	delays, total := after.Connection.DelaysInjected-before.Connection.DelaysInjected, after.DelaysInjected-before.DelaysInjected
	if delays != 8 || total != delays {
		t.Errorf("4 searches on the cluster: %d delays at the connection layer, %d in all; want 8 and 8", delays, total)
	}

	if resp := putChaos(t, app, `{"experiment":"error","layer":"connection"}`); resp.status != 200 {
		t.Fatalf("PUT = %d %s", resp.status, resp.body)
	}
	for i := 1; i <= 8; i++ {
		resp := app.searchFor(t, fmt.Sprint("cluster-conn-error-", i), "apple")
		if resp.status != 200 || !hasRecommendation(resp.body) {
			t.Errorf("read %d: status %d, recommendation %v; want 200 with one, after a retry", i, resp.status, hasRecommendation(resp.body))
		}
	}
	if c := chaosStatusOf(t, app).Counters.Connection; c.ConnectionsDropped != 7 {
		t.Errorf("connection layer counters %+v, want 7 dropped connections, each retried", c)
	}
}
