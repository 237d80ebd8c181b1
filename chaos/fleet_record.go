package chaos

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// The fleet's records in Redis, and the scripts that change them, each in
// one step. Every key has the fleet's hash tag, so on a cluster they share a
// slot and a script may touch them all.
//
//	{name:chaos}:experiment  hash: record, sig, lease, detached; its TTL is the lease
//	{name:chaos}:halt        hash: record, sig, halted ("1" or "0"); no TTL
//	{name:chaos}:instances   hash: instance id → heartbeat
//	{name:chaos}:seen        hash: instance id → Redis's clock at its latest heartbeat, in ms
//	{name:chaos}:version     the last version handed out
//	{name:chaos}:control     the channel a change is announced on
//
// A record is JSON, signed with an HMAC keyed by the control token's digest:
// write access to Redis lets one delete a record (stop an experiment), never
// start, change or lengthen one, nor lift a halt an instance has seen. The
// signature covers the key the record is for, so that one signed for
// another key (an experiment's read as a resume) or another fleet sharing
// the token does not verify.

type fleetKeys struct{ experiment, halt, instances, seen, version, channel string }

func keysOf(name string) fleetKeys {
	tag := "{" + name + ":chaos}:"
	return fleetKeys{tag + "experiment", tag + "halt", tag + "instances", tag + "seen", tag + "version", tag + "control"}
}

// experimentRecord is a fleet experiment: every instance runs the same
// Config, its seed included, so a unit is in the same group on all of them.
type experimentRecord struct {
	Version int64           `json:"version"`
	Config  json.RawMessage `json:"config"` // a PUT body, every field named
	EndsAt  time.Time       `json:"ends_at"`
	Owner   string          `json:"owner"` // who started it: user@host pid
	At      time.Time       `json:"at"`    // when this version was written
}

// haltRecord is a halt (Halted) or the resume that lifts it.
type haltRecord struct {
	Halted bool `json:"halted"`
	Halt
}

// recordConfig is cfg as the PUT body that reads back as cfg: a body may
// name only one of error_every and error_rate, the one in use.
func recordConfig(cfg Config) json.RawMessage {
	body, _ := json.Marshal(cfg)
	var fields map[string]json.RawMessage
	json.Unmarshal(body, &fields)
	if cfg.ErrorRate > 0 {
		delete(fields, "error_every")
	} else {
		delete(fields, "error_rate")
	}
	body, _ = json.Marshal(fields)
	return body
}

func sign(key [sha256.Size]byte, at string, record []byte) string {
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte(at))
	m.Write([]byte{0}) // no key name holds a NUL: at and record stay apart
	m.Write(record)
	return hex.EncodeToString(m.Sum(nil))
}

var errUnsigned = errors.New("not signed with this fleet's control token")

// verified decodes record into v if sig is its signature under key, for the
// key at.
func verified(key [sha256.Size]byte, at, record, sig string, v any) error {
	want := sign(key, at, []byte(record))
	if !hmac.Equal([]byte(want), []byte(sig)) {
		return errUnsigned
	}
	if err := json.Unmarshal([]byte(record), v); err != nil {
		return fmt.Errorf("malformed: %v", err)
	}
	return nil
}

// controlView is one reading of the control plane: the experiment's record
// with the lease left on it, and the halt's.
type controlView struct {
	experiment, experimentSig string // "" when there is none
	leaseLeft                 time.Duration
	detached                  bool // its lease is its duration
	halt, haltSig             string
}

// leaseUntil is when the lease read at sent lapses: counted from before the
// reading left, so never later than Redis's own expiry.
func (v controlView) leaseUntil(sent time.Time) time.Time { return sent.Add(v.leaseLeft) }

var readScript = redis.NewScript(`
local e = redis.call('HMGET', KEYS[1], 'record', 'sig', 'detached')
local h = redis.call('HMGET', KEYS[2], 'record', 'sig')
return {e[1] or '', e[2] or '', redis.call('PTTL', KEYS[1]), h[1] or '', h[2] or '', e[3] or ''}`)

func readControl(ctx context.Context, rdb redis.Scripter, k fleetKeys) (controlView, error) {
	res, err := readScript.Run(ctx, rdb, []string{k.experiment, k.halt}).Slice()
	if err != nil {
		return controlView{}, err
	}
	if len(res) != 6 {
		return controlView{}, fmt.Errorf("control plane read: %d values, want 6", len(res))
	}
	str := func(v any) string { s, _ := v.(string); return s }
	ttl, _ := res[2].(int64)
	return controlView{experiment: str(res[0]), experimentSig: str(res[1]), leaseLeft: time.Duration(ttl) * time.Millisecond,
		detached: str(res[5]) == "1", halt: str(res[3]), haltSig: str(res[4])}, nil
}

// nextVersion hands out a version above every one before it, and above the
// wall clock's milliseconds, so that versions keep growing after the
// counter is lost (a Redis restarted without persistence): an instance
// refuses a version below one it ran.
var nextVersion = redis.NewScript(`
local v = redis.call('INCR', KEYS[1])
local t = tonumber(ARGV[1])
if v < t then redis.call('SET', KEYS[1], ARGV[1]); v = t end
return v`)

// startScript writes an experiment unless one runs or a halt is in force.
var startScript = redis.NewScript(`
if redis.call('HGET', KEYS[2], 'halted') == '1' then return {'halted', redis.call('HGET', KEYS[2], 'record')} end
local cur = redis.call('HGET', KEYS[1], 'record')
if cur then return {'running', cur} end
redis.call('HSET', KEYS[1], 'record', ARGV[1], 'sig', ARGV[2], 'lease', ARGV[3], 'detached', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PUBLISH', ARGV[6], 'experiment')
return {'ok', ''}`)

// renewScript extends the lease, if it is still the caller's, and returns
// the record (a patch may have moved its end).
var renewScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[1] then return false end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('HGET', KEYS[1], 'record')`)

// patchScript replaces the record, if it is still the one the patch was made
// from; a detached experiment's lease moves with its end.
var patchScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'record') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'record', ARGV[2], 'sig', ARGV[3])
if redis.call('HGET', KEYS[1], 'detached') == '1' then redis.call('PEXPIREAT', KEYS[1], ARGV[4]) end
redis.call('PUBLISH', ARGV[5], 'experiment')
return 1`)

// stopScript removes the experiment; with a lease (ARGV[2]), only if it is
// still that one.
var stopScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'record')
if ARGV[2] ~= '' and redis.call('HGET', KEYS[1], 'lease') ~= ARGV[2] then return false end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[1], 'experiment')
return cur`)

// haltScript writes a halt or a resume; a halt removes the experiment too.
var haltScript = redis.NewScript(`
redis.call('HSET', KEYS[2], 'record', ARGV[1], 'sig', ARGV[2], 'halted', ARGV[3])
if ARGV[3] == '1' then redis.call('DEL', KEYS[1]) end
redis.call('PUBLISH', ARGV[4], 'halt')
return 1`)
