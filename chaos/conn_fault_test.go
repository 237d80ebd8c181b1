package chaos

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestConnFaultSettings: conn_fault and its rate are refused, in one line
// naming the setting, the value and what is allowed, wherever they would
// inject nothing or something else than asked.
func TestConnFaultSettings(t *testing.T) {
	for body, want := range map[string]string{
		`{"experiment":"error","layer":"connection","conn_fault":"rst"}`:                                         `invalid conn_fault "rst": want eof (the connection dropped, the default), reset`,
		`{"experiment":"error","conn_fault":"reset"}`:                                                            `invalid conn_fault "reset": conn_fault reset needs layer connection`,
		`{"experiment":"error","layer":"connection","conn_fault":"blackhole","error_reply":"LOADING"}`:           `invalid conn_fault "blackhole": set one or the other: error_reply LOADING answers the failed read`,
		`{"experiment":"latency","layer":"connection","conn_fault":"blackhole"}`:                                 `invalid conn_fault "blackhole": conn_fault blackhole needs experiment error or latency,error`,
		`{"experiment":"error","layer":"connection","conn_fault":"slow_reply"}`:                                  `invalid slow_reply_bytes_per_second "0": want bytes per second above 0 with conn_fault slow_reply`,
		`{"experiment":"error","layer":"connection","slow_reply_bytes_per_second":100}`:                          `invalid slow_reply_bytes_per_second "100": want it unset, or conn_fault slow_reply`,
		`{"experiment":"error","layer":"connection","conn_fault":"slow_reply","slow_reply_bytes_per_second":-1}`: `invalid slow_reply_bytes_per_second "-1": want bytes per second above 0, up to 1e9`,
	} {
		if _, err := FromJSON([]byte(body)); err == nil || !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("PUT %s: %v, want one line beginning %q", body, err, want)
		}
	}
	_, err := FromEnv(mapGetenv(map[string]string{"CHAOS": "error", "CHAOS_LAYER": "connection", "CHAOS_CONN_FAULT": "slow_reply", "CHAOS_SLOW_REPLY_BYTES_PER_SECOND": "fast"}))
	if want := `invalid CHAOS_SLOW_REPLY_BYTES_PER_SECOND "fast": want bytes per second above 0`; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("FromEnv: %v, want %q", err, want)
	}
	for _, body := range []string{
		`{"experiment":"error","layer":"connection","conn_fault":"Reset"}`,
		`{"experiment":"error","conn_fault":"eof"}`,
		`{"experiment":"none","layer":"connection","conn_fault":"blackhole"}`,
		`{"experiment":"error","layer":"connection","conn_fault":"slow_reply","slow_reply_bytes_per_second":1000}`,
	} {
		if c, err := FromJSON([]byte(body)); err != nil || c.ConnFault != strings.ToLower(c.ConnFault) {
			t.Errorf("PUT %s: %v (conn_fault %q), want it taken, in lower case", body, err, c.ConnFault)
		}
	}
}

