package chaos

import (
	"context"
	"errors"
	"io"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"example.com/shopsession/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// connSessionKeyPrefix names the keys the connection tests read, as the
// shop's session keys.
const connSessionKeyPrefix = "session:"

// connOptions make GETs of a session's key the reads, as the shop does.
var connOptions = Options{Reads: func(c Command) bool {
	return c.Name == "get" && strings.HasPrefix(c.Key, connSessionKeyPrefix)
}}

// connClient is a go-redis client of opts.Addr (the shared redis-server if
// empty) with the experiment env asks for instrumented, and with opts'
// other settings.
func connClient(t *testing.T, env map[string]string, opts redis.Options) (*redis.Client, *Experiment) {
	t.Helper()
	e := testExperiment(t, env, connOptions)
	return testClient(t, e, opts), e
}

// concurrentGets runs n GETs of session keys at once and returns their errors.
func concurrentGets(rdb *redis.Client, n int) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = rdb.Get(context.Background(), connSessionKeyPrefix+"pool").Err()
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
	}{{LayerConnection, 1}, {LayerCommand, 0}} {
		t.Run(tc.layer, func(t *testing.T) {
			rdb, e := connClient(t, map[string]string{"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "1", "CHAOS_COMMANDS": "get", "CHAOS_LAYER": tc.layer},
				redis.Options{PoolSize: 1, PoolTimeout: 200 * time.Millisecond, MaxRetries: -1})
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
			// The total counts both layers' delays; the connection layer's
			// are counted apart too.
			conn, command := e.conn.delays.Load(), e.delaysInjected.Load()-e.conn.delays.Load()
			if (tc.layer == LayerConnection) != (conn > 0 && command == 0) {
				t.Errorf("delays: %d at the connection layer, %d at the command layer; want them all at the %s layer", conn, command, tc.layer)
			}
		})
	}
}

