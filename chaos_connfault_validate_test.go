//go:build chaos

package main

import (
	"fmt"
	"math"
	"net/http"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/collectors"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// The connection faults (conn_fault) against the real conditions they
// imitate, on real redis-servers under the same load of 16 clients: a
// blackhole against a redis-server stopped with SIGSTOP, a reset against
// toxiproxy's reset_peer toxic, a slow reply against its bandwidth toxic.

const connFaultClients = 16

// toxicProxyTo starts a toxiproxy proxy on a free loopback port in front of
// upstream with one toxic on Redis's replies, and returns its address.
func toxicProxyTo(t *testing.T, upstream, toxic string) string {
	t.Helper()
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	server.Metrics.ProxyMetrics = collectors.NewProxyMetricCollectors()
	proxy := toxiproxy.NewProxy(server, "redis", "127.0.0.1:0", upstream)
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Stop)
	if _, err := proxy.Toxics.AddToxicJson(strings.NewReader(toxic)); err != nil {
		t.Fatal(err)
	}
	return proxy.Listen
}

// readBreakerOpened reports whether an app's log says its read breaker
// opened.
func readBreakerOpened(app *testApp) bool {
	return strings.Contains(app.logs.String(), `msg="redis circuit breaker open: serving pages without recommendations"`)
}

// failedReads counts the reads an app logged as failed: the pages that
// waited for Redis, while its breaker let them.
func failedReads(app *testApp) int {
	n := 0
	for line := range strings.SplitSeq(app.logs.String(), "\n") {
		if strings.Contains(line, `msg="redis error `) && strings.Contains(line, " op=read ") {
			n++
		}
	}
	return n
}

// heldPages are the pages of l that took at least at, and their median
// time.
func (l pageLoad) heldPages(at time.Duration) (int, time.Duration) {
	i, _ := slices.BinarySearch(l.times, at)
	held := l.times[i:]
	if len(held) == 0 {
		return 0, 0
	}
	return len(held), held[len(held)/2]
}

// median is the median page time of l.
func (l pageLoad) median() time.Duration { return l.times[len(l.times)/2] }

// agreeTime reports whether got is within 10 % of want.
func agreeTime(got, want time.Duration) bool {
	return math.Abs(float64(got-want)) <= 0.10*float64(want)
}

func (l pageLoad) slowest() time.Duration { return l.times[len(l.times)-1] }

