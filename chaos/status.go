package chaos

import (
	"time"

	"github.com/redis/go-redis/v9"
)

// Status is the body of GET on the control handler: the running
// experiment, with the fields a PUT takes, its guardrails' state, and what
// has happened since the experiment was made.
type Status struct {
	Build   string `json:"build"`
	Warning string `json:"warning"`
	Config
	// RunID is the running experiment's run id; empty once it stops, or
	// when it has none. It is the Config's run_id field, shown only while
	// the run is on: a log line or a metric then carries it too.
	RunID string `json:"run_id,omitempty"`
	// State is running, ended (its duration ran out), aborted (a stop
	// condition broke), lapsed (a fleet experiment whose lease lapsed) or
	// off.
	State   string                  `json:"state"`
	EndsAt  *time.Time              `json:"ends_at,omitempty"`
	EndedAt *time.Time              `json:"ended_at,omitempty"`
	Abort   *Abort                  `json:"abort,omitempty"`
	Groups  map[string]GroupFigures `json:"groups,omitempty"`
	Session *UnitGroup              `json:"session,omitempty"`

	ActiveSince Since    `json:"active_since"`
	Counters    Counters `json:"counters"`
	// RedisPool is go-redis's pool since it was made: what the connection
	// layer does to it, and the command layer does not.
	RedisPool PoolStats `json:"redis_pool"`
	// Fleet is what the fleet's control plane has this instance do; nil:
	// it joined none.
	Fleet *FleetState `json:"fleet,omitempty"`
}

// FleetState is an instance's part in its fleet.
type FleetState struct {
	Instance string `json:"instance"`
	// Version is the fleet experiment's version the experiment runs or
	// last ran; 0: the instance's own.
	Version int64 `json:"version"`
	// LeaseUntil is when the fleet experiment stops here unless a renewed
	// lease is read first.
	LeaseUntil *time.Time `json:"lease_until,omitempty"`
	Halt       *Halt      `json:"halt,omitempty"`
}

// The states of Status.State.
const (
	StateRunning = "running"
	StateEnded   = "ended"
	StateAborted = "aborted"
	StateLapsed  = "lapsed"
	StateOff     = "off"
)

// Since is when each fault kind of the running experiment became active.
type Since struct {
	Latency *time.Time `json:"latency,omitempty"`
	Error   *time.Time `json:"error,omitempty"`
}

// Counters are what the experiments did, since the experiment was made, at
// both layers.
type Counters struct {
	// RedisRoundTrips are the commands and pipelines written to Redis, each
	// try of a retried one, and each handshake: counted on the connection,
	// so a command that never got one (a pool timeout, an error injected at
	// the command layer) made none.
	RedisRoundTrips int64 `json:"redis_round_trips"`
	// Reads are the service's reads (the Reads option), failed or not.
	Reads          int64 `json:"interest_reads"`
	DelaysInjected int64 `json:"delays_injected"`
	// DelaysInProgress are the delays waiting now: each ends at its time,
	// with its command's context, or at once when its plan stops.
	DelaysInProgress int64 `json:"delays_in_progress"`
	ErrorsInjected   int64 `json:"errors_injected"`
	// DelaySecondsInjected is the time the injected delays actually took.
	DelaySecondsInjected float64 `json:"delay_seconds_injected"`
	// DelaysWouldInject and ErrorsWouldInject are the faults dry runs
	// decided and did not inject, at either layer.
	DelaysWouldInject int64 `json:"delays_would_inject"`
	ErrorsWouldInject int64 `json:"errors_would_inject"`
	// Connection is what the connection layer did, which the fields above
	// count too.
	Connection ConnCounters `json:"connection_layer"`
	// HTTP is what the experiments did to each HTTP dependency's calls
	// (Options.HTTPDependencies), which the fields above do not count.
	HTTP map[string]HTTPCounters `json:"http,omitempty"`
}

// ConnCounters are what the connection layer did.
type ConnCounters struct {
	Dials                int64 `json:"dials"` // by go-redis, whether or not they connect
	DialsFailed          int64 `json:"dials_failed"`
	DelaysInjected       int64 `json:"delays_injected"`
	ConnectionsDropped   int64 `json:"connections_dropped"`
	ErrorRepliesInjected int64 `json:"error_replies_injected"`
	ConnectionsReset     int64 `json:"connections_reset"` // conn_fault reset
	ReadsBlackholed      int64 `json:"reads_blackholed"`  // conn_fault blackhole
	SlowReplies          int64 `json:"slow_replies"`      // conn_fault slow_reply
}

