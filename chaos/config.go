package chaos

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

// Config is one experiment as a person writes it: in environment variables
// at start-up (FromEnv), or as the JSON body of PUT on the control handler
// (FromJSON), which replaces the running one whole, or of PATCH, which
// changes the fields it names. The status shows it with the same fields.
type Config struct {
	// Experiment is none, latency, error or latency,error.
	Experiment string `json:"experiment"`
	// DelaySeconds is the latency experiment's delay, moved by a uniform
	// draw within ± JitterSeconds.
	DelaySeconds  float64 `json:"delay_seconds"`
	JitterSeconds float64 `json:"delay_jitter_seconds"`
	// Commands are the Redis commands the delay applies to, and the
	// failure; empty: every command for the delay, the service's reads
	// (Options.Reads) for the failure.
	Commands []string `json:"commands"`
	// ErrorEvery fails every Nth read; ErrorRate, above 0, fails reads at
	// random with this probability instead. A body names one or the other.
	ErrorEvery int64   `json:"error_every"`
	ErrorRate  float64 `json:"error_rate"`
	// Seed drives the error rate's and the jitter's draws and the blast
	// radius's groups; 0: a random one, which the status then shows.
	Seed uint64 `json:"seed"`
	// Layer is where faults are injected: command (around each go-redis
	// command) or connection (on the connections go-redis dials).
	Layer string `json:"layer"`
	// ErrorReply is the error a failed command gets: "" (CHAOS at the
	// command layer, a dropped connection at the connection layer), or one of
	// Redis's own replies, LOADING, READONLY, CLUSTERDOWN, NOSCRIPT, OOM,
	// BUSY, TRYAGAIN, MOVED, ASK or MASTERDOWN (docs/redis-failures.md).
	ErrorReply string `json:"error_reply"`
	// DryRun decides everything as the experiment would (its groups, its
	// every Nth read, its draws, its stop conditions, its end) and injects
	// nothing: each group counts what it would have injected instead. The
	// first run of an experiment on real traffic, and the comparison's A/A
	// check: with nothing injected the groups must not differ.
	DryRun bool `json:"dry_run"`
	// RunID names the run this experiment is part of (ctl run sets it): while
	// it runs, the status, the heartbeat, every log line and every chaos
	// metric carry it, so what a run touched can be found afterwards. Up to
	// 64 characters of A-Z a-z 0-9 . _ -; empty: none.
	RunID string `json:"run_id,omitempty"`
	Guardrails

	readAs  string // how a truthy CHAOS was read, for a warning at start-up
	fromEnv bool   // FromEnv's: errors name the variables, not the fields
}

// Guardrails are an experiment's limits, after the platforms that run faults
// on real traffic (AWS FIS, Netflix's ChAP). Every field but the duration
// left out means no such guardrail.
type Guardrails struct {
	// DurationSeconds ends the experiment this long after it starts: 1 to
	// 86400, 1800 if left out. No experiment runs unlimited: one whose
	// operator walked away ends by itself.
	DurationSeconds float64 `json:"duration_seconds"`
	// SessionsPercent confines the faults to this share of the units (the
	// Unit option: sessions, in the shop); the others are the control group.
	// Unset: every unit.
	SessionsPercent *float64 `json:"sessions_percent,omitempty"`
	// StopWindowSearches is how many of each group's latest pages the stop
	// conditions look at; 0: 100. They judge the experiment group's alone.
	StopWindowSearches int `json:"stop_window_searches,omitempty"`
	// StopMinSearches is how many pages of the window must be in before the
	// stop conditions judge it, the shares being of those in; 0: 10, or the
	// whole window when it is smaller.
	StopMinSearches int `json:"stop_min_searches,omitempty"`
	// StopFailedReadsShare aborts the experiment when more than this share
	// of the window's pages did not read; 0: never.
	StopFailedReadsShare float64 `json:"stop_failed_reads_share,omitempty"`
	// StopDegradedShare aborts it when more than this share of the window's
	// pages were degraded: a Redis operation of the page failed, or it
	// answered other than 2xx, or it panicked; 0: never.
	StopDegradedShare float64 `json:"stop_degraded_share,omitempty"`
	// StopSearchP99Seconds aborts it when the window's p99 page time is
	// above this, pages in progress counted by their time so far; 0: never.
	StopSearchP99Seconds float64 `json:"stop_search_p99_seconds,omitempty"`
}

// Layers.
const (
	LayerCommand    = "command"
	LayerConnection = "connection"
)

// defaults is the experiment before anything is set: none, with the book's
// 0.75 s delay, every 2nd read and half an hour ready for when one starts.
var defaults = Config{Experiment: "none", DelaySeconds: 0.75, ErrorEvery: 2, Layer: LayerCommand,
	Guardrails: Guardrails{DurationSeconds: defaultDurationSeconds}}