// TestBlackholeAgreesWithRedisStopped: a redis-server stopped with SIGSTOP
// accepts connections and answers nothing; the connection layer's blackhole
// on every read does the same. In both the pages that reach for Redis wait
// for REDIS_TIMEOUT (300 ms), their median within 10 % of each other's and
// no more than REDIS_TIMEOUT and a quarter, and none longer than the two
// operations of REDIS_TIMEOUT a page may wait for;
// the read breaker opens, so that those pages stay within its bound; and
// every page is a 200 without recommendations.
func TestBlackholeAgreesWithRedisStopped(t *testing.T) {
	const d, timeout, failures = 2 * time.Second, 300 * time.Millisecond, 5
	env := map[string]string{"REDIS_TIMEOUT": timeout.String(), "BREAKER_FAILURES": fmt.Sprint(failures)}
	stopped := ownRedisServer(t)
	reference := startApp(t, withEnv(env, "REDIS_URL", stopped.url()))
	injected := startApp(t, withEnv(env, "REDIS_URL", ownRedisServer(t).url()))
	// Both pools dialled and warm before the fault, so that what the load
	// then measures is the fault, not the dials of its first moment.
	loadPages(t, reference, connFaultClients, 300*time.Millisecond)
	loadPages(t, injected, connFaultClients, 300*time.Millisecond)
	proc, err := os.FindProcess(redisPID(t, stopped.addr()))
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proc.Signal(syscall.SIGCONT) }) // before the server stops
	body := `{"experiment":"error","error_every":1,"layer":"connection","conn_fault":"blackhole"}`
	if resp := changeChaos(t, injected, http.MethodPut, testControlToken, body); resp.status != http.StatusOK {
		t.Fatalf("PUT %s: %d %s", body, resp.status, resp.body)
	}

	ref := loadPages(t, reference, connFaultClients, d)
	inj := loadPages(t, injected, connFaultClients, d)
	// The pages that waited for Redis: each logged its failed read (a loaded
	// machine also makes pages slow that never reached for Redis, so they
	// are not told by their time), and the slowest of them waited longest.
	refHeld, injHeld := failedReads(reference), failedReads(injected)
	_, refHeldMean := ref.heldPages(ref.times[len(ref.times)-min(refHeld, len(ref.times))])
	_, injHeldMean := inj.heldPages(inj.times[len(inj.times)-min(injHeld, len(inj.times))])
	t.Logf("redis-server SIGSTOPped: %v; %d pages waited, median %v", ref, refHeld, refHeldMean)
	t.Logf("blackhole:               %v; %d pages waited, median %v", inj, injHeld, injHeldMean)
	for _, run := range []struct {
		name string
		load pageLoad
		held int
		app  *testApp
	}{{"redis-server SIGSTOPped", ref, refHeld, reference}, {"blackhole", inj, injHeld, injected}} {
		if !readBreakerOpened(run.app) {
			t.Errorf("%s: the read breaker never opened", run.name)
		}
		if run.load.non200 > 0 || run.load.withRecs > 0 {
			t.Errorf("%s: %d non-200 pages, %d with recommendations; want none of either", run.name, run.load.non200, run.load.withRecs)
		}
		// A page's read and write are each bounded by REDIS_TIMEOUT; a
		// stall of a loaded machine (under -race, beside other tests) may
		// add to a page what no REDIS_TIMEOUT bounds, up to a second: a
		// read waiting for ever would still take the whole load.
		if s := run.load.slowest(); s > 2*timeout+time.Second {
			t.Errorf("%s: the slowest page took %v, want no more than two operations of REDIS_TIMEOUT %v (and a second of the machine's stalls)", run.name, s, timeout)
		}
		probes := strings.Count(run.app.logs.String(), `msg="redis circuit breaker half-open`)
		if limit := failures + connFaultClients*(2+probes); run.held < failures || run.held > limit {
			t.Errorf("%s: %d pages waited for Redis, want %d to %d: the breaker's failures and what was in flight at each of its %d probes",
				run.name, run.held, failures, limit, probes)
		}
	}
	if !agreeTime(injHeldMean, refHeldMean) || max(injHeldMean, refHeldMean) > timeout*5/4 {
		t.Errorf("pages that waited: median %v with the blackhole, %v with redis-server stopped: want them within 10 %% of each other, and REDIS_TIMEOUT %v",
			injHeldMean, refHeldMean, timeout)
	}
	if inj.counters.Connection.ReadsBlackholed == 0 {
		t.Errorf("connection layer %+v: no read blackholed", inj.counters.Connection)
	}
}

