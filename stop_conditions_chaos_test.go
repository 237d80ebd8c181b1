//go:build chaos

package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// TestEvalshaLatencyTripsStopDegradedShare: latency on the shop's write
// (EVALSHA) beyond REDIS_TIMEOUT; every read succeeds, and the page says the
// query was not remembered (at the connection layer the write may land after
// the timeout, and the next page shows it). The degraded share sees it; the failed reads share cannot, and is checked first: at the
// connection layer a read may time out too, on the fresh connection each
// timed-out write leaves it to dial, but not half of them.
func TestEvalshaLatencyTripsStopDegradedShare(t *testing.T) {
	for _, layer := range []string{"command", "connection"} {
		t.Run(layer, func(t *testing.T) {
			app := startApp(t, guardEnv("CHAOS", "latency", "CHAOS_COMMANDS", "evalsha", "CHAOS_DELAY_SECONDS", "1",
				"CHAOS_LAYER", layer, "REDIS_TIMEOUT", "50ms", "CHAOS_STOP_WINDOW_SEARCHES", "10",
				"CHAOS_STOP_FAILED_READS_SHARE", "0.5", "CHAOS_STOP_DEGRADED_SHARE", "0.5"))
			id := uuid.NewString()
			n := 1
			for ; n <= 30; n++ {
				if page := app.searchFor(t, id, fmt.Sprint("lamp", n)); page.status != 200 || !strings.Contains(page.body, `id="not-remembered"`) {
					t.Fatalf("search %d: %d, not remembered %v; want 200 saying so, the write timing out", n, page.status, strings.Contains(page.body, `id="not-remembered"`))
				}
				if s := chaosStatusOf(t, app); s.State == "aborted" {
					break
				}
			}
			s := chaosStatusOf(t, app)
			if n != 10 || s.Abort == nil || s.Abort.Condition != "degraded_share" || s.Abort.Observed != 1 {
				t.Fatalf("every write timed out: aborted after %d searches (31: not in 30), abort %+v", n, s.Abort)
			}
			if page := app.searchFor(t, id, "lamp"); !hasRecommendation(page.body) {
				t.Errorf("a search after the abort has no recommendation")
			}
		})
	}
}
