package chaos

import (
	"context"
	"crypto/sha1"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The fleet's safety rules where a review found them failing open: a record
// signed for one key or one fleet read as another, a halt written out of
// order, a local stop of a lapsed run, and a halt the status did not show.

// haltedHere waits for the halt to be in force on e.
func haltedHere(t *testing.T, e *Experiment) {
	t.Helper()
	waitCondition(t, "the halt applied", func() bool { return e.Status("").Fleet.Halt != nil })
}

// TestExperimentRecordIsNoResume: a signed experiment record copied into the
// halt's key (by someone who can write to Redis but lacks the token) is not
// a signed resume: the halt stays in force.
func TestExperimentRecordIsNoResume(t *testing.T) {
	f := testFleet(t)
	e, _ := joined(t, f, testToken, nil)
	ctx := context.Background()
	if _, err := ctl(ctx, f, testToken, "", "halt", "-reason", "incident 42"); err != nil {
		t.Fatal(err)
	}
	haltedHere(t, e)
	// Any experiment record signed after the halt has a later version: the
	// one a ctl start writes once the halt's record is deleted, say.
	_, rec, sig := signedRecord(t, f, tokenDigest(testToken), latencyBody)
	f.Redis.HSet(ctx, f.keys().halt, "record", rec, "sig", sig, "halted", "0")
	readsMore(t, e)
	if h := e.Status("").Fleet.Halt; h == nil {
		t.Fatal("an experiment record written in the halt's key lifted the halt: it was read as a signed resume")
	}
	if cfg, _ := FromJSON([]byte(latencyBody)); e.Use(cfg) == nil {
		t.Error("Use accepted while halted")
	}
}

// TestRecordOfAnotherFleetDoesNotRun: two fleets that share a Redis and a
// token keep apart by their name; a record signed for one, copied into the
// other's key, runs nowhere.
func TestRecordOfAnotherFleetDoesNotRun(t *testing.T) {
	mine, other := testFleet(t), testFleet(t)
	e, _ := joined(t, mine, testToken, nil)
	_, rec, sig := writeRecord(t, other, tokenDigest(testToken), latencyBody, time.Minute)
	putRecord(mine, rec, sig)
	readsMore(t, e)
	if v := fleetVersion(e); v != 0 {
		t.Errorf("version %d of another fleet runs here", v)
	}
}

// TestHaltWrittenAfterAResumeHalts: a halt whose version is below the
// resume an instance read (two operators' halt and resume at once, the
// halt's write landing last; or the version counter lost with a Redis
// restart and a ctl whose clock is behind) is the halt Redis holds: ctl
// refuses to start, and so must every instance.
func TestHaltWrittenAfterAResumeHalts(t *testing.T) {
	f := testFleet(t)
	e, _ := joined(t, f, testToken, nil)
	ctx := context.Background()
	if _, err := ctl(ctx, f, testToken, "", "halt", "-reason", "first"); err != nil {
		t.Fatal(err)
	}
	haltedHere(t, e)
	// A second operator's ctl halt takes its version, then the first's ctl
	// resume is written, then the halt.
	halt, err := (&Ctl{Fleet: f}).version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ctl(ctx, f, testToken, "", "resume"); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, "the resume applied", func() bool { return e.Status("").Fleet.Halt == nil })
	k := f.keys()
	r, _ := json.Marshal(haltRecord{Halted: true, Halt: Halt{By: "op2", Reason: "incident 7", At: time.Now(), Version: halt}})
	if err := haltScript.Run(ctx, f.Redis, []string{k.experiment, k.halt}, r, signedAs(k.halt, r), "1", k.channel).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := ctl(ctx, f, testToken, latencyBody, "start", "-detach"); err == nil || !strings.Contains(err.Error(), "incident 7") {
		t.Fatalf("ctl start: %v, want refused by the halt", err)
	}
	readsMore(t, e)
	cfg, _ := FromJSON([]byte(latencyBody))
	if err := e.Use(cfg); err == nil {
		t.Error("Redis holds a halt and ctl refuses to start, but the instance's own Use was accepted: the halt was ignored")
	}
}

// TestLocalStopOfALapsedRunHolds: a local stop of the fleet's experiment
// that lapsed here (the instance could not read a renewal) holds until the
// fleet's next version, as one of a running experiment does: the renewed
// lease, read again, does not start the same version again.
func TestLocalStopOfALapsedRunHolds(t *testing.T) {
	f := testFleet(t)
	e, _ := joined(t, f, testToken, nil)
	v, _, _ := writeRecord(t, f, tokenDigest(testToken), latencyBody, 2*time.Second)
	waitCondition(t, "the record applied", func() bool { return fleetVersion(e) == v })
	ctx := context.Background()
	k := f.keys()
	// No lease to read: as if the instance could not read the renewals.
	f.Redis.Persist(ctx, k.experiment)
	waitCondition(t, "the lease lapsed", func() bool { return e.Status("").State == StateLapsed })
	e.Stop()
	// The control plane readable again, with the lease its controller renewed.
	f.Redis.PExpire(ctx, k.experiment, time.Minute)
	readsMore(t, e)
	if got := fleetVersion(e); got != 0 {
		t.Errorf("version %d started again after the instance's own stop", got)
	}
}

