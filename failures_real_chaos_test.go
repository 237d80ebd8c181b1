//go:build chaos

package main

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"example.com/shopsession/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// Each test here brings about a Redis failure for real on a redis-server
// under a load of searches, then injects its reply into the same shop on a
// healthy server under the same load at both layers, and compares what the
// service did (compareLoads). The figures are in docs/redis-failures.md.

const (
	failureClients = 8
	failureLoadFor = time.Second
	redisTimeout   = 2 * time.Second // the shop's default REDIS_TIMEOUT
)

// injectedLoad runs the load on a fresh redis-server with the experiment
// body put at layer, after the sessions are prefilled.
func injectedLoad(t *testing.T, name, body, layer string, remembered bool) failureLoad {
	t.Helper()
	server := ownRedisServer(t)
	app := startApp(t, map[string]string{"REDIS_URL": server.url()})
	sessions := loadSessions(name+"-"+layer, failureClients)
	prefill(t, app, sessions)
	body = strings.TrimSuffix(body, "}") + fmt.Sprintf(`,"layer":%q}`, layer)
	if resp := putChaos(t, app, body); resp.status != 200 {
		t.Fatalf("PUT %s = %d %s", body, resp.status, resp.body)
	}
	return searchLoad(t, app, server.client(t), sessions, failureLoadFor, remembered)
}

// compareAtBothLayers runs the injected load at each layer and compares it
// with the real one.
func compareAtBothLayers(t *testing.T, name, body string, real failureLoad, remembered bool) {
	t.Helper()
	t.Logf("%-32s %v", "real "+name+":", real)
	for _, layer := range []string{"connection", "command"} {
		injected := injectedLoad(t, name, body, layer, remembered)
		t.Logf("%-32s %v", "injected at the "+layer+" layer:", injected)
		compareLoads(t, name+" at the "+layer+" layer", injected, real, redisTimeout, failureClients)
	}
}