// GroupFigures count the pages of one group while the experiment ran.
type GroupFigures struct {
	Searches    int64 `json:"searches"`
	FailedReads int64 `json:"failed_reads"`
	// DegradedSearches are the pages a Redis operation failed, or that
	// answered other than 2xx, or panicked.
	DegradedSearches int64 `json:"degraded_searches"`
	DelaysInjected   int64 `json:"delays_injected"`
	ErrorsInjected   int64 `json:"errors_injected"`
	// DelaysWouldInject and ErrorsWouldInject are a dry run's: the faults it
	// decided for the group's pages, as a real run would have, and did not
	// inject. A real run's are 0, and a dry run's injected ones.
	DelaysWouldInject int64   `json:"delays_would_inject"`
	ErrorsWouldInject int64   `json:"errors_would_inject"`
	SearchSeconds     float64 `json:"search_seconds"`
	// SearchSquareSeconds sums each search's seconds squared: with
	// SearchSeconds and Searches it gives the spread of the searches between
	// two readings, and so an interval for their mean.
	SearchSquareSeconds float64 `json:"search_square_seconds"`
	MeanSearchMS        float64 `json:"mean_search_ms"`
}

// UnitGroup says which group a unit is in.
type UnitGroup struct {
	ID    string `json:"id"`
	Group string `json:"group"`
}

// PoolStats is go-redis's connection pool: whether an experiment made
// commands queue for a connection (waits), give up waiting (timeouts), or
// dial anew (misses).
type PoolStats struct {
	Hits          uint32  `json:"hits"`
	Misses        uint32  `json:"misses"`
	Timeouts      uint32  `json:"timeouts"`
	Waits         uint32  `json:"waits"`
	WaitSeconds   float64 `json:"wait_seconds"`
	TotalConns    uint32  `json:"total_conns"`
	IdleConns     uint32  `json:"idle_conns"`
	StaleConns    uint32  `json:"stale_conns"`
	UnusableConns uint32  `json:"unusable_conns"`
}

func poolStats(rdb redis.UniversalClient) PoolStats {
	if rdb == nil {
		return PoolStats{}
	}
	s := rdb.PoolStats()
	return PoolStats{s.Hits, s.Misses, s.Timeouts, s.WaitCount, time.Duration(s.WaitDurationNs).Seconds(),
		s.TotalConns, s.IdleConns, s.StaleConns, s.Unusable}
}

// Status describes the running experiment; unit, if not empty, asks which
// group that unit is in.
func (e *Experiment) Status(unit string) Status {
	p := e.active.Load()
	r := p.run
	s := Status{
		Build:   "chaos",
		Warning: "fault-injection build: not for production",
		Config:  p.config,
		State:   StateOff,
		Counters: Counters{
			RedisRoundTrips:      e.roundTrips.Load(),
			Reads:                e.reads.Load(),
			DelaysInjected:       e.delaysInjected.Load(),
			DelaysInProgress:     e.delaysInProgress.Load(),
			DelaySecondsInjected: time.Duration(e.delayedNanos.Load()).Seconds(),
			ErrorsInjected:       e.errorsInjected.Load(),
			DelaysWouldInject:    e.delaysWouldInject.Load(),
			ErrorsWouldInject:    e.errorsWouldInject.Load(),
			Connection:           e.conn.status(),
			HTTP:                 e.httpStatus(),
		},
		RedisPool: poolStats(e.rdb),
	}
	switch {
	case p.injects():
		s.State, s.RunID = StateRunning, p.runID
		if t := r.end(); !t.IsZero() {
			s.EndsAt = &t
		}
	case r.abort != nil:
		s.State, s.EndedAt, s.Abort = StateAborted, &r.ended, r.abort
	case r.lapsed:
		s.State, s.EndedAt = StateLapsed, &r.ended
	case !r.ended.IsZero():
		s.State, s.EndedAt = StateEnded, &r.ended
	}
	if s.State != StateOff {
		s.Groups = map[string]GroupFigures{}
		for _, g := range []group{experimentGroup, controlGroup} {
			s.Groups[g.String()] = r.groups[g].figures()
		}
	}
	if unit != "" {
		s.Session = &UnitGroup{ID: unit, Group: r.groupOf(unit).String()}
	}
	if id := e.instance.Load(); id != nil {
		s.Fleet = &FleetState{Instance: *id, Version: p.fleetVersion, Halt: e.halt.Load()}
		if t := r.lease.expiry(); p.injects() && !t.IsZero() {
			s.Fleet.LeaseUntil = &t
		}
	}
	if p.latency() {
		s.ActiveSince.Latency = &p.latencySince
	}
	if p.failure() {
		s.ActiveSince.Error = &p.errorSince
	}
	return s
}