// TestResetReadFailsAsARealReset: a GET whose connection the connection
// layer resets fails as a GET does on a connection a peer really resets
// (a listener that closes with SO_LINGER 0 on the command): ECONNRESET, the
// same text, as many tries with MaxRetries 3 (4: go-redis retries a reset
// as it retries end of file), and no connection left in the pool.
func TestResetReadFailsAsARealReset(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int64
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conn.Read(make([]byte, 512)) // the command, then RST
			conn.(*net.TCPConn).SetLinger(0)
			conn.Close()
		}
	}()
	real := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), MaxRetries: 3, Protocol: 2, DisableIdentity: true})
	defer real.Close()
	realErr := real.Get(context.Background(), connSessionKeyPrefix+"reset").Err()

	rdb, e := connClient(t, map[string]string{"CHAOS": "error", "CHAOS_ERROR_EVERY": "1", "CHAOS_LAYER": LayerConnection, "CHAOS_CONN_FAULT": "reset"},
		redis.Options{MaxRetries: 3})
	err = rdb.Get(context.Background(), connSessionKeyPrefix+"reset").Err()
	for who, err := range map[string]error{"a real reset": realErr, "the connection layer": err} {
		if !errors.Is(err, syscall.ECONNRESET) || !strings.HasSuffix(err.Error(), "read: connection reset by peer") {
			t.Errorf("%s: GET returned %v, want ECONNRESET, \"read: connection reset by peer\"", who, err)
		}
	}
	if c := e.Status("").Counters.Connection; c.ConnectionsReset != accepted.Load() || c.ConnectionsDropped != 0 || c.Dials != c.ConnectionsReset || accepted.Load() != 4 {
		t.Errorf("counters %+v, and %d tries of a real reset; want 4 of both, each on a new connection, no drop", c, accepted.Load())
	}
	if stats := rdb.PoolStats(); stats.TotalConns != 0 {
		t.Errorf("pool stats %+v, want the reset connection gone", stats)
	}
	// A command that is not a read takes a new connection.
	if err := rdb.Set(context.Background(), "chaos-test:after-reset", "v", time.Minute).Err(); err != nil {
		t.Errorf("SET after the reset: %v", err)
	}
}

// TestBlackholeWaitsForTheDeadline: a blackholed GET fails when go-redis's
// read deadline passes, as a GET of a server that accepts and never answers
// does (a listener that reads and writes nothing): a timeout, not sooner,
// and the command never reached Redis.
func TestBlackholeWaitsForTheDeadline(t *testing.T) {
	const timeout = 150 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns sync.WaitGroup
	defer conns.Wait()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Go(func() { conn.Read(make([]byte, 512)); conn.Read(make([]byte, 1)); conn.Close() })
		}
	}()
	timed := func(rdb *redis.Client) (time.Duration, error) {
		start := time.Now()
		err := rdb.Get(context.Background(), connSessionKeyPrefix+"blackhole").Err()
		return time.Since(start), err
	}
	real := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), ReadTimeout: timeout, MaxRetries: -1, Protocol: 2, DisableIdentity: true})
	realTook, realErr := timed(real)
	real.Close()

	rdb, e := connClient(t, map[string]string{"CHAOS": "error", "CHAOS_ERROR_EVERY": "1", "CHAOS_LAYER": LayerConnection, "CHAOS_CONN_FAULT": "blackhole"},
		redis.Options{ReadTimeout: timeout, MaxRetries: -1})
	before := commandCalls(t, "get")
	took, err := timed(rdb)
	for who, r := range map[string]struct {
		took time.Duration
		err  error
	}{"a silent server": {realTook, realErr}, "the connection layer": {took, err}} {
		var netErr net.Error
		if !errors.As(r.err, &netErr) || !netErr.Timeout() || r.took < timeout || r.took > timeout+100*time.Millisecond {
			t.Errorf("%s: GET returned %v after %v, want a timeout after %v", who, r.err, r.took, timeout)
		}
	}
	if calls := commandCalls(t, "get"); calls != before {
		t.Errorf("Redis ran %d GETs during the blackhole, want none", calls-before)
	}
	if c := e.Status("").Counters.Connection; c.ReadsBlackholed != 1 {
		t.Errorf("counters %+v, want 1 read blackholed", c)
	}
}

// commandCalls is how many times the shared redis-server ran cmd.
func commandCalls(t *testing.T, cmd string) int {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: testRedis.Addr()})
	defer rdb.Close()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\r\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_"+cmd+":calls="); ok {
			n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			return n
		}
	}
	return 0
}

