package chaos

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// The fleet's rules on one instance and a real redis-server: the lease, the
// signature, replays, the halt, and the instance's own control beside the
// fleet's. fleet_chaos_test.go at the root runs three instances and ctl.

// testFleet is a fleet of its own on the shared redis-server.
func testFleet(t *testing.T) Fleet {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: testRedis.Addr(), Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { rdb.Close() })
	return Fleet{Redis: rdb, Name: "test-" + uuid.NewString()[:8], Instance: t.Name()}
}

// joined is an experiment with nothing running, instrumenting rdb if not
// nil, that joined f, and its log.
func joined(t *testing.T, f Fleet, token string, rdb *redis.Client) (*Experiment, *syncLog) {
	t.Helper()
	log := &syncLog{}
	e := testExperiment(t, nil, Options{Token: token, Logger: slog.New(slog.NewTextHandler(log, nil))})
	if rdb != nil {
		e.Instrument(rdb)
	}
	leave, err := e.Join(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(leave)
	return e, log
}

// ctl runs one ctl command on f with token and returns its output.
func ctl(ctx context.Context, f Fleet, token, stdin string, args ...string) (string, error) {
	out := &syncLog{}
	c := &Ctl{Fleet: f, Token: token, Program: "ctl", Stdin: strings.NewReader(stdin), Stdout: out, Stderr: io.Discard}
	err := c.Run(ctx, args)
	return out.String(), err
}

// signedRecord is an experiment record of body signed with key, ending in
// an hour, as ctl would write it, and not written.
func signedRecord(t *testing.T, f Fleet, key [32]byte, body string) (version int64, rec, sig string) {
	t.Helper()
	cfg, err := FromJSON([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	rec, sig, version, err = (&Ctl{Fleet: f}).record(context.Background(), key, cfg, time.Now().Add(time.Hour), "test")
	if err != nil {
		t.Fatal(err)
	}
	return version, rec, sig
}

// writeRecord writes a signed experiment record with key under a lease of
// ttl that nobody renews, as a controller that died would leave it.
func writeRecord(t *testing.T, f Fleet, key [32]byte, body string, ttl time.Duration) (version int64, rec, sig string) {
	t.Helper()
	version, rec, sig = signedRecord(t, f, key, body)
	k := f.keys()
	if err := startScript.Run(context.Background(), f.Redis, []string{k.experiment, k.halt}, rec, sig, "lease", ttl.Milliseconds(), "0", k.channel).Err(); err != nil {
		t.Fatal(err)
	}
	return version, rec, sig
}

// putRecord puts rec and sig in f's experiment key under a minute's lease,
// unannounced: what someone who can write to Redis leaves there.
func putRecord(f Fleet, rec, sig string) {
	ctx, k := context.Background(), f.keys()
	f.Redis.HSet(ctx, k.experiment, "record", rec, "sig", sig, "lease", "x")
	f.Redis.PExpire(ctx, k.experiment, time.Minute)
}

// readsMore waits for e to follow two more readings of the control plane,
// the first of which may have started before the caller's change.
func readsMore(t *testing.T, e *Experiment) {
	t.Helper()
	n := e.fleetReads.Load() + 2
	waitCondition(t, "two more readings", func() bool { return e.fleetReads.Load() >= n })
}

func fleetVersion(e *Experiment) int64 {
	s := e.Status("")
	if s.State != StateRunning {
		return 0
	}
	return s.Fleet.Version
}

const latencyBody = `{"experiment":"latency","delay_seconds":5,"commands":["get"]}`

// TestLeaseLapsesByItself: a lease nobody renews ends the experiment by its
// expiry, and the delay waiting in it, without a word from the control
// plane: the record is still in Redis when the lease read lapses.
func TestLeaseLapsesByItself(t *testing.T) {
	f := testFleet(t)
	rdb := redis.NewClient(&redis.Options{Addr: testRedis.Addr(), Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { rdb.Close() })
	e, _ := joined(t, f, testToken, rdb)
	const lease = 2 * time.Second
	v, _, _ := writeRecord(t, f, tokenDigest(testToken), latencyBody, lease)
	written := time.Now()
	waitCondition(t, "the record applied", func() bool { return fleetVersion(e) == v })
	// Redis must not expire it first: the instance stops on its own reading.
	f.Redis.Persist(context.Background(), f.keys().experiment)
	got := make(chan time.Time)
	go func() {
		rdb.Get(context.Background(), "k")
		got <- time.Now()
	}()
	returned := <-got
	late := returned.Sub(written.Add(lease))
	t.Logf("the delayed GET returned %v after the lease's expiry", late)
	if late > 100*time.Millisecond {
		t.Errorf("a delayed GET returned %v after the lease's expiry, want by it", late)
	}
	if s := e.Status(""); s.State != StateLapsed {
		t.Errorf("state %q after the lease lapsed, want %q", s.State, StateLapsed)
	}
}

// TestUnsignedRecordsAreIgnored: a record signed with another token, or
// tampered with, runs nowhere, and is logged once.
func TestUnsignedRecordsAreIgnored(t *testing.T) {
	f := testFleet(t)
	e, log := joined(t, f, testToken, nil)
	writeRecord(t, f, tokenDigest("another-token-0123456789"), latencyBody, time.Minute)
	waitCondition(t, "the refusal logged", func() bool { return strings.Contains(log.String(), "not signed with this fleet's control token") })
	readsMore(t, e)
	if v := fleetVersion(e); v != 0 {
		t.Errorf("fleet version %d runs, want none", v)
	}
	if n := strings.Count(log.String(), "ignored"); n != 1 {
		t.Errorf("refusal logged %d times, want once", n)
	}
	// A record signed with the token, changed before it is written: the
	// instance never sees the signed one, which it would run.
	_, rec, sig := signedRecord(t, f, tokenDigest(testToken), latencyBody)
	putRecord(f, strings.Replace(rec, `"delay_seconds":5`, `"delay_seconds":50`, 1), sig)
	waitCondition(t, "the tampered record refused", func() bool { return strings.Count(log.String(), "ignored") == 2 })
	readsMore(t, e)
	if v := fleetVersion(e); v != 0 {
		t.Errorf("a tampered record runs (version %d)", v)
	}
}

// TestReplayedRecordDoesNotRestart: a signed record that was stopped, written
// back as it was, does not start again.
func TestReplayedRecordDoesNotRestart(t *testing.T) {
	f := testFleet(t)
	e, log := joined(t, f, testToken, nil)
	v, rec, sig := writeRecord(t, f, tokenDigest(testToken), latencyBody, time.Minute)
	waitCondition(t, "the record applied", func() bool { return fleetVersion(e) == v })
	if _, err := ctl(context.Background(), f, testToken, "", "stop"); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, "the stop applied", func() bool { return fleetVersion(e) == 0 })
	putRecord(f, rec, sig)
	before := strings.Count(log.String(), "applied")
	readsMore(t, e)
	if got := fleetVersion(e); got != 0 || strings.Count(log.String(), "applied") != before {
		t.Errorf("the replayed version %d runs again", v)
	}
}

// TestHaltStopsAndRefusesEverything: a halt stops the instance's own
// experiment too, refuses its own Use while in force, survives its record's
// deletion (only a signed resume lifts it), and a resume lets Use through.
func TestHaltStopsAndRefusesEverything(t *testing.T) {
	f := testFleet(t)
	e, _ := joined(t, f, testToken, nil)
	cfg, _ := FromJSON([]byte(latencyBody))
	if err := e.Use(cfg); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := ctl(ctx, f, testToken, "", "halt", "-reason", "incident 42"); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, "the halt applied", func() bool { return e.Status("").State != StateRunning })
	err := e.Use(cfg)
	if err == nil || !strings.Contains(err.Error(), "incident 42") {
		t.Fatalf("Use while halted: %v, want a refusal naming the reason", err)
	}
	if err := e.Use(Off()); err != nil {
		t.Errorf("stopping while halted: %v", err)
	}
	f.Redis.Del(ctx, f.keys().halt) // not a resume: unsigned
	// With the halt's record gone ctl starts one; the instance refuses it.
	if _, err := ctl(ctx, f, testToken, latencyBody, "start", "-detach"); err != nil {
		t.Fatal(err)
	}
	readsMore(t, e)
	if e.Use(cfg) == nil {
		t.Fatal("deleting the halt's record lifted it")
	}
	if s := e.Status(""); s.State == StateRunning {
		t.Fatal("a fleet experiment started on a halted instance")
	}
	if _, err := ctl(ctx, f, testToken, "", "resume"); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, "the resume applied", func() bool { return e.Status("").Fleet.Halt == nil })
	waitCondition(t, "the detached experiment applied", func() bool { return fleetVersion(e) != 0 })
	if err := e.Use(cfg); err == nil {
		t.Error("Use while a fleet experiment runs here: accepted, want refused")
	}
	if _, err := ctl(ctx, f, testToken, "", "stop"); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, "the stop applied", func() bool { return fleetVersion(e) == 0 })
	if err := e.Use(cfg); err != nil {
		t.Errorf("Use after resume and stop: %v", err)
	}
}