// TestStatusShowsAHaltedInstance: an instance stays halted when the halt's
// record is gone (a Redis restart without persistence lost it); the status
// says so, since the fleet's records no longer do.
func TestStatusShowsAHaltedInstance(t *testing.T) {
	f := testFleet(t)
	e, _ := joined(t, f, testToken, nil)
	ctx := context.Background()
	if _, err := ctl(ctx, f, testToken, "", "halt", "-reason", "incident 42"); err != nil {
		t.Fatal(err)
	}
	haltedHere(t, e)
	f.Redis.Del(ctx, f.keys().halt)
	waitCondition(t, "a heartbeat of the halt", func() bool {
		st, err := f.status(ctx, tokenDigest(testToken))
		return err == nil && len(st.Instances) == 1 && st.Instances[0].Halted
	})
	out, err := ctl(ctx, f, testToken, "", "status")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "HALTED") {
		t.Errorf("ctl status does not show the instance halted:\n%s", out)
	}
}

// signedAs is record's signature with the tests' token, for the key k.
func signedAs(k string, record []byte) string {
	return sign(tokenDigest(testToken), k, record)
}

// lateRenewal holds ctl's first renewal of the lease back until the lease
// has expired in Redis, as when ctl was paused (SIGSTOP, a VM paused).
type lateRenewal struct {
	t     *testing.T
	watch Fleet
	held  chan struct{} // closed once the renewal was held back
}

func (h lateRenewal) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h lateRenewal) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h lateRenewal) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		args := cmd.Args()
		var renewal bool
		if len(args) > 1 {
			script := fmt.Sprint(args[1])
			if args[0] == "eval" {
				script = fmt.Sprintf("%x", sha1.Sum([]byte(script)))
			}
			renewal = script == renewScript.Hash()
		}
		if !renewal {
			return next(ctx, cmd)
		}
		select {
		case <-h.held: // the script's EVAL after its EVALSHA's NOSCRIPT, or a later renewal
			return next(context.WithoutCancel(ctx), cmd)
		default:
		}
		close(h.held)
		deadline := time.Now().Add(10 * time.Second)
		for h.watch.Redis.Exists(context.Background(), h.watch.keys().experiment).Val() != 0 {
			if time.Now().After(deadline) {
				h.t.Error("the lease did not expire in Redis")
				break
			}
			runtime.Gosched()
		}
		// It reaches Redis late, not cancelled.
		return next(context.WithoutCancel(ctx), cmd)
	}
}

// TestHeldStartWhoseLeaseLapsedFails: a ctl start whose lease expired in
// Redis before a renewal reached it did not run its experiment to its end:
// it fails (exit 1), as it does when Redis is unreachable for the lease.
func TestHeldStartWhoseLeaseLapsedFails(t *testing.T) {
	f := testFleet(t)
	rdb := redis.NewClient(&redis.Options{Addr: testRedis.Addr(), Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { rdb.Close() })
	rdb.AddHook(lateRenewal{t: t, watch: f, held: make(chan struct{})})
	held := f
	held.Redis = rdb
	out, err := ctl(context.Background(), held, testToken, latencyBody, "start", "-lease", "2s")
	if err == nil {
		t.Errorf("ctl start returned no error (exit 0) though its lease expired after 2 s of the experiment's 30 min; it said:\n%s", out)
	}
}

// TestRecordEndedOnThisClockIsLogged: a record whose end time is already
// past on this instance's clock (its clock is ahead of ctl's by more than
// the experiment's duration) does not run here, and the log says why, once:
// it was ignored without a word.
func TestRecordEndedOnThisClockIsLogged(t *testing.T) {
	f := testFleet(t)
	e, log := joined(t, f, testToken, nil)
	cfg, _ := FromJSON([]byte(latencyBody))
	ctx := context.Background()
	c := &Ctl{Fleet: f}
	rec, sig, v, err := c.record(ctx, tokenDigest(testToken), cfg, time.Now().Add(-time.Minute), "test")
	if err != nil {
		t.Fatal(err)
	}
	k := f.keys()
	if err := startScript.Run(ctx, f.Redis, []string{k.experiment, k.halt}, rec, sig, "lease", time.Minute.Milliseconds(), "0", k.channel).Err(); err != nil {
		t.Fatal(err)
	}
	readsMore(t, e)
	readsMore(t, e)
	if got := fleetVersion(e); got != 0 {
		t.Fatalf("version %d runs past its end", got)
	}
	if n := strings.Count(log.String(), "past on this instance's clock"); n != 1 {
		t.Errorf("version %d not applied, logged %d times, want once naming its end on this clock:\n%s", v, n, log)
	}
}