// TestSlowReplyTakesItsSize: at 20 000 bytes a second a 4 000-byte reply
// takes 200 ms and a nil reply (5 bytes) a fraction of a millisecond: the
// rate matters for big replies only, as on a saturated link.
func TestSlowReplyTakesItsSize(t *testing.T) {
	const rate, size = 20000, 4000
	key := connSessionKeyPrefix + "slow"
	seed := redis.NewClient(&redis.Options{Addr: testRedis.Addr()})
	defer seed.Close()
	if err := seed.Set(context.Background(), key, strings.Repeat("x", size), time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	rdb, e := connClient(t, map[string]string{"CHAOS": "error", "CHAOS_ERROR_EVERY": "1", "CHAOS_LAYER": LayerConnection,
		"CHAOS_CONN_FAULT": "slow_reply", "CHAOS_SLOW_REPLY_BYTES_PER_SECOND": "20000"}, redis.Options{ReadTimeout: 5 * time.Second, MaxRetries: -1})
	start := time.Now()
	v, err := rdb.Get(context.Background(), key).Result()
	took := time.Since(start)
	want := time.Duration(float64(size+len("$4000\r\n\r\n")) / rate * float64(time.Second))
	if err != nil || len(v) != size || took < want || took > want+150*time.Millisecond {
		t.Errorf("GET of %d bytes: %d bytes, %v, after %v; want them all after %v", size, len(v), err, took, want)
	}
	start = time.Now()
	err = rdb.Get(context.Background(), key+":absent").Err()
	if took := time.Since(start); err != redis.Nil || took > 50*time.Millisecond {
		t.Errorf("GET of an absent key: %v after %v, want redis.Nil within a few ms", err, took)
	}
	if c := e.Status("").Counters.Connection; c.SlowReplies != 2 {
		t.Errorf("counters %+v, want 2 slow replies", c)
	}
}

// TestConnFaultInFilesAndRecords: conn_fault and its rate are fields of an
// experiment file's fault, which refuses them as PUT does (a step has a
// blast radius, which the connection layer cannot draw), and a fleet's
// record of a slow reply reads back as the same experiment.
func TestConnFaultInFilesAndRecords(t *testing.T) {
	file := strings.Replace(goodFile, "experiment: latency, delay_seconds: 0.1",
		"experiment: error, error_every: 1, conn_fault: blackhole", 1)
	if _, err := parseRunFile("x.yaml", []byte(file)); err == nil || !strings.Contains(err.Error(), `invalid conn_fault "blackhole": conn_fault blackhole needs layer connection`) {
		t.Errorf("a step with conn_fault blackhole: %v, want it refused as PUT refuses it", err)
	}
	cfg, err := FromJSON([]byte(`{"experiment":"error","error_every":1,"layer":"connection","conn_fault":"slow_reply","slow_reply_bytes_per_second":500}`))
	if err != nil {
		t.Fatal(err)
	}
	back, err := FromJSON(recordConfig(cfg))
	if err != nil || back.ConnFault != ConnFaultSlowReply || back.SlowReplyBytesPerSecond != 500 || back.Seed != cfg.Seed {
		t.Errorf("the record %s read back as %+v, %v", recordConfig(cfg), back, err)
	}
}

// TestPatchChangesTheConnFault: a PATCH of conn_fault alone changes what
// the running experiment's failed reads get, on the same run; one that
// would leave a slow reply without its rate is refused, and the running
// experiment goes on unchanged.
func TestPatchChangesTheConnFault(t *testing.T) {
	rdb, e := connClient(t, map[string]string{"CHAOS": "error", "CHAOS_ERROR_EVERY": "1", "CHAOS_LAYER": LayerConnection}, redis.Options{MaxRetries: -1})
	if code, err := e.patch([]byte(`{"conn_fault":"slow_reply"}`)); code != 400 || err == nil || !strings.Contains(err.Error(), "slow_reply_bytes_per_second") {
		t.Errorf("PATCH slow_reply without its rate: %d %v, want 400 naming slow_reply_bytes_per_second", code, err)
	}
	if code, err := e.patch([]byte(`{"conn_fault":"reset"}`)); code != 200 || err != nil {
		t.Fatalf("PATCH conn_fault reset: %d %v", code, err)
	}
	err := rdb.Get(context.Background(), connSessionKeyPrefix+"patched").Err()
	if c := e.Status("").Counters.Connection; !errors.Is(err, syscall.ECONNRESET) || c.ConnectionsReset != 1 || c.ConnectionsDropped != 0 {
		t.Errorf("after the PATCH: GET %v, counters %+v; want one reset", err, c)
	}
}
