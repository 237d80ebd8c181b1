//go:build chaos

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"example.com/shopsession/chaos"
	"github.com/redis/go-redis/v9"
)

// clusterSlot is a key's cluster hash slot (CRC16 XMODEM mod 16384); the
// shop's keys have no hash tag.
func clusterSlot(key string) int {
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}

// sessionsInOneSlot are n session ids named after name whose keys share
// one slot.
func sessionsInOneSlot(name string, n int) []string {
	slot := clusterSlot(sessionKeyPrefix + name + "-0")
	ids := []string{name + "-0"}
	for i := 1; len(ids) < n; i++ {
		if id := fmt.Sprint(name, "-", i); clusterSlot(sessionKeyPrefix+id) == slot {
			ids = append(ids, id)
		}
	}
	return ids
}

// migrating is a slot of c being moved from one master to another.
type migrating struct {
	slot           string
	from, to       *redis.Client
	fromID, toID   string
	others         []*redis.Client
	toHost, toPort string
}

// startMigrating starts moving the slot of key from its master to another.
func startMigrating(t *testing.T, c *redisCluster, key string) *migrating {
	t.Helper()
	ctx := context.Background()
	owner, err := c.client(t).MasterForKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	slot, err := owner.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	m := &migrating{slot: strconv.FormatInt(slot, 10)}
	for _, n := range c.nodes {
		client := n.client(t)
		id := client.Do(ctx, "cluster", "myid").Val().(string)
		switch {
		case n.addr() == owner.Options().Addr:
			m.from, m.fromID = client, id
		case m.to == nil:
			m.to, m.toID, m.toHost, m.toPort = client, id, "127.0.0.1", strconv.Itoa(n.port())
		default:
			m.others = append(m.others, client)
		}
	}
	if m.from == nil || m.to == nil {
		t.Fatalf("no master of %s among the cluster's nodes", owner.Options().Addr)
	}
	if err := m.to.Do(ctx, "cluster", "setslot", m.slot, "importing", m.fromID).Err(); err != nil {
		t.Fatal(err)
	}
	if err := m.from.Do(ctx, "cluster", "setslot", m.slot, "migrating", m.toID).Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

// moveKeys moves every key of the slot to the importing node, as
// redis-cli --cluster reshard does before it hands the slot over.
func (m *migrating) moveKeys(t *testing.T) int {
	t.Helper()
	ctx := context.Background()
	keys := m.from.ClusterGetKeysInSlot(ctx, mustAtoi(m.slot), 1000).Val()
	if len(keys) == 0 {
		return 0
	}
	args := []any{"migrate", m.toHost, m.toPort, "", 0, 5000, "keys"}
	for _, k := range keys {
		args = append(args, k)
	}
	if err := m.from.Do(ctx, args...).Err(); err != nil {
		t.Fatal(err)
	}
	return len(keys)
}

// handOver ends the migration: the slot is the importing node's.
func (m *migrating) handOver(t *testing.T) {
	t.Helper()
	for _, n := range append([]*redis.Client{m.to, m.from}, m.others...) {
		if err := n.Do(context.Background(), "cluster", "setslot", m.slot, "node", m.toID).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

func mustAtoi(s string) int { n, _ := strconv.Atoi(s); return n }

// TestRedirectsAgreeWithAMigratingSlot: a slot of the sessions really
// migrating between two masters of a cluster, its keys moved and the slot
// not yet handed over: every read and every compare-and-set of the
// sessions is sent on with ASK, which go-redis follows (ASKING, then the
// command, on the importing node): four round trips a page, every page
// with its recommendations, every search remembered. ASK injected at the
// connection layer on every GET and EVALSHA does the same on a cluster
// that is not migrating. Then the slot is handed over and the shop's slot
// table is stale: MOVED, which go-redis follows and reloads the table, with
// no page lost; MOVED injected at the same share of the commands does the
// same. At the command layer a redirect is returned, never followed: the
// read fails, as the test logs.
func TestRedirectsAgreeWithAMigratingSlot(t *testing.T) {
	c, err := startRedisCluster()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.stop)
	app := startApp(t, map[string]string{"REDIS_URL": c.url()})
	rdb := c.client(t)
	sessions := sessionsInOneSlot("migrating", failureClients)
	prefill(t, app, sessions)
	m := startMigrating(t, c, sessionKeyPrefix+sessions[0])
	moved := m.moveKeys(t)
	realAsk := searchLoad(t, app, rdb, sessions, failureLoadFor, true)
	asks := infoField(t, m.from, "errorstats", "errorstat_ASK:count=")
	t.Logf("%d keys moved; %d ASK replies", moved, asks)

	// A shop whose slot table is of before the hand-over: its first command
	// of the slot goes to the old master, which answers MOVED.
	stale := startApp(t, map[string]string{"REDIS_URL": c.url()})
	m.handOver(t)
	before := infoField(t, m.from, "errorstats", "errorstat_MOVED:count=")
	realMoved := searchLoad(t, stale, rdb, sessions, failureLoadFor, true)
	moves := infoField(t, m.from, "errorstats", "errorstat_MOVED:count=") - before
	commands := int64(2 * realMoved.pages)
	if asks == 0 || moves == 0 {
		t.Fatalf("the migration made %d ASK and %d MOVED replies; want some of each", asks, moves)
	}
	share := float64(moves) / float64(commands)
	t.Logf("after the hand-over: %d MOVED replies to %d commands (%.5f)", moves, commands, share)

	healthy := testCluster(t)
	for _, tc := range []struct {
		name, body string
		real       failureLoad
	}{
		{"ASK", `{"experiment":"error","error_reply":"ASK","commands":["get","evalsha"],"error_every":1`, realAsk},
		{"MOVED", fmt.Sprintf(`{"experiment":"error","error_reply":"MOVED","commands":["get","evalsha"],"error_rate":%.6f`, share), realMoved},
	} {
		t.Logf("%-40s %v", "real "+tc.name+":", tc.real)
		for _, layer := range []string{"connection", "command"} {
			app := startApp(t, map[string]string{"REDIS_URL": healthy.url()})
			sessions := loadSessions(tc.name+"-"+layer, failureClients)
			prefill(t, app, sessions)
			if resp := putChaos(t, app, tc.body+fmt.Sprintf(`,"layer":%q}`, layer)); resp.status != 200 {
				t.Fatalf("PUT = %d %s", resp.status, resp.body)
			}
			var stored redis.UniversalClient // the command layer fails some reads: no session holds a known value
			if layer == "connection" {
				stored = healthy.client(t)
			}
			injected := searchLoad(t, app, stored, sessions, failureLoadFor, true)
			t.Logf("%-40s %v", tc.name+" injected at the "+layer+" layer:", injected)
			switch {
			case layer == "connection" && tc.name == "ASK":
				compareLoads(t, tc.name+" at the connection layer", injected, tc.real, redisTimeout, failureClients)
			case layer == "connection":
				// Each MOVED also has go-redis reload its slot table (CLUSTER
				// SLOTS, a round trip): a real one's reload sends the slot's
				// next commands to its new node, an injected one's changes
				// nothing, so the round trips differ; the outcome does not.
				if injected.non200+injected.wrongStored > 0 || injected.recShare() < 0.99 || len(injected.opened) > 0 {
					t.Errorf("MOVED at the connection layer: %v; the real condition: %v", injected, tc.real)
				}
			case tc.name == "ASK" && injected.recShare() > 0:
				t.Errorf("ASK at the command layer: %.1f %% of pages with recommendations; a redirect the hook returns is never followed", 100*injected.recShare())
			}
		}
	}
}

// TestTryAgainAgreesWithAMigratingSlot: the shop sends no command of more
// than one key, which is all TRYAGAIN answers; a client that does (MGET)
// gets it from a slot whose keys are split between two masters, and
// go-redis's cluster client retries it (the same node, then another, after
// a backoff) until MaxRedirects. TRYAGAIN injected on every MGET of a
// cluster that is not migrating makes it try as often and end in the same
// error.
func TestTryAgainAgreesWithAMigratingSlot(t *testing.T) {
	c, err := startRedisCluster()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.stop)
	ctx := context.Background()
	rdb := c.client(t)
	keys := []string{"{tryagain}here", "{tryagain}gone"}
	for _, k := range keys {
		if err := rdb.Set(ctx, k, "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	m := startMigrating(t, c, keys[0])
	args := []any{"migrate", m.toHost, m.toPort, keys[1], 0, 5000}
	if err := m.from.Do(ctx, args...).Err(); err != nil {
		t.Fatal(err)
	}
	realErr := rdb.MGet(ctx, keys...).Err()
	realTries := infoField(t, m.from, "errorstats", "errorstat_TRYAGAIN:count=")
	if realErr == nil || !strings.HasPrefix(realErr.Error(), "TRYAGAIN ") {
		t.Fatalf("MGET of a split slot: %v, want TRYAGAIN", realErr)
	}

	cfg, err := chaos.FromJSON([]byte(`{"experiment":"error","error_reply":"TRYAGAIN","commands":["mget"],"error_every":1,"layer":"connection"}`))
	if err != nil {
		t.Fatal(err)
	}
	e, err := chaos.New(cfg, chaos.Options{Token: testControlToken, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	healthy := testCluster(t).client(t)
	e.Instrument(healthy)
	injectedErr := healthy.MGet(ctx, keys...).Err()
	injectedTries := e.Status("").Counters.ErrorsInjected
	t.Logf("TRYAGAIN: real %d tries ending in %v; injected %d tries ending in %v", realTries, realErr, injectedTries, injectedErr)
	if injectedErr == nil || injectedErr.Error() != realErr.Error() || injectedTries != realTries {
		t.Errorf("injected TRYAGAIN: %d tries ending in %v; the real one %d tries ending in %v", injectedTries, injectedErr, realTries, realErr)
	}
}