// TestLocalStopHoldsUntilTheNextVersion: an instance's own DELETE stops the
// fleet's experiment there, which the same version read again does not
// restart; the fleet's next version (a patch) applies again.
func TestLocalStopHoldsUntilTheNextVersion(t *testing.T) {
	f := testFleet(t)
	e, _ := joined(t, f, testToken, nil)
	ctx := context.Background()
	out, err := ctl(ctx, f, testToken, latencyBody, "start", "-detach")
	if err != nil {
		t.Fatal(err)
	}
	waitCondition(t, "the start applied", func() bool { return fleetVersion(e) != 0 })
	e.Stop()
	readsMore(t, e)
	if v := fleetVersion(e); v != 0 {
		t.Fatalf("version %d runs again after a local stop (ctl said %q)", v, out)
	}
	if _, err := ctl(ctx, f, testToken, `{"delay_seconds":4}`, "patch"); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, "the patch applied", func() bool { return fleetVersion(e) != 0 })
	if d := e.Config().DelaySeconds; d != 4 {
		t.Errorf("delay %v after the patch, want 4", d)
	}
}

// TestPatchOfTheFaultsContinuesTheRun: a fleet patch of the delay keeps the
// run (its start, its groups' counts) on every instance, as a local PATCH
// does; one of the blast radius starts a new run.
func TestPatchOfTheFaultsContinuesTheRun(t *testing.T) {
	f := testFleet(t)
	e, _ := joined(t, f, testToken, nil)
	ctx := context.Background()
	if _, err := ctl(ctx, f, testToken, latencyBody, "start", "-detach"); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, "the start applied", func() bool { return fleetVersion(e) != 0 })
	if st, err := f.status(ctx, tokenDigest(testToken)); err != nil || st.Experiment == nil || !st.Experiment.Detached {
		t.Errorf("status of a detached start: %+v, %v; want it detached", st.Experiment, err)
	}
	first := e.active.Load()
	if _, err := ctl(ctx, f, testToken, `{"delay_seconds":3}`, "patch"); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, "the patch applied", func() bool { return fleetVersion(e) > first.fleetVersion })
	if e.active.Load().run != first.run {
		t.Error("a patch of the delay started a new run")
	}
	if _, err := ctl(ctx, f, testToken, `{"sessions_percent":50}`, "patch"); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, "the second patch applied", func() bool { return e.Config().SessionsPercent != nil })
	if e.active.Load().run == first.run {
		t.Error("a patch of the blast radius kept the run")
	}
	if _, err := ctl(ctx, f, testToken, `{"experiment":"none"}`, "patch"); err == nil {
		t.Error(`a patch to experiment "none" was taken; ctl stop stops`)
	}
}

