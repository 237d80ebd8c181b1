package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Heartbeats and the fleet's one status: each instance writes what it runs
// every second, into one hash of the fleet's, which lives ten minutes past
// the last heartbeat; the status reads them all and flags an instance gone
// quiet or running another version.

// Heartbeat is what an instance reports to the fleet.
type Heartbeat struct {
	Instance string `json:"instance"`
	Build    string `json:"build"`
	// Version is the fleet experiment's version it runs or last ran; 0:
	// its own.
	Version    int64  `json:"version"`
	State      string `json:"state"`
	Experiment string `json:"experiment"`
	Halted     bool   `json:"halted"`
	// RunID is the run id of the experiment it runs; empty when none runs.
	RunID  string                  `json:"run_id,omitempty"`
	At     time.Time               `json:"at"`
	Groups map[string]GroupFigures `json:"groups,omitempty"`
}

const (
	// instancesLive is how long the heartbeats outlive the last one, and
	// forgotten how old one must be to leave the status: an instance that
	// stopped long ago, not one gone quiet.
	instancesLive = 10 * time.Minute
	forgotten     = 5 * time.Minute
)

func (m *member) heartbeats(ctx context.Context) {
	defer m.finished.Done()
	m.build = m.f.build()
	tick := time.NewTicker(heartbeatEvery)
	defer tick.Stop()
	for {
		m.heartbeat(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-m.beat:
		}
	}
}

func (m *member) heartbeat(ctx context.Context) {
	s := m.e.Status("")
	hb := Heartbeat{Instance: m.id, Build: m.build, Version: s.Fleet.Version, State: s.State,
		Experiment: s.Experiment, Halted: s.Fleet.Halt != nil, RunID: s.RunID, At: time.Now(), Groups: s.Groups}
	body, _ := json.Marshal(hb)
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	// The watch logs the control plane's outages.
	beatScript.Run(ctx, m.f.Redis, []string{m.k.instances, m.k.seen}, m.id, body, instancesLive.Milliseconds())
}

// beatScript writes a heartbeat with the time Redis received it: its age
// is then read on one clock, Redis's, whatever the instances' and ctl's
// clocks say.
var beatScript = redis.NewScript(`
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local t = redis.call('TIME')
redis.call('HSET', KEYS[2], ARGV[1], t[1] * 1000 + math.floor(t[2] / 1000))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1`)

// FleetStatus is the fleet as its control plane has it: the running
// experiment, the halt, and every instance's latest heartbeat.
type FleetStatus struct {
	Experiment *FleetExperiment `json:"experiment"`
	Halt       *Halt            `json:"halt"`
	Instances  []InstanceStatus `json:"instances"`
	// Groups sum the instances' groups.
	Groups map[string]GroupFigures `json:"groups"`
}

// FleetExperiment is the fleet's running experiment.
type FleetExperiment struct {
	Version    int64           `json:"version"`
	Config     json.RawMessage `json:"config"`
	EndsAt     time.Time       `json:"ends_at"`
	Owner      string          `json:"owner"`
	At         time.Time       `json:"at"`
	LeaseLeft  float64         `json:"lease_left_seconds"`
	Detached   bool            `json:"detached"`
	Unverified bool            `json:"unverified,omitempty"` // not signed with this control token
}

// InstanceStatus is one instance's heartbeat and what stands out about it.
type InstanceStatus struct {
	Heartbeat
	AgeSeconds float64 `json:"age_seconds"`
	// Quiet: no heartbeat for 3 s. OtherVersion: it runs another version
	// than the fleet's experiment, or one when none runs. OtherBuild: its
	// build is not the one most instances run.
	Quiet        bool `json:"quiet"`
	OtherVersion bool `json:"other_version"`
	OtherBuild   bool `json:"other_build"`
}

