package chaos

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"example.com/shopsession/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// respCommandBytes is args as go-redis writes a command: an array of bulk
// strings.
func respCommandBytes(args ...string) []byte {
	b := []byte("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b = append(b, "$"+strconv.Itoa(len(a))+"\r\n"+a+"\r\n"...)
	}
	return b
}

// rawReply sends one command on conn and returns its reply's first line,
// CRLF included: the whole of an error reply.
func rawReply(t *testing.T, conn net.Conn, args ...string) string {
	t.Helper()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(respCommandBytes(args...)); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("%s: %v", args[0], err)
	}
	return line
}

func dialRedis(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// twoNodeCluster is a cluster of two masters: a serves every slot, b none.
func twoNodeCluster(t *testing.T) (a, b *redistest.Server) {
	t.Helper()
	var nodes []*redistest.Server
	for len(nodes) < 2 {
		port, err := redistest.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if port+10000 > 65535 { // the cluster bus's port
			continue
		}
		if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000)); err != nil {
			continue
		} else {
			ln.Close()
		}
		s, err := redistest.StartOn(port, "--cluster-enabled", "yes", "--cluster-node-timeout", "1000")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		nodes = append(nodes, s)
	}
	a, b = nodes[0], nodes[1]
	ctx := t.Context()
	ca, cb := redis.NewClient(&redis.Options{Addr: a.Addr()}), redis.NewClient(&redis.Options{Addr: b.Addr()})
	defer ca.Close()
	defer cb.Close()
	if err := ca.Do(ctx, "cluster", "addslotsrange", 0, 16383).Err(); err != nil {
		t.Fatal(err)
	}
	if err := ca.ClusterMeet(ctx, "127.0.0.1", strconv.Itoa(b.Port())).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, c := range []*redis.Client{ca, cb} {
		for !strings.Contains(c.ClusterInfo(ctx).Val(), "cluster_state:ok") || !strings.Contains(c.ClusterInfo(ctx).Val(), "cluster_known_nodes:2") {
			if time.Now().After(deadline) {
				t.Fatal("the two-node cluster never agreed it was up")
			}
			time.Sleep(20 * time.Millisecond) // polling the cluster's own state; nothing to wait on
		}
	}
	return a, b
}