// TestRecordConfigReadsBack: the record's body reads back as the experiment
// it was made of, whichever of error_every and error_rate it uses.
func TestRecordConfigReadsBack(t *testing.T) {
	for _, body := range []string{
		`{"experiment":"error","error_every":3,"seed":9}`,
		`{"experiment":"error","error_rate":0.25,"seed":9}`,
		`{"experiment":"latency","delay_seconds":0.05,"layer":"connection","error_reply":"LOADING","seed":9}`,
		`{"experiment":"latency,error","delay_seconds":0.2,"delay_jitter_seconds":0.1,"sessions_percent":12.5,"stop_degraded_share":0.5,"seed":9}`,
	} {
		cfg, err := FromJSON([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		back, err := FromJSON(recordConfig(cfg))
		if err != nil {
			t.Fatalf("%s: the record's body %s: %v", body, recordConfig(cfg), err)
		}
		a, _ := json.Marshal(back)
		b, _ := json.Marshal(cfg)
		if string(a) != string(b) {
			t.Errorf("%s read back as\n%s, want\n%s", body, a, b)
		}
	}
}

// TestPollAppliesWithoutTheChannel: a record written with no announcement
// (a lost message, a subscription being re-established) is applied by the
// poll within a second, and its removal stops it as soon.
func TestPollAppliesWithoutTheChannel(t *testing.T) {
	f := testFleet(t)
	e, _ := joined(t, f, testToken, nil)
	v, rec, sig := signedRecord(t, f, tokenDigest(testToken), latencyBody)
	ctx, k := context.Background(), f.keys()
	start := time.Now()
	putRecord(f, rec, sig)
	waitCondition(t, "the record applied", func() bool { return fleetVersion(e) == v })
	if took := time.Since(start); took > time.Second {
		t.Errorf("applied %v after the record was written, want within 1 s", took)
	}
	start = time.Now()
	f.Redis.Del(ctx, k.experiment)
	waitCondition(t, "the removal applied", func() bool { return fleetVersion(e) == 0 })
	if took := time.Since(start); took > time.Second {
		t.Errorf("stopped %v after the record was removed, want within 1 s", took)
	}
}

// TestHeartbeatAgeIsOnRedisClock: an instance whose clock is an hour behind
// is not flagged quiet while it reports, nor dropped; one that stopped
// reporting is, whatever its clock said.
func TestHeartbeatAgeIsOnRedisClock(t *testing.T) {
	f := testFleet(t)
	_, _ = joined(t, f, testToken, nil)
	ctx := context.Background()
	k := f.keys()
	waitCondition(t, "a heartbeat", func() bool { return f.Redis.HExists(ctx, k.seen, f.Instance).Val() })
	// The instance's clock an hour behind: its heartbeat says so.
	late, _ := json.Marshal(Heartbeat{Instance: "behind", At: time.Now().Add(-time.Hour), State: StateOff})
	beatScript.Run(ctx, f.Redis, []string{k.instances, k.seen}, "behind", late, time.Minute.Milliseconds())
	// One that stopped 10 s ago, by Redis's clock, with a fresh clock of its own.
	quiet, _ := json.Marshal(Heartbeat{Instance: "stopped", At: time.Now(), State: StateOff})
	f.Redis.HSet(ctx, k.instances, "stopped", quiet)
	f.Redis.HSet(ctx, k.seen, "stopped", time.Now().Add(-10*time.Second).UnixMilli())
	st, err := f.status(ctx, tokenDigest(testToken))
	if err != nil {
		t.Fatal(err)
	}
	flags := map[string]bool{}
	for _, is := range st.Instances {
		flags[is.Instance] = is.Quiet
	}
	if q, ok := flags["behind"]; !ok || q {
		t.Errorf("an instance with its clock an hour behind: listed %v, quiet %v; want listed, not quiet", ok, q)
	}
	if !flags["stopped"] {
		t.Errorf("an instance silent for 10 s by Redis's clock is not flagged quiet: %+v", flags)
	}
}