// fleetStatus reads the control plane's status.
func (f *Fleet) status(ctx context.Context, key [32]byte) (FleetStatus, error) {
	k := f.keys()
	v, err := readControl(ctx, f.Redis, k)
	if err != nil {
		return FleetStatus{}, err
	}
	beats, err := f.Redis.HGetAll(ctx, k.instances).Result()
	if err != nil {
		return FleetStatus{}, err
	}
	seen, err := f.Redis.HGetAll(ctx, k.seen).Result()
	if err != nil {
		return FleetStatus{}, err
	}
	now, err := f.Redis.Time(ctx).Result()
	if err != nil {
		return FleetStatus{}, err
	}
	st := FleetStatus{Groups: map[string]GroupFigures{}}
	if v.experiment != "" {
		var rec experimentRecord
		err := verified(key, k.experiment, v.experiment, v.experimentSig, &rec)
		if err == errUnsigned {
			json.Unmarshal([]byte(v.experiment), &rec)
		}
		st.Experiment = &FleetExperiment{Version: rec.Version, Config: rec.Config, EndsAt: rec.EndsAt,
			Owner: rec.Owner, At: rec.At, LeaseLeft: v.leaseLeft.Seconds(), Detached: v.detached, Unverified: err != nil}
	}
	if v.halt != "" {
		var h haltRecord
		if verified(key, k.halt, v.halt, v.haltSig, &h) == nil && h.Halted {
			st.Halt = &h.Halt
		}
	}
	builds := map[string]int{}
	for id, body := range beats {
		var hb Heartbeat
		if err := json.Unmarshal([]byte(body), &hb); err != nil {
			hb = Heartbeat{Instance: id, State: fmt.Sprintf("unreadable heartbeat: %v", err)}
		}
		at := hb.At // an instance of a build that did not stamp its heartbeats
		if ms, err := strconv.ParseInt(seen[id], 10, 64); err == nil {
			at = time.UnixMilli(ms)
		}
		age := now.Sub(at)
		if age > forgotten {
			f.Redis.HDel(ctx, k.instances, id)
			f.Redis.HDel(ctx, k.seen, id)
			continue
		}
		is := InstanceStatus{Heartbeat: hb, AgeSeconds: age.Seconds()}
		is.Quiet = age > quietAfter
		if st.Experiment != nil {
			is.OtherVersion = hb.Version != st.Experiment.Version || hb.State != StateRunning
		} else {
			is.OtherVersion = hb.Version != 0 && hb.State == StateRunning
		}
		builds[hb.Build]++
		st.Instances = append(st.Instances, is)
		// The groups of the fleet's experiment, or of what runs without one.
		if st.Experiment != nil && hb.Version != st.Experiment.Version || st.Experiment == nil && is.Quiet {
			continue
		}
		for g, fig := range hb.Groups {
			st.Groups[g] = sumFigures(st.Groups[g], fig)
		}
	}
	most := 0
	for _, n := range builds {
		most = max(most, n)
	}
	for i := range st.Instances {
		st.Instances[i].OtherBuild = builds[st.Instances[i].Build] < most
	}
	slices.SortFunc(st.Instances, func(a, b InstanceStatus) int { return strings.Compare(a.Instance, b.Instance) })
	return st, nil
}

func sumFigures(a, b GroupFigures) GroupFigures {
	s := GroupFigures{Searches: a.Searches + b.Searches, FailedReads: a.FailedReads + b.FailedReads,
		DegradedSearches: a.DegradedSearches + b.DegradedSearches, DelaysInjected: a.DelaysInjected + b.DelaysInjected,
		ErrorsInjected: a.ErrorsInjected + b.ErrorsInjected, SearchSeconds: a.SearchSeconds + b.SearchSeconds,
		SearchSquareSeconds: a.SearchSquareSeconds + b.SearchSquareSeconds,
		DelaysWouldInject:   a.DelaysWouldInject + b.DelaysWouldInject, ErrorsWouldInject: a.ErrorsWouldInject + b.ErrorsWouldInject}
	if s.Searches > 0 {
		s.MeanSearchMS = s.SearchSeconds / float64(s.Searches) * 1000
	}
	return s
}