// Off is the checked experiment that injects nothing, with a fresh seed.
func Off() Config {
	c := defaults
	c.check(jsonName) // the defaults are valid; this fills the seed
	return c
}

// FromJSON reads a PUT body: the fields it leaves out take their defaults,
// unknown fields are refused. Errors name the JSON field.
func FromJSON(body []byte) (Config, error) {
	c := defaults
	if _, err := decodeOnto(&c, body); err != nil {
		return c, err
	}
	return c, c.check(jsonName)
}

// decodeOnto sets the fields a JSON body names on c and leaves the others,
// and returns the fields it named: onto the defaults for PUT, onto a copy of
// the running experiment for PATCH. c must own what it points to: decoding
// writes through its pointers and into its slices' arrays.
func decodeOnto(c *Config, body []byte) (fields map[string]json.RawMessage, err error) {
	// Decode would take null, or nothing at all, as "every field at its
	// default": a typo would stop the running experiment.
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, fmt.Errorf("body is not a JSON object: want an experiment such as {\"experiment\":\"latency\",\"delay_seconds\":0.1}")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return nil, fmt.Errorf("body is not a JSON experiment: %v", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("body has more than one JSON value")
	}
	json.Unmarshal(body, &fields) // it decoded as a Config: it is an object
	every, rate := names(fields, "error_every"), names(fields, "error_rate")
	if every && rate {
		return nil, fmt.Errorf("error_every and error_rate are both set: set one, every Nth read (error_every) or a random rate (error_rate)")
	}
	if every {
		c.ErrorRate = 0 // a rate above 0 would take precedence
	}
	if rate && c.ErrorRate == 0 {
		return nil, fmt.Errorf("invalid error_rate \"0\": %s", wantRateAbove0)
	}
	return fields, nil
}

// names reports whether a body names a field, which encoding/json matches
// without regard to case.
func names(fields map[string]json.RawMessage, field string) bool {
	for name := range fields {
		if strings.EqualFold(name, field) {
			return true
		}
	}
	return false
}

// clone is a deep copy of c, which decodeOnto may write into while the
// hooks read c.
func (c Config) clone() Config {
	c.Commands = slices.Clone(c.Commands)
	if c.SessionsPercent != nil {
		percent := *c.SessionsPercent
		c.SessionsPercent = &percent
	}
	c.readAs, c.fromEnv = "", false
	return c
}

func jsonName(s *setting) string { return s.field }
func envName(s *setting) string  { return s.env }

// check validates c against the settings table and puts it in canonical
// form; name spells a setting in the caller's terms.
func (c *Config) check(name func(*setting) string) error {
	for i := range settings {
		s := &settings[i]
		if s.check == nil {
			continue
		}
		if shown, want := s.check(c); want != "" {
			return fmt.Errorf("invalid %s %q: %s", name(s), fmt.Sprint(shown), want)
		}
	}
	if c.Seed == 0 {
		c.Seed = rand.Uint64() | 1 // shown in the status, so a run can be repeated
	}
	return nil
}

func (c *Config) latency() bool    { return strings.Contains(c.Experiment, "latency") }
func (c *Config) failsReads() bool { return strings.Contains(c.Experiment, "error") }

// truthy reports whether an experiment is spelled as a bare switch, such as
// CHAOS=true, which does not say which experiment.
func truthy(experiment string) bool {
	switch strings.ToLower(strings.TrimSpace(experiment)) {
	case "true", "1", "yes", "on":
		return true
	}
	return false
}

func experimentName(latency, failReads bool) string {
	switch {
	case latency && failReads:
		return "latency,error"
	case latency:
		return "latency"
	case failReads:
		return "error"
	}
	return "none"
}

// logAttrs are c's fields for a log line: the guardrails only when set.
func (c Config) logAttrs() []any {
	attrs := []any{"experiment", c.Experiment, "delay_seconds", c.DelaySeconds,
		"delay_jitter_seconds", c.JitterSeconds, "commands", strings.Join(c.Commands, ","),
		"error_every", c.ErrorEvery, "error_rate", c.ErrorRate, "seed", c.Seed,
		"layer", c.Layer, "error_reply", c.ErrorReply}
	if c.DryRun {
		attrs = append(attrs, "dry_run", true)
	}
	g := c.Guardrails
	attrs = append(attrs, "duration_seconds", g.DurationSeconds)
	if g.SessionsPercent != nil {
		attrs = append(attrs, "sessions_percent", *g.SessionsPercent)
	}
	if g.stops() {
		attrs = append(attrs, "stop_window_searches", g.stopWindow(), "stop_min_searches", g.stopMinSearches(),
			"stop_failed_reads_share", g.StopFailedReadsShare, "stop_degraded_share", g.StopDegradedShare,
			"stop_search_p99_seconds", g.StopSearchP99Seconds)
	}
	return attrs
}
