package chaos

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Fleet is the control plane a fleet of instances shares: the Redis they
// already use. One experiment written there (Ctl) runs on every instance
// that joined it (Join), on a lease its controller renews: when the lease
// lapses, every instance stops by the lease's expiry as it last read it,
// without having to hear anything.
type Fleet struct {
	// Redis is a client of the control plane's own: never one an experiment
	// is hooked into (Instrument), so that no fault touches the control.
	// Join and Ctl do not close it.
	Redis redis.UniversalClient
	// Name is the fleet's, in its keys' hash tag ({Name:chaos}:…): services
	// that share a Redis keep apart by it. Empty: "chaos".
	Name string
	// Instance names this instance in the fleet's status; empty: host:pid,
	// and host:pid/N for the Nth experiment of a process to join.
	Instance string
	// Build names this binary in the fleet's status, so that an instance
	// running another one stands out; empty: the module's version and VCS
	// revision.
	Build string
}

const (
	// pollEvery is the fallback when the channel misses a change: it bounds
	// the time to apply and to stop, and keeps a renewed lease read well
	// before it would lapse (ctl renews every third of the lease, 2 s at
	// least).
	pollEvery = 500 * time.Millisecond
	// heartbeatEvery, and quietAfter without one: an instance that has gone
	// quiet.
	heartbeatEvery = time.Second
	quietAfter     = 3 * time.Second
	// readTimeout bounds one reading of the control plane, so that an
	// unanswering Redis does not hold the next one up.
	readTimeout = time.Second
)

// check refuses a Name that would split the fleet's keys over slots.
func (f *Fleet) check() error {
	if strings.ContainsAny(f.Name, "{}") || len(f.Name) > 64 {
		return fmt.Errorf("invalid chaos.Fleet.Name %q: want up to 64 characters without { or }: it is the keys' hash tag", f.Name)
	}
	return nil
}

func (f *Fleet) keys() fleetKeys {
	if f.Name == "" {
		return keysOf("chaos")
	}
	return keysOf(f.Name)
}

func (f *Fleet) instance() string {
	if f.Instance != "" {
		return f.Instance
	}
	host, _ := os.Hostname()
	id := fmt.Sprintf("%s:%d", host, os.Getpid())
	// Two experiments of one process (two services in one binary, or a
	// test's instances) must not overwrite each other's heartbeats.
	if n := joinedInProcess.Add(1); n > 1 {
		id += fmt.Sprintf("/%d", n)
	}
	return id
}

var joinedInProcess atomic.Int64

func (f *Fleet) build() string {
	if f.Build != "" {
		return f.Build
	}
	info, _ := debug.ReadBuildInfo()
	var revision, modified string
	if info != nil {
		for _, s := range info.Settings {
			switch {
			case s.Key == "vcs.revision" && len(s.Value) >= 12:
				revision = s.Value[:12]
			case s.Key == "vcs.modified" && s.Value == "true":
				modified = "+dirty"
			}
		}
	}
	if revision != "" {
		return revision + modified
	}
	// Built without VCS stamps (-buildvcs=false, a tarball): the binary's
	// own digest tells one build from another.
	if path, err := os.Executable(); err == nil {
		if f, err := os.Open(path); err == nil {
			defer f.Close()
			h := sha256.New()
			if _, err := io.Copy(h, f); err == nil {
				return "sha256:" + hex.EncodeToString(h.Sum(nil))[:12]
			}
		}
	}
	return "unknown"
}

// member is an instance's part in the fleet: it watches the control plane
// and writes its heartbeat.
type member struct {
	e        *Experiment
	f        Fleet
	k        fleetKeys
	id       string
	build    string          // the heartbeats' goroutine's: reading the binary takes a while
	warned   map[string]bool // what was logged once
	beat     chan struct{}
	stop     context.CancelFunc
	finished sync.WaitGroup
}

