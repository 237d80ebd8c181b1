package chaos

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"
)

// The journal of a ctl run: one JSON line per event, each written with one
// write as it happens, so a runner killed mid-step leaves a journal that
// ends where it died.

// JournalEvent is one line of the journal. The first fields are on every
// line; the others belong to the events named beside them.
type JournalEvent struct {
	At        time.Time `json:"at"`
	Run       string    `json:"run"`
	Event     string    `json:"event"`
	Seed      uint64    `json:"seed"`
	DryRun    bool      `json:"dry_run"`
	Builds    []string  `json:"builds"`
	Instances []string  `json:"instances"`

	// run_start
	Title      string `json:"title,omitempty"`
	Hypothesis string `json:"hypothesis,omitempty"`
	File       string `json:"file,omitempty"`
	Steps      int    `json:"steps,omitempty"`

	// steady_state
	Phase  string        `json:"phase,omitempty"` // before, after
	Holds  *bool         `json:"holds,omitempty"`
	Probes []ProbeResult `json:"probes,omitempty"`

	// step_start, sample, abort, judgement, step_end
	Step            int             `json:"step,omitempty"` // 1-based
	Name            string          `json:"name,omitempty"`
	Version         int64           `json:"version,omitempty"`
	SessionsPercent float64         `json:"sessions_percent,omitempty"`
	DurationSeconds float64         `json:"duration_seconds,omitempty"`
	Config          json.RawMessage `json:"config,omitempty"`

	// sample
	Metric     string       `json:"metric,omitempty"`
	Experiment *GroupSample `json:"experiment,omitempty"`
	Control    *GroupSample `json:"control,omitempty"`
	Would      *WouldInject `json:"would,omitempty"` // dry run: what the experiment group would have got

	// abort
	Probe string   `json:"probe,omitempty"`
	Group string   `json:"group,omitempty"`
	Value *float64 `json:"value,omitempty"`
	Bound *float64 `json:"bound,omitempty"`

	// judgement
	Predicted  *float64 `json:"predicted,omitempty"`
	Tolerance  *float64 `json:"tolerance,omitempty"`
	Difference *float64 `json:"difference,omitempty"`
	Low        *float64 `json:"low,omitempty"`
	High       *float64 `json:"high,omitempty"`
	Samples    int      `json:"samples,omitempty"`
	Verdict    string   `json:"verdict,omitempty"` // judgement: PASS, DEVIATED, INCONCLUSIVE; run_end: the run's
	Held       *bool    `json:"held,omitempty"`

	// step_end, rollback, run_end
	Reason         string `json:"reason,omitempty"`
	StoppedVersion int64  `json:"stopped_version,omitempty"`
	Exit           *int   `json:"exit,omitempty"`
	Message        string `json:"message,omitempty"`
}

// ProbeResult is one probe of the steady state, judged once.
type ProbeResult struct {
	Name     string   `json:"name"`
	Metric   string   `json:"metric,omitempty"`
	Query    string   `json:"query,omitempty"` // a Prometheus probe's
	Group    string   `json:"group"`           // all, control, experiment, or prometheus
	Value    *float64 `json:"value"`           // nil: could not be measured (too few pages, a failed query)
	Min      *float64 `json:"min,omitempty"`
	Max      *float64 `json:"max,omitempty"`
	Holds    bool     `json:"holds"`
	Searches int64    `json:"searches,omitempty"`
	Error    string   `json:"error,omitempty"`
}

// GroupSample is one group's pages in one tick of the runner, summed over
// the instances running the step.
type GroupSample struct {
	Searches int64   `json:"searches"`
	Value    float64 `json:"value"` // the metric's value over those pages
}

// WouldInject is what a dry run's experiment group would have got in a tick.
type WouldInject struct {
	Delays int64 `json:"delays"`
	Errors int64 `json:"errors"`
}

// Run verdicts, on run_end.
const (
	RunHeld        = "HELD"
	RunDeviated    = "DEVIATED"
	RunAborted     = "ABORTED"
	RunNotRestored = "NOT_RESTORED"
	RunInterrupted = "INTERRUPTED"
	RunFailed      = "FAILED"
)

// journal appends events to a file, if there is one, and keeps them for the
// report.
type journal struct {
	mu     sync.Mutex
	f      *os.File
	events []JournalEvent
	err    error // the first write that failed
}

func openJournal(path string) (*journal, error) {
	j := &journal{}
	if path == "" {
		return j, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, UsageError(fmt.Sprintf("-journal: %v", err))
	}
	j.f = f
	return j, nil
}

func (j *journal) add(ev JournalEvent) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events = append(j.events, ev)
	if j.f == nil || j.err != nil {
		return
	}
	line, err := json.Marshal(ev)
	if err == nil {
		_, err = j.f.Write(append(line, '\n'))
	}
	if err != nil {
		j.err = err
	}
}

func (j *journal) close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return j.err
	}
	if err := j.f.Close(); j.err == nil {
		j.err = err
	}
	return j.err
}