// TestConnectionLatencyKeepsTheReadDeadline: a reply held back longer than
// the command's deadline fails as a timeout when the deadline passes, as a
// read from a slow network does, and go-redis drops that connection.
func TestConnectionLatencyKeepsTheReadDeadline(t *testing.T) {
	rdb, _ := connClient(t, map[string]string{"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "5", "CHAOS_LAYER": LayerConnection},
		redis.Options{ReadTimeout: 100 * time.Millisecond, MaxRetries: -1})
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

// busyScript keeps Redis busy for ARGV[1] microseconds by its own clock, a
// slow command.
const busyScript = `local s = redis.call('TIME')
repeat local n = redis.call('TIME') until (n[1] - s[1]) * 1000000 + (n[2] - s[2]) >= tonumber(ARGV[1])
return 1`

// TestConnectionLatencyComesOnTopOfRedisTime: a network's latency adds to
// the round trip, Redis's own time included, as toxiproxy's latency toxic
// adds it to each reply it passes on: a command Redis takes 60 ms over,
// delayed 50 ms at the connection layer, takes at least 110 ms, not the
// 60 ms of a delay counted from the write, which Redis's time hides.
func TestConnectionLatencyComesOnTopOfRedisTime(t *testing.T) {
	const busy, delay = 60 * time.Millisecond, 50 * time.Millisecond
	rdb, _ := connClient(t, map[string]string{"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "0.05", "CHAOS_LAYER": LayerConnection, "CHAOS_COMMANDS": "eval"},
		redis.Options{MaxRetries: -1})
	start := time.Now()
	if err := rdb.Eval(context.Background(), busyScript, nil, busy.Microseconds()).Err(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < busy+delay {
		t.Errorf("a command Redis took %v over, delayed %v, returned after %v: want at least %v", busy, delay, took, busy+delay)
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
		c.w.add(cmd.Name)
	}
	return c.Conn.Write(b)
}

// retryingOptions retry as go-redis does by default (the shop does not:
// MaxRetries -1), so that retries can be counted.
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
	replica := redistest.Own(t, "--replicaof", "127.0.0.1", testRedis.Addr()[len("127.0.0.1:"):])
	clusterNode := redistest.Own(t, "--cluster-enabled", "yes")

	for _, tc := range []struct {
		reply string
		real  *redistest.Server
		cmd   func(context.Context, *redis.Client) error
		name  string
	}{
		{"READONLY", replica, func(ctx context.Context, rdb *redis.Client) error { return rdb.Set(ctx, "k", "v", 0).Err() }, "set"},
		{"CLUSTERDOWN", clusterNode, func(ctx context.Context, rdb *redis.Client) error { return rdb.Get(ctx, "k").Err() }, "get"},
	} {
		t.Run(tc.reply, func(t *testing.T) {
			opts := retryingOptions(tc.real.Addr())
			wire := &wireCounter{}
			opts.Dialer = wire.dialer
			real := redis.NewClient(&opts)
			defer real.Close()
			realErr := tc.cmd(context.Background(), real)
			if realErr == nil || !strings.HasPrefix(realErr.Error(), tc.reply+" ") {
				t.Fatalf("the real server answered %v, want a %s reply", realErr, tc.reply)
			}
			realAttempts := wire.count(tc.name)

			for _, layer := range []string{LayerConnection, LayerCommand} {
				rdb, e := connClient(t, map[string]string{"CHAOS": "error", "CHAOS_ERROR_EVERY": "1", "CHAOS_LAYER": layer, "CHAOS_ERROR_REPLY": tc.reply},
					retryingOptions(testRedis.Addr()))
				err := rdb.Get(context.Background(), connSessionKeyPrefix+"replies").Err()
				attempts, replies := int(e.errorsInjected.Load()), int(e.conn.errorReplies.Load())
				want, wantReplies := realAttempts, realAttempts
				if layer == LayerCommand {
					want, wantReplies = 1, 0
				}
				if err == nil || err.Error() != realErr.Error() || attempts != want || replies != wantReplies {
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
	server := redistest.Own(t)
	opts := retryingOptions(server.Addr())
	wire := &wireCounter{}
	opts.Dialer = wire.dialer
	stopped := redis.NewClient(&opts)
	defer stopped.Close()
	if err := stopped.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	server.Stop()
	stoppedErr := stopped.Get(context.Background(), connSessionKeyPrefix+"stopped").Err()
	// A try either writes on the pooled connection Redis closed (which the
	// pool may catch first) or dials and is refused.
	stoppedTries := wire.count("get") + wire.count("dial")
	if stoppedErr == nil || stoppedTries != 4 {
		t.Fatalf("Redis stopped: %d tries (%d on the old connection), ending in %v; want 4 (MaxRetries 3)", stoppedTries, wire.count("get"), stoppedErr)
	}

	rdb, e := connClient(t, map[string]string{"CHAOS": "error", "CHAOS_ERROR_EVERY": "1", "CHAOS_LAYER": LayerConnection},
		retryingOptions(testRedis.Addr()))
	err := rdb.Get(context.Background(), connSessionKeyPrefix+"dropped").Err()
	if drops, dials := e.conn.drops.Load(), e.conn.dials.Load(); !errors.Is(err, io.EOF) || drops != int64(stoppedTries) || dials != drops {
		t.Errorf("connection layer: %d drops on %d connections, ending in %v; want %d, each on a new connection, ending in EOF", drops, dials, err, stoppedTries)
	}
	if stats := rdb.PoolStats(); stats.TotalConns != 0 {
		t.Errorf("pool stats %+v, want no connection left", stats)
	}

	rdb, e = connClient(t, map[string]string{"CHAOS": "error", "CHAOS_ERROR_EVERY": "1"}, retryingOptions(testRedis.Addr()))
	if err := rdb.Get(context.Background(), connSessionKeyPrefix+"command").Err(); err == nil || e.errorsInjected.Load() != 1 {
		t.Errorf("command layer: %d errors, ending in %v; want 1 CHAOS", e.errorsInjected.Load(), err)
	}
}

// TestParseRESPCommands: what the connection layer reads of a write, the
// commands go-redis sends whole in it, and nothing of what it cannot parse.
func TestParseRESPCommands(t *testing.T) {
	get := "*2\r\n$3\r\nGET\r\n$12\r\nsession:abcd\r\n"
	for _, tc := range []struct {
		name  string
		write string
		want  []respCommand
	}{
		{"one command, name in lower case", get, []respCommand{{Command{"get", "session:abcd"}, 2}}},
		{"a pipeline", "*1\r\n$4\r\nping\r\n" + get + "*3\r\n$3\r\nset\r\n$1\r\nk\r\n$1\r\nv\r\n",
			[]respCommand{{Command{"ping", ""}, 1}, {Command{"get", "session:abcd"}, 2}, {Command{"set", "k"}, 3}}},
		{"a binary-safe key", "*2\r\n$3\r\nget\r\n$4\r\na\r\nb\r\n", []respCommand{{Command{"get", "a\r\nb"}, 2}}},
		{"a command split across writes", get[:len(get)-4], nil},
		{"the whole first command, the rest split", get + get[:10], []respCommand{{Command{"get", "session:abcd"}, 2}}},
		{"an inline command", "PING\r\n", nil},
		{"a negative length", "*-1\r\n", nil},
		{"a length that is no number", "*x\r\n$3\r\nget\r\n", nil},
		{"no line end", "*2", nil},
		{"nothing", "", nil},
	} {
		if got := parseRESPCommands([]byte(tc.write)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %q parsed as %+v, want %+v", tc.name, tc.write, got, tc.want)
		}
	}
}

// BenchmarkConnWithNoExperiment measures what the connection wrapper costs a
// command's write and read while no experiment runs.
func BenchmarkConnWithNoExperiment(b *testing.B) {
	e := testExperiment(b, nil, Options{})
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