// infoField reads a number from INFO section's line prefix, such as
// "errorstat_NOSCRIPT:count=".
func infoField(t *testing.T, rdb *redis.Client, section, prefix string) int64 {
	t.Helper()
	info := rdb.Info(context.Background(), section).Val()
	m := regexp.MustCompile(regexp.QuoteMeta(prefix) + `(\d+)`).FindStringSubmatch(info)
	if m == nil {
		return 0
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

// TestNoScriptAgreesWithScriptFlush: SCRIPT FLUSH every 5 ms on the shop's
// redis-server under load makes some EVALSHAs of the compare-and-set get
// NOSCRIPT; go-redis's Script.Run answers each with EVAL, and no search is
// lost. Injected on the same share of EVALSHAs (error_rate), NOSCRIPT does
// the same: every search remembered, no breaker opened, the same round
// trips a page.
func TestNoScriptAgreesWithScriptFlush(t *testing.T) {
	server := ownRedisServer(t)
	app := startApp(t, map[string]string{"REDIS_URL": server.url()})
	rdb := server.client(t)
	sessions := loadSessions("noscript-real", failureClients)
	prefill(t, app, sessions)
	rdb.ConfigResetStat(context.Background())

	flushing, flushed := make(chan struct{}), make(chan int)
	go func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		n := 0
		for {
			select {
			case <-flushing:
				flushed <- n
				return
			case <-tick.C:
				if rdb.ScriptFlush(context.Background()).Err() == nil {
					n++
				}
			}
		}
	}()
	real := searchLoad(t, app, rdb, sessions, failureLoadFor, true)
	close(flushing)
	flushes := <-flushed
	noscripts := infoField(t, rdb, "errorstats", "errorstat_NOSCRIPT:count=")
	evalshas := infoField(t, rdb, "commandstats", "cmdstat_evalsha:calls=")
	if noscripts == 0 || evalshas == 0 {
		t.Fatalf("%d SCRIPT FLUSHes under load: %d EVALSHAs, %d of them NOSCRIPT; want some", flushes, evalshas, noscripts)
	}
	share := float64(noscripts) / float64(evalshas)
	t.Logf("%d SCRIPT FLUSHes: %d of %d EVALSHAs got NOSCRIPT (%.4f)", flushes, noscripts, evalshas, share)
	compareAtBothLayers(t, "NOSCRIPT", fmt.Sprintf(`{"experiment":"error","error_reply":"NOSCRIPT","commands":["evalsha"],"error_rate":%.6f}`, share), real, true)
}

// TestOOMAgreesWithMaxmemory: a redis-server at maxmemory with noeviction
// answers every write of the compare-and-set with OOM and every read with
// the interests stored. The write breaker opens, the read breaker stays
// closed, every page shows the interests read and no search is remembered,
// with OOM injected on EVALSHA and EVAL as with the real one.
func TestOOMAgreesWithMaxmemory(t *testing.T) {
	server := &redisServer{redistest.Own(t, "--maxmemory-policy", "noeviction")}
	app := startApp(t, map[string]string{"REDIS_URL": server.url()})
	rdb := server.client(t)
	sessions := loadSessions("oom-real", failureClients)
	prefill(t, app, sessions)
	// Anything stored is above 1 byte: every write is refused from now on.
	if err := rdb.ConfigSet(context.Background(), "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	real := searchLoad(t, app, rdb, sessions, failureLoadFor, false)
	if ooms := infoField(t, rdb, "errorstats", "errorstat_OOM:count="); ooms == 0 {
		t.Fatal("the server at maxmemory answered no write with OOM")
	}
	compareAtBothLayers(t, "OOM", `{"experiment":"error","error_reply":"OOM","commands":["evalsha","eval"],"error_every":1}`, real, false)
}

// TestBusyAgreesWithALongScript: a script that loops on the shop's
// redis-server past busy-reply-threshold makes it answer every command but
// SCRIPT KILL with BUSY: no read succeeds, the read breaker opens, nothing
// is written. BUSY injected on every GET, EVALSHA and EVAL does the same.
func TestBusyAgreesWithALongScript(t *testing.T) {
	server := &redisServer{redistest.Own(t, "--busy-reply-threshold", "10")}
	app := startApp(t, map[string]string{"REDIS_URL": server.url()})
	rdb := server.client(t)
	sessions := loadSessions("busy-real", failureClients)
	prefill(t, app, sessions)

	script, err := net.Dial("tcp", server.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer script.Close()
	fmt.Fprintf(script, "*3\r\n$4\r\neval\r\n$17\r\nwhile true do end\r\n$1\r\n0\r\n")
	deadline := time.Now().Add(5 * time.Second)
	for err := rdb.Get(context.Background(), "busy-probe").Err(); err == nil || err == redis.Nil || !strings.HasPrefix(err.Error(), "BUSY "); err = rdb.Get(context.Background(), "busy-probe").Err() {
		if time.Now().After(deadline) {
			t.Fatalf("the server never answered BUSY: %v", err)
		}
	}
	real := searchLoad(t, app, nil, sessions, failureLoadFor, false)
	if err := rdb.ScriptKill(context.Background()).Err(); err != nil {
		t.Fatalf("SCRIPT KILL: %v", err)
	}
	// The script ends at its next check for a kill, a moment later.
	deadline = time.Now().Add(5 * time.Second)
	for err := rdb.Get(context.Background(), "busy-probe").Err(); err != redis.Nil; err = rdb.Get(context.Background(), "busy-probe").Err() {
		if time.Now().After(deadline) {
			t.Fatalf("the server stayed busy after SCRIPT KILL: %v", err)
		}
	}
	real.checkStored(t, rdb, sessions, false)
	compareAtBothLayers(t, "BUSY", `{"experiment":"error","error_reply":"BUSY","commands":["get","evalsha","eval"],"error_every":1}`, real, false)
}

// TestMasterDownAgreesWithAStaleReplica: a replica with
// replica-serve-stale-data no whose master is stopped answers every read
// with MASTERDOWN: no page has its interests, the read breaker opens, and
// nothing is written. MASTERDOWN injected on every GET does the same.
func TestMasterDownAgreesWithAStaleReplica(t *testing.T) {
	// No delay before the replica's first sync (5 s by default).
	master := &redisServer{redistest.Own(t, "--repl-diskless-sync-delay", "0")}
	replica := &redisServer{redistest.Own(t, "--replicaof", "127.0.0.1", strconv.Itoa(master.port()), "--replica-serve-stale-data", "no")}
	sessions := loadSessions("masterdown-real", failureClients)
	prefill(t, startApp(t, map[string]string{"REDIS_URL": master.url()}), sessions)
	rdb := replica.client(t)
	last := sessionKeyPrefix + sessions[len(sessions)-1]
	deadline := time.Now().Add(10 * time.Second)
	for rdb.Get(context.Background(), last).Err() != nil { // replicated
		if time.Now().After(deadline) {
			t.Fatal("the replica never held the prefilled sessions")
		}
	}
	master.stop()
	for err := rdb.Get(context.Background(), last).Err(); err == nil || !strings.HasPrefix(err.Error(), "MASTERDOWN "); err = rdb.Get(context.Background(), last).Err() {
		if time.Now().After(deadline) {
			t.Fatalf("the replica never answered MASTERDOWN: %v", err)
		}
	}
	app := startApp(t, map[string]string{"REDIS_URL": replica.url()})
	real := searchLoad(t, app, nil, sessions, failureLoadFor, false)
	// What the replica holds, which it serves again once it may serve stale data.
	if err := rdb.ConfigSet(context.Background(), "replica-serve-stale-data", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	real.checkStored(t, rdb, sessions, false)
	compareAtBothLayers(t, "MASTERDOWN", `{"experiment":"error","error_reply":"MASTERDOWN","commands":["get"],"error_every":1}`, real, false)
}

// TestBusyServerBeforeItsThresholdBoundsPages: until busy-reply-threshold
// (2 s here, past the load) a server running a long script answers
// nothing; each page's Redis operation waits REDIS_TIMEOUT and fails, the
// read breaker opens, and every page is still a 200 within two operations'
// bound and 800 ms of a loaded machine's scheduling (under -race, with the
// script taking a core, pages took up to 674 ms); a page that waited for
// the server would take until the threshold.
func TestBusyServerBeforeItsThresholdBoundsPages(t *testing.T) {
	const timeout = 200 * time.Millisecond
	server := &redisServer{redistest.Own(t, "--busy-reply-threshold", "2000")}
	app := startApp(t, map[string]string{"REDIS_URL": server.url(), "REDIS_TIMEOUT": timeout.String()})
	rdb := server.client(t)
	sessions := loadSessions("busy-silent", failureClients)
	prefill(t, app, sessions)
	script, err := net.Dial("tcp", server.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer script.Close()
	fmt.Fprintf(script, "*3\r\n$4\r\neval\r\n$17\r\nwhile true do end\r\n$1\r\n0\r\n")
	load := searchLoad(t, app, nil, sessions, failureLoadFor, false)
	t.Logf("a server busy and silent for %v: %v", failureLoadFor, load)
	deadline := time.Now().Add(5 * time.Second)
	for err := rdb.ScriptKill(context.Background()).Err(); err != nil && !strings.HasPrefix(err.Error(), "NOTBUSY "); err = rdb.ScriptKill(context.Background()).Err() {
		if time.Now().After(deadline) {
			t.Fatalf("SCRIPT KILL: %v", err)
		}
	}
	for err := rdb.Get(context.Background(), "busy-probe").Err(); err != redis.Nil; err = rdb.Get(context.Background(), "busy-probe").Err() {
		if time.Now().After(deadline) {
			t.Fatalf("the server stayed busy after SCRIPT KILL: %v", err)
		}
	}
	load.checkStored(t, rdb, sessions, false)
	if load.non200 > 0 || load.wrongStored > 0 || load.max > 2*timeout+800*time.Millisecond || load.opened[string(reads)] == 0 {
		t.Errorf("%d pages not 200, %d sessions stored wrong, slowest page %v (REDIS_TIMEOUT %v), read breaker opened %d times; want none, none, within two timeouts, at least once",
			load.non200, load.wrongStored, load.max, timeout, load.opened[string(reads)])
	}
}
