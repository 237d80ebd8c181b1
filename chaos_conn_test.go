//go:build chaos

package main

import (
	"context"
	"errors"
	"example.com/shopsession/chaos"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// chaosClient is a go-redis client of addr with the experiment env asks for
// hooked in as the app hooks it, and with opts' other settings.
func chaosClient(t *testing.T, env map[string]string, opts redis.Options) (*redis.Client, *chaosExperiment) {
	t.Helper()
	e, err := newChaosExperiment(mapGetenv(env))
	if err != nil {
		t.Fatal(err)
	}
	opts.Protocol, opts.DisableIdentity = 2, true
	rdb := redis.NewClient(&opts)
	t.Cleanup(func() { rdb.Close() })
	rdb.AddHook(&chaosReadHook{e})
	rdb.AddHook(&chaosRoundTripHook{e})
	return rdb, e
}

// concurrentGets runs n GETs of session keys at once and returns their errors.
func concurrentGets(rdb *redis.Client, n int) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = rdb.Get(context.Background(), sessionKeyPrefix+"pool").Err()
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// TestConnectionLatencyHoldsThePooledConnection: two reads at once on a pool
// of one connection, each reply 1 s late. At the connection layer the first
// read holds the connection for the delay, so the second one's wait for it
// times out (200 ms), as behind a slow network; at the command layer the
// delay comes before a connection is taken and both reads succeed.
func TestConnectionLatencyHoldsThePooledConnection(t *testing.T) {
	for _, tc := range []struct {
		layer        string
		poolTimeouts uint32
	}{{chaos.LayerConnection, 1}, {chaos.LayerCommand, 0}} {
		t.Run(tc.layer, func(t *testing.T) {
			rdb, e := chaosClient(t, map[string]string{"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "1", "CHAOS_COMMANDS": "get", "CHAOS_LAYER": tc.layer},
				redis.Options{Addr: testRedis.addr(), PoolSize: 1, PoolTimeout: 200 * time.Millisecond, MaxRetries: -1})
			if err := rdb.Ping(context.Background()).Err(); err != nil { // the one connection is dialled
				t.Fatal(err)
			}
			var timeouts uint32
			for _, err := range concurrentGets(rdb, 2) {
				switch {
				case errors.Is(err, redis.ErrPoolTimeout):
					timeouts++
				case !errors.Is(err, redis.Nil):
					t.Errorf("GET: %v", err)
				}
			}
			stats := rdb.PoolStats()
			if timeouts != tc.poolTimeouts || stats.Timeouts != tc.poolTimeouts {
				t.Errorf("%d reads failed with a pool timeout, pool stats %+v; want %d", timeouts, stats, tc.poolTimeouts)
			}
			conn, command := e.conn.delays.Load(), e.delaysInjected.Load()
			if (tc.layer == chaos.LayerConnection) != (conn > 0 && command == 0) {
				t.Errorf("delays: %d at the connection layer, %d at the command layer; want them all at the %s layer", conn, command, tc.layer)
			}
		})
	}
}

// TestConnectionLatencyKeepsTheReadDeadline: a reply held back longer than
// the command's deadline fails as a timeout when the deadline passes, as a
// read from a slow network does, and go-redis drops that connection.
func TestConnectionLatencyKeepsTheReadDeadline(t *testing.T) {
	rdb, _ := chaosClient(t, map[string]string{"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "5", "CHAOS_LAYER": chaos.LayerConnection},
		redis.Options{Addr: testRedis.addr(), ReadTimeout: 100 * time.Millisecond, MaxRetries: -1})
	start := time.Now()
	err := rdb.Get(context.Background(), "k").Err()
	var netErr net.Error
	if took := time.Since(start); !errors.As(err, &netErr) || !netErr.Timeout() || took > time.Second {
		t.Errorf("GET after %v: %v, want a timeout after 100 ms", took, err)
	}
	if stats := rdb.PoolStats(); stats.TotalConns != 0 {
		t.Errorf("pool stats %+v, want the timed-out connection dropped", stats)
	}
}

// wireCounter counts the commands of each name a client writes to Redis: one
// per attempt, retries included.
type wireCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (w *wireCounter) dialer(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		w.add("dial")
		return nil, err
	}
	return &countingConn{Conn: conn, w: w}, nil
}

func (w *wireCounter) add(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.counts == nil {
		w.counts = map[string]int{}
	}
	w.counts[name]++
}

func (w *wireCounter) count(name string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.counts[name]
}

type countingConn struct {
	net.Conn
	w *wireCounter
}

func (c *countingConn) Write(b []byte) (int, error) {
	for _, cmd := range parseRESPCommands(b) {
		c.w.add(cmd.name)
	}
	return c.Conn.Write(b)
}

// retryingOptions retry as go-redis does by default (the app does not:
// MaxRetries -1, see openRedis), so that retries can be counted.
func retryingOptions(addr string) redis.Options {
	return redis.Options{Addr: addr, MaxRetries: 3, DialerRetries: 1}
}

// TestErrorRepliesAreRetriedAsFromAServer: a LOADING, READONLY or
// CLUSTERDOWN reply injected at the connection layer makes go-redis try the
// read as many times as the same reply from a real redis-server makes it try
// a command (a replica refusing a write: READONLY; a cluster node serving no
// slot: CLUSTERDOWN), and gives the caller the same error. At the command
// layer the reply is returned once, never retried.
func TestErrorRepliesAreRetriedAsFromAServer(t *testing.T) {
	replica, err := startRedisServer("--replicaof", "127.0.0.1", testRedis.addr()[len("127.0.0.1:"):])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(replica.stop)
	clusterNode, err := startRedisServer("--cluster-enabled", "yes")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(clusterNode.stop)

	for _, tc := range []struct {
		reply string
		real  *redisServer
		cmd   func(context.Context, *redis.Client) error
		name  string
	}{
		{"READONLY", replica, func(ctx context.Context, rdb *redis.Client) error { return rdb.Set(ctx, "k", "v", 0).Err() }, "set"},
		{"CLUSTERDOWN", clusterNode, func(ctx context.Context, rdb *redis.Client) error { return rdb.Get(ctx, "k").Err() }, "get"},
	} {
		t.Run(tc.reply, func(t *testing.T) {
			opts := retryingOptions(tc.real.addr())
			wire := &wireCounter{}
			opts.Dialer = wire.dialer
			real := redis.NewClient(&opts)
			defer real.Close()
			realErr := tc.cmd(context.Background(), real)
			if realErr == nil || !strings.HasPrefix(realErr.Error(), tc.reply+" ") {
				t.Fatalf("the real server answered %v, want a %s reply", realErr, tc.reply)
			}
			realAttempts := wire.count(tc.name)

			for _, layer := range []string{chaos.LayerConnection, chaos.LayerCommand} {
				rdb, e := chaosClient(t, map[string]string{"CHAOS": "error", "CHAOS_ERROR_EVERY": "1", "CHAOS_LAYER": layer, "CHAOS_ERROR_REPLY": tc.reply},
					retryingOptions(testRedis.addr()))
				err := rdb.Get(context.Background(), sessionKeyPrefix+"replies").Err()
				attempts := int(e.conn.errorReplies.Load() + e.errorsInjected.Load())
				want := realAttempts
				if layer == chaos.LayerCommand {
					want = 1
				}
				if err == nil || err.Error() != realErr.Error() || attempts != want {
					t.Errorf("%s layer: %d attempts ending in %v; a real server: %d attempts ending in %v; want %d attempts and the same error",
						layer, attempts, err, realAttempts, realErr, want)
				}
			}
			if realAttempts != 4 {
				t.Errorf("a real %s reply was tried %d times with MaxRetries 3, want 4", tc.reply, realAttempts)
			}
		})
	}
}

// TestDroppedConnectionIsRetriedLikeAStoppedRedis: a read whose connection
// the connection layer drops is tried as many times as a read of a Redis
// that was really stopped, each try on a new connection, and the pool holds
// no broken connection afterwards. The command layer's error is tried once.
func TestDroppedConnectionIsRetriedLikeAStoppedRedis(t *testing.T) {
	server := ownRedisServer(t)
	opts := retryingOptions(server.addr())
	wire := &wireCounter{}
	opts.Dialer = wire.dialer
	stopped := redis.NewClient(&opts)
	defer stopped.Close()
	if err := stopped.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	server.stop()
	stoppedErr := stopped.Get(context.Background(), sessionKeyPrefix+"stopped").Err()
	// A try either writes on the pooled connection Redis closed (which the
	// pool may catch first) or dials and is refused.
	stoppedTries := wire.count("get") + wire.count("dial")
	if stoppedErr == nil || stoppedTries != 4 {
		t.Fatalf("Redis stopped: %d tries (%d on the old connection), ending in %v; want 4 (MaxRetries 3)", stoppedTries, wire.count("get"), stoppedErr)
	}

	rdb, e := chaosClient(t, map[string]string{"CHAOS": "error", "CHAOS_ERROR_EVERY": "1", "CHAOS_LAYER": chaos.LayerConnection},
		retryingOptions(testRedis.addr()))
	err := rdb.Get(context.Background(), sessionKeyPrefix+"dropped").Err()
	if drops, dials := e.conn.drops.Load(), e.conn.dials.Load(); !errors.Is(err, io.EOF) || drops != int64(stoppedTries) || dials != drops {
		t.Errorf("connection layer: %d drops on %d connections, ending in %v; want %d, each on a new connection, ending in EOF", drops, dials, err, stoppedTries)
	}
	if stats := rdb.PoolStats(); stats.TotalConns != 0 {
		t.Errorf("pool stats %+v, want no connection left", stats)
	}

	rdb, e = chaosClient(t, map[string]string{"CHAOS": "error", "CHAOS_ERROR_EVERY": "1"}, retryingOptions(testRedis.addr()))
	if err := rdb.Get(context.Background(), sessionKeyPrefix+"command").Err(); err == nil || e.errorsInjected.Load() != 1 {
		t.Errorf("command layer: %d errors, ending in %v; want 1 CHAOS", e.errorsInjected.Load(), err)
	}
}

// TestConnectionLayerInTheApp: the connection layer over env and PUT. The
// latency delays both round trips of a search while the status counts them
// at the connection layer; the error drops every other read's connection and
// the page still renders, without recommendations.
func TestConnectionLayerInTheApp(t *testing.T) {
	const delay = 100 * time.Millisecond
	app := startApp(t, map[string]string{"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "0.1", "CHAOS_LAYER": "connection"})
	app.searchFor(t, "conn", "warm") // the script is loaded
	start := time.Now()
	if resp := app.searchFor(t, "conn", "apple"); resp.status != http.StatusOK || !hasRecommendation(resp.body) {
		t.Errorf("search with connection latency = %d, recommendation %v", resp.status, hasRecommendation(resp.body))
	}
	if took := time.Since(start); took < 2*delay || took > 4*delay {
		t.Errorf("a search took %v, want two %v delays", took, delay)
	}
	s := chaosStatusOf(t, app)
	if s.Layer != chaos.LayerConnection || s.Counters.Connection.DelaysInjected < 4 || s.Counters.DelaysInjected != 0 {
		t.Errorf("status %+v, counters %+v; want the delays at the connection layer", s.Config, s.Counters)
	}

	if resp := putChaos(t, app, `{"experiment":"error","layer":"connection"}`); resp.status != http.StatusOK {
		t.Fatalf("PUT = %d %s", resp.status, resp.body)
	}
	withRecs := 0
	for range 4 {
		resp := app.searchFor(t, "conn", "pear")
		if resp.status != http.StatusOK {
			t.Errorf("status %d", resp.status)
		}
		if hasRecommendation(resp.body) {
			withRecs++
		}
	}
	s = chaosStatusOf(t, app)
	if withRecs != 2 || s.Counters.Connection.ConnectionsDropped != 2 || s.Counters.ErrorsInjected != 0 {
		t.Errorf("%d of 4 pages with recommendations, counters %+v; want 2 and 2 dropped connections", withRecs, s.Counters)
	}
	app.logs.waitFor(t, regexp.MustCompile(`msg="redis error EOF" op=read`))
	m := scrape(t, app)
	m.expect(t, 1, "shopsession_chaos_connection_layer")
	m.expect(t, 2, "shopsession_chaos_connections_dropped_total")
	m.expect(t, float64(s.Counters.Connection.DelaysInjected), "shopsession_chaos_connection_delays_injected_total")
	m.expect(t, 0, "shopsession_chaos_delays_injected_total")
	m.expect(t, 0, "shopsession_chaos_errors_injected_total")
}

// BenchmarkConnWithNoExperiment measures what the connection wrapper costs a
// command's write and read while no experiment runs.
func BenchmarkConnWithNoExperiment(b *testing.B) {
	e, err := newChaosExperiment(mapGetenv(nil))
	if err != nil {
		b.Fatal(err)
	}
	conn, err := e.dialHook(func(context.Context, string, string) (net.Conn, error) { return nopConn{}, nil })(context.Background(), "tcp", "")
	if err != nil {
		b.Fatal(err)
	}
	cmd := []byte("*2\r\n$3\r\nget\r\n$17\r\nshop:session:bench\r\n")
	reply := make([]byte, 64)
	for b.Loop() {
		conn.Write(cmd)
		conn.Read(reply)
	}
}

// BenchmarkBareConn is the same without the wrapper, for comparison.
func BenchmarkBareConn(b *testing.B) {
	var conn net.Conn = nopConn{}
	cmd := []byte("*2\r\n$3\r\nget\r\n$17\r\nshop:session:bench\r\n")
	reply := make([]byte, 64)
	for b.Loop() {
		conn.Write(cmd)
		conn.Read(reply)
	}
}

type nopConn struct{ net.Conn }

func (nopConn) Write(b []byte) (int, error) { return len(b), nil }
func (nopConn) Read(b []byte) (int, error)  { return copy(b, "$-1\r\n"), nil }