// Join makes e follow the fleet's experiment and halt, and report to the
// fleet's status, until leave is called: it reads the control plane at once
// and on every change announced, every half second anyway. A record e cannot
// verify (signed with another control token than e's) or refuses (its
// Options.Commands) is ignored and logged once. Call it after Instrument,
// and leave before closing f.Redis.
func (e *Experiment) Join(f Fleet) (leave func(), err error) {
	if f.Redis == nil {
		return nil, errors.New("chaos.Fleet.Redis is nil: want a Redis client of the control plane's own")
	}
	if err := f.check(); err != nil {
		return nil, err
	}
	id := f.instance()
	if !e.instance.CompareAndSwap(nil, &id) {
		return nil, errors.New("chaos: this experiment has joined a fleet already")
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{e: e, f: f, k: f.keys(), id: id, warned: map[string]bool{},
		beat: make(chan struct{}, 1), stop: cancel}
	e.member.Store(m)
	e.logger.Info("chaos fleet joined", "instance", id, "fleet", m.k.experiment)
	if e.tokenGenerated {
		e.logger.Warn("chaos fleet: this instance generated its control token, so it verifies no fleet record and runs no fleet experiment; give every instance and ctl the same " + envToken + " or " + envTokenFile)
	}
	m.finished.Add(2)
	go m.watch(ctx)
	go m.heartbeats(ctx)
	return func() {
		m.stop()
		m.finished.Wait()
		// Leaving, it hears of no stop any more: its part ends now.
		e.swap.Lock()
		e.stopFleet(e.active.Load().fleetVersion, "this instance left the fleet")
		e.swap.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
		defer cancel()
		f.Redis.HDel(ctx, m.k.instances, id)
		f.Redis.HDel(ctx, m.k.seen, id)
	}, nil
}

func (m *member) watch(ctx context.Context) {
	defer m.finished.Done()
	sub := m.f.Redis.Subscribe(ctx, m.k.channel)
	defer sub.Close()
	changes := sub.Channel()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		m.read(ctx)
		select {
		case <-ctx.Done():
			return
		case <-changes:
		case <-tick.C:
		}
	}
}

// read reads the control plane once and makes the experiment follow it.
func (m *member) read(ctx context.Context) {
	sent := time.Now()
	rctx, cancel := context.WithTimeout(ctx, readTimeout)
	v, err := readControl(rctx, m.f.Redis, m.k)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			m.once("unreachable", "chaos fleet control plane unreachable: a fleet experiment running here stops when its lease lapses", "err", err)
		}
		return
	}
	if m.warned["unreachable"] {
		delete(m.warned, "unreachable")
		m.e.logger.Info("chaos fleet control plane reachable again")
	}
	e := m.e
	e.swap.Lock()
	defer e.swap.Unlock()
	m.follow(v, sent)
	e.fleetReads.Add(1)
}

// follow applies reading v, made at sent. The caller holds e.swap.
func (m *member) follow(v controlView, sent time.Time) {
	e := m.e
	if v.halt != "" {
		var h haltRecord
		if err := verified(e.tokenDigest, m.k.halt, v.halt, v.haltSig, &h); err != nil {
			m.once("halt "+v.haltSig, "chaos fleet halt record ignored: "+err.Error())
		} else if h.Halted {
			e.setHalt(&h.Halt)
		} else {
			e.resume(h.Version, h.By)
		}
	}
	cur := e.active.Load()
	if v.experiment == "" {
		e.stopFleet(cur.fleetVersion, "its record is gone: stopped by ctl, or its lease expired")
		return
	}
	var rec experimentRecord
	err := verified(e.tokenDigest, m.k.experiment, v.experiment, v.experimentSig, &rec)
	var cfg Config
	if err == nil {
		if cfg, err = FromJSON(rec.Config); err == nil {
			err = e.check(&cfg)
		}
	}
	if err != nil {
		if errors.Is(err, errUnsigned) {
			json.Unmarshal([]byte(v.experiment), &rec) // for the log line alone
		}
		m.once("experiment "+v.experimentSig, "chaos fleet experiment ignored: "+err.Error(), "fleet_version", rec.Version)
		e.stopFleet(cur.fleetVersion, "its record was replaced by one this instance does not run")
		return
	}
	// PTTL: no expiry set (-1), or just expired (-2): no lease.
	if v.leaseLeft > 0 {
		if why := e.applyFleet(rec.Version, cfg, rec.EndsAt, v.leaseUntil(sent)); why != "" {
			m.once("not applied "+v.experimentSig, "chaos fleet experiment does not run here: "+why, "fleet_version", rec.Version)
		}
	}
	if e.active.Load() == cur && cur.fleetVersion != rec.Version {
		e.stopFleet(cur.fleetVersion, "its record was replaced by a version this instance does not run")
	}
}

// once logs msg the first time key comes up.
func (m *member) once(key, msg string, attrs ...any) {
	if m.warned[key] {
		return
	}
	if len(m.warned) > 64 { // records written to flood the log
		clear(m.warned)
	}
	m.warned[key] = true
	m.e.logger.Warn(msg, attrs...)
}

// changed has the fleet hear at once that the experiment changed here.
func (e *Experiment) changed() {
	if m := e.member.Load(); m != nil {
		m.kick()
	}
}

func (m *member) kick() {
	select {
	case m.beat <- struct{}{}:
	default:
	}
}