// TestResetAgreesWithARealReset: toxiproxy's reset_peer toxic resets every
// connection when Redis's first reply comes (SO_LINGER 0, an RST on the
// wire); the connection layer resets every read's connection. In both the
// log names the reset ("connection reset by peer"), the read breaker opens,
// every page is a 200 without recommendations, and the tries that reached
// for Redis (a new connection each) stay within the breaker's bound.
func TestResetAgreesWithARealReset(t *testing.T) {
	const d, failures = 2 * time.Second, 5
	env := map[string]string{"BREAKER_FAILURES": fmt.Sprint(failures)}
	server := ownRedisServer(t)
	proxy := toxicProxyTo(t, server.addr(), `{"type":"reset_peer","stream":"downstream","attributes":{"timeout":0}}`)
	reference := startApp(t, withEnv(env, "REDIS_URL", "redis://"+proxy+"/0"))
	injected := startApp(t, withEnv(env, "REDIS_URL", server.url(), "CHAOS", "error", "CHAOS_ERROR_EVERY", "1",
		"CHAOS_LAYER", "connection", "CHAOS_CONN_FAULT", "reset"))

	ref := loadPages(t, reference, connFaultClients, d)
	inj := loadPages(t, injected, connFaultClients, d)
	t.Logf("toxiproxy reset_peer: %v", ref)
	t.Logf("conn_fault reset:     %v", inj)
	for _, run := range []struct {
		name  string
		load  pageLoad
		app   *testApp
		tries int64
	}{
		{"toxiproxy reset_peer", ref, reference, ref.counters.Connection.Dials},
		{"conn_fault reset", inj, injected, inj.counters.Connection.ConnectionsReset},
	} {
		if !strings.Contains(run.app.logs.String(), "connection reset by peer") || !readBreakerOpened(run.app) {
			t.Errorf("%s: the log names no reset, or the read breaker never opened", run.name)
		}
		if run.load.non200 > 0 || run.load.withRecs > 0 {
			t.Errorf("%s: %d non-200 pages, %d with recommendations; want none of either", run.name, run.load.non200, run.load.withRecs)
		}
		probes := int64(strings.Count(run.app.logs.String(), `msg="redis circuit breaker half-open`))
		if limit := failures + 2*connFaultClients + probes; run.tries < failures || run.tries > limit {
			t.Errorf("%s: %d tries reached for Redis, want %d to %d (%d probes)", run.name, run.tries, failures, limit, probes)
		}
		t.Logf("%s: %d tries, %.4f per page", run.name, run.tries, run.load.perPage(uint32(run.tries)))
	}
}

// TestSlowReplyAgreesWithToxiproxyBandwidth: at 2 KB/s, a session's stored
// interests, three queries of 200 characters, take some 300 ms to come (far
// more than a page's CPU, even under -race), and the compare-and-set's
// reply (8 bytes) 4 ms: through toxiproxy's
// bandwidth toxic and with the connection layer's slow reply on every read,
// the pages' median time agrees within 10 % (the mean is logged: a loaded
// machine gives either run a few pages two or three times as slow), and no
// page fails.
func TestSlowReplyAgreesWithToxiproxyBandwidth(t *testing.T) {
	const d = 3 * time.Second
	query := func(n int) string { return strings.Repeat(string(rune('a'+n%5)), maxQueryRunes) }
	// A server each: the sessions' stored interests start empty in both.
	proxy := toxicProxyTo(t, ownRedisServer(t).addr(), `{"type":"bandwidth","stream":"downstream","attributes":{"rate":2}}`)
	reference := startApp(t, map[string]string{"REDIS_URL": "redis://" + proxy + "/0"})
	injected := startApp(t, map[string]string{"REDIS_URL": ownRedisServer(t).url(), "CHAOS": "error", "CHAOS_ERROR_EVERY": "1",
		"CHAOS_LAYER": "connection", "CHAOS_CONN_FAULT": "slow_reply", "CHAOS_SLOW_REPLY_BYTES_PER_SECOND": "2000"})

	ref := loadPagesOf(t, reference, connFaultClients, d, query)
	inj := loadPagesOf(t, injected, connFaultClients, d, query)
	t.Logf("toxiproxy bandwidth 2 KB/s: %v", ref)
	t.Logf("conn_fault slow_reply 2000: %v", inj)
	for _, q := range []int{10, 50, 90, 95} {
		t.Logf("p%d: %v toxiproxy, %v slow reply", q, ref.times[len(ref.times)*q/100], inj.times[len(inj.times)*q/100])
	}
	if !agreeTime(inj.median(), ref.median()) {
		t.Errorf("median page time: %v with the slow reply, %v through toxiproxy: more than 10 %% apart", inj.median(), ref.median())
	}
	if ref.non200+inj.non200 > 0 {
		t.Errorf("non-200 pages: %d through toxiproxy, %d with the slow reply", ref.non200, inj.non200)
	}
	if inj.counters.Connection.SlowReplies == 0 {
		t.Errorf("connection layer %+v: no slow reply", inj.counters.Connection)
	}
}