// TestErrorRepliesAreARealServers: each error reply the connection layer
// injects is byte for byte what a real redis-server 7 sends when the
// condition is real (MOVED and ASK name the node the connection is to,
// the real one the node the slot is at), and go-redis returns the same
// error text for it at both layers.
func TestErrorRepliesAreARealServers(t *testing.T) {
	ctx := t.Context()
	oom := redistest.Own(t, "--maxmemory", "1", "--maxmemory-policy", "noeviction")
	nowhere, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	staleReplica := redistest.Own(t, "--replicaof", "127.0.0.1", strconv.Itoa(nowhere), "--replica-serve-stale-data", "no")
	busy := redistest.Own(t, "--busy-reply-threshold", "10")
	a, b := twoNodeCluster(t)

	// A slot migrating from a to b: a serves the keys it still holds, sends
	// the others to b (ASK), and refuses a command on both (TRYAGAIN).
	const here, gone = connSessionKeyPrefix + "{m}here", connSessionKeyPrefix + "{m}gone"
	slot := strconv.Itoa(keySlot(here))
	ca, cb := redis.NewClient(&redis.Options{Addr: a.Addr()}), redis.NewClient(&redis.Options{Addr: b.Addr()})
	defer ca.Close()
	defer cb.Close()
	if err := ca.Set(ctx, here, "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	idA, idB := ca.Do(ctx, "cluster", "myid").Val(), cb.Do(ctx, "cluster", "myid").Val()
	if err := cb.Do(ctx, "cluster", "setslot", slot, "importing", idA).Err(); err != nil {
		t.Fatal(err)
	}
	if err := ca.Do(ctx, "cluster", "setslot", slot, "migrating", idB).Err(); err != nil {
		t.Fatal(err)
	}

	// A script that runs until it is killed keeps busy answering BUSY.
	dialRedis(t, busy.Addr()).Write(respCommandBytes("eval", "while true do end", "0"))
	busyConn := dialRedis(t, busy.Addr())
	deadline := time.Now().Add(5 * time.Second)
	for !strings.HasPrefix(rawReply(t, busyConn, "get", connSessionKeyPrefix+"busy"), "-BUSY") {
		if time.Now().After(deadline) {
			t.Fatal("the server never got busy")
		}
	}
	t.Cleanup(func() { rawReply(t, busyConn, "script", "kill") })

	for _, tc := range []struct {
		reply string
		real  string // the address of the server in the real condition
		args  []string
	}{
		{"NOSCRIPT", testRedis.Addr(), []string{"evalsha", strings.Repeat("0", 40), "1", connSessionKeyPrefix + "noscript"}},
		{"OOM", oom.Addr(), []string{"set", connSessionKeyPrefix + "oom", "v"}},
		{"BUSY", busy.Addr(), []string{"get", connSessionKeyPrefix + "busy"}},
		{"MASTERDOWN", staleReplica.Addr(), []string{"get", connSessionKeyPrefix + "stale"}},
		{"MOVED", b.Addr(), []string{"get", connSessionKeyPrefix + "moved"}},
		{"ASK", a.Addr(), []string{"get", gone}},
		{"TRYAGAIN", a.Addr(), []string{"mget", here, gone}},
	} {
		t.Run(tc.reply, func(t *testing.T) {
			real := rawReply(t, dialRedis(t, tc.real), tc.args...)
			if !strings.HasPrefix(real, "-"+tc.reply+" ") {
				t.Fatalf("the real condition answered %q, want a %s reply", real, tc.reply)
			}
			env := map[string]string{"CHAOS": "error", "CHAOS_ERROR_EVERY": "1", "CHAOS_ERROR_REPLY": tc.reply, "CHAOS_COMMANDS": tc.args[0]}
			env["CHAOS_LAYER"] = LayerConnection
			e := testExperiment(t, env, connOptions)
			conn, err := e.dialHook(new(net.Dialer).DialContext)(ctx, "tcp", testRedis.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			want := real
			if redirects[tc.reply] { // the injected one names the node dialled
				want = strings.Replace(real, b.Addr(), testRedis.Addr(), 1)
				want = strings.Replace(want, a.Addr(), testRedis.Addr(), 1)
				if !strings.HasPrefix(real, fmt.Sprintf("-%s %d ", tc.reply, keySlot(tc.args[1]))) {
					t.Errorf("the real %q names another slot than keySlot's %d", real, keySlot(tc.args[1]))
				}
			}
			if got := rawReply(t, conn, tc.args...); got != want {
				t.Errorf("the connection layer injected %q, a real server sends %q", got, want)
			}

			// go-redis gives the caller the same error at both layers.
			realErr := redis.NewClient(&redis.Options{Addr: tc.real, MaxRetries: -1})
			defer realErr.Close()
			args := make([]any, len(tc.args))
			for i, a := range tc.args {
				args[i] = a
			}
			wantErr := strings.TrimSpace(want[1:])
			if err := realErr.Do(ctx, args...).Err(); err == nil || !strings.HasPrefix(err.Error(), tc.reply+" ") {
				t.Errorf("go-redis on the real server: %v", err)
			}
			for _, layer := range []string{LayerConnection, LayerCommand} {
				env["CHAOS_LAYER"] = layer
				rdb := testClient(t, testExperiment(t, env, connOptions), redis.Options{MaxRetries: -1, Protocol: 2, DisableIdentity: true})
				if err := rdb.Do(ctx, args...).Err(); err == nil || err.Error() != wantErr {
					t.Errorf("%s layer: go-redis returned %v, want %q", layer, err, wantErr)
				}
			}
		})
	}
}

// TestCommandsChooseWhatFails: with commands set, a failure applies to the
// commands listed and to nothing else, at both layers. NOSCRIPT on every
// EVALSHA makes go-redis's Script.Run fall back to EVAL, which is not
// listed and stores the value; the service's read, not listed either, is
// never failed and still counted as a read.
func TestCommandsChooseWhatFails(t *testing.T) {
	script := redis.NewScript(`return redis.call('SET', KEYS[1], ARGV[1])`)
	for _, layer := range []string{LayerConnection, LayerCommand} {
		t.Run(layer, func(t *testing.T) {
			ctx := t.Context()
			opts := redis.Options{Addr: testRedis.Addr(), MaxRetries: -1}
			wire := &wireCounter{}
			opts.Dialer = wire.dialer
			rdb, e := connClient(t, map[string]string{"CHAOS": "error", "CHAOS_ERROR_EVERY": "1", "CHAOS_LAYER": layer,
				"CHAOS_ERROR_REPLY": "NOSCRIPT", "CHAOS_COMMANDS": "evalsha"}, opts)
			if err := script.Load(ctx, rdb).Err(); err != nil {
				t.Fatal(err)
			}
			key := connSessionKeyPrefix + "noscript-" + layer
			for i := range 3 {
				if err := script.Run(ctx, rdb, []string{key}, fmt.Sprint("v", i)).Err(); err != nil {
					t.Errorf("run %d: %v, want the EVAL after the NOSCRIPT to succeed", i, err)
				}
				if got, err := rdb.Get(ctx, key).Result(); err != nil || got != fmt.Sprint("v", i) {
					t.Errorf("run %d stored %q (%v)", i, got, err)
				}
			}
			// At either layer the failed EVALSHA never reaches Redis.
			if c := e.Status("").Counters; c.ErrorsInjected != 3 || c.Reads != 3 || wire.count("eval") != 3 || wire.count("evalsha") != 0 {
				t.Errorf("counters %+v; %d EVALSHA and %d EVAL reached Redis; want 3 errors, 3 reads, no EVALSHA, 3 EVAL",
					c, wire.count("evalsha"), wire.count("eval"))
			}
		})
	}
}

// TestClusterClientFollowsInjectedRedirects: a MOVED or ASK that the
// connection layer injects names the node the connection is to, so
// go-redis's cluster client follows it to a real node that serves the key
// (ASK with ASKING first; MOVED reloading its slot table) and the read
// succeeds, one try later. The every Nth counts tries on the wire: MOVED's
// retry is one (so 4 reads make 7 tries, 3 of them redirected), ASK's is a
// pipeline of ASKING and the read, which the connection layer never fails.
// At the command layer the redirect is returned to the caller, never
// followed.
func TestClusterClientFollowsInjectedRedirects(t *testing.T) {
	a, b := twoNodeCluster(t)
	for _, reply := range []string{"MOVED", "ASK"} {
		for _, layer := range []string{LayerConnection, LayerCommand} {
			t.Run(reply+"/"+layer, func(t *testing.T) {
				ctx := t.Context()
				e := testExperiment(t, map[string]string{"CHAOS": "error", "CHAOS_ERROR_EVERY": "2", "CHAOS_LAYER": layer,
					"CHAOS_ERROR_REPLY": reply}, connOptions)
				wire := &wireCounter{}
				rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{a.Addr(), b.Addr()}, Dialer: wire.dialer})
				defer rdb.Close()
				e.Instrument(rdb)
				key := connSessionKeyPrefix + "redirect"
				if err := rdb.Set(ctx, key, "v", time.Minute).Err(); err != nil {
					t.Fatal(err)
				}
				for i := 1; i <= 4; i++ {
					got, err := rdb.Get(ctx, key).Result()
					failed := layer == LayerCommand && i%2 == 0
					if failed && (err == nil || err.Error() != fmt.Sprintf("%s %d %s", reply, keySlot(key), a.Addr())) {
						t.Errorf("read %d: %v, want the %s naming %s", i, err, reply, a.Addr())
					} else if !failed && (err != nil || got != "v") {
						t.Errorf("read %d: %q, %v; want the value", i, got, err)
					}
				}
				asking, errors := 0, int64(2)
				if layer == LayerConnection && reply == "ASK" {
					asking = 2
				} else if layer == LayerConnection {
					errors = 3
				}
				if c := e.Status("").Counters; c.ErrorsInjected != errors || wire.count("asking") != asking {
					t.Errorf("counters %+v, %d ASKING; want %d errors injected, %d ASKING", c, wire.count("asking"), errors, asking)
				}
			})
		}
	}
}
