//go:build chaos

package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The environment variables that pick and tune the experiment at start-up.
const (
	chaosEnv           = "CHAOS"
	chaosDelayEnv      = "CHAOS_DELAY_SECONDS"
	chaosJitterEnv     = "CHAOS_DELAY_JITTER_SECONDS"
	chaosCommandsEnv   = "CHAOS_COMMANDS"
	chaosErrorEveryEnv = "CHAOS_ERROR_EVERY"
	chaosErrorRateEnv  = "CHAOS_ERROR_RATE"
	chaosSeedEnv       = "CHAOS_SEED"
	chaosLayerEnv      = "CHAOS_LAYER"
	chaosErrorReplyEnv = "CHAOS_ERROR_REPLY"
)

const chaosChoices = "latency, error or latency,error (none, unset or empty: no experiment)"

// chaosConfig is one experiment as a person writes it: in environment
// variables at start-up, or as the JSON body of PUT /debug/chaos, which
// replaces it whole. GET /debug/chaos shows it with the same fields.
type chaosConfig struct {
	Experiment    string   `json:"experiment"`
	DelaySeconds  float64  `json:"delay_seconds"`
	JitterSeconds float64  `json:"delay_jitter_seconds"`
	Commands      []string `json:"commands"` // the commands the latency applies to; empty: all
	ErrorEvery    int64    `json:"error_every"`
	ErrorRate     float64  `json:"error_rate"`  // above 0: fail reads at random with this probability instead
	Seed          uint64   `json:"seed"`        // for error_rate and the jitter; 0: a random one
	Layer         string   `json:"layer"`       // where faults are injected: command or connection (chaos_conn.go)
	ErrorReply    string   `json:"error_reply"` // the error a failed read gets: "" (CHAOS, or a dropped connection), LOADING, READONLY or CLUSTERDOWN

	readAs string // how a truthy CHAOS was read, for a warning at start-up
}

// chaosDefaults is the experiment before anything is set: none, with the
// reference's 0.75 s delay and every 2nd read ready for when one starts.
var chaosDefaults = chaosConfig{Experiment: "none", DelaySeconds: 0.75, ErrorEvery: 2, Layer: layerCommand}

// chaosFieldNames name each field as the environment spells it.
var chaosFieldNames = map[string]string{
	"experiment": chaosEnv, "delay_seconds": chaosDelayEnv, "delay_jitter_seconds": chaosJitterEnv,
	"commands": chaosCommandsEnv, "error_every": chaosErrorEveryEnv, "error_rate": chaosErrorRateEnv, "seed": chaosSeedEnv,
	"layer": chaosLayerEnv, "error_reply": chaosErrorReplyEnv,
}

// chaosConfigFromEnv reads the experiment from the environment. Every invalid
// value is a usageError naming the variable, the value and what is allowed.
func chaosConfigFromEnv(getenv func(string) string) (chaosConfig, error) {
	c := chaosDefaults
	invalid := func(env, raw, want string) error {
		return usageError(fmt.Sprintf("invalid %s %q: %s", env, raw, want))
	}
	c.Experiment = getenv(chaosEnv)
	// A number out of range is refused here, where the error can echo it as
	// typed ("Inf", "1e3"), not as check would format it ("+Inf", "1000").
	number := func(env string, into *float64, highest float64, want string) error {
		if raw := getenv(env); raw != "" {
			f, err := strconv.ParseFloat(raw, 64)
			if err != nil || !(f >= 0 && f <= highest) {
				return invalid(env, raw, want)
			}
			*into = f
		}
		return nil
	}
	if err := number(chaosDelayEnv, &c.DelaySeconds, 60, "want seconds from 0 to 60, such as 0.75"); err != nil {
		return c, err
	}
	if err := number(chaosJitterEnv, &c.JitterSeconds, 60, "want seconds from 0 to 60, such as 0.05"); err != nil {
		return c, err
	}
	if err := number(chaosErrorRateEnv, &c.ErrorRate, 1, "want a probability from 0 to 1, such as 0.3"); err != nil {
		return c, err
	}
	if raw := getenv(chaosErrorEveryEnv); raw != "" {
		if getenv(chaosErrorRateEnv) != "" {
			return c, usageError(fmt.Sprintf("%s and %s are both set: set one, every Nth read or a random rate", chaosErrorEveryEnv, chaosErrorRateEnv))
		}
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return c, invalid(chaosErrorEveryEnv, raw, "want a whole number from 1 up, such as 2 (every 2nd read fails)")
		}
		c.ErrorEvery = n
	}
	if raw := getenv(chaosSeedEnv); raw != "" {
		n, err := strconv.ParseUint(raw, 10, 64)
		if err != nil {
			return c, invalid(chaosSeedEnv, raw, "want a whole number from 0 up (0: a random seed)")
		}
		c.Seed = n
	}
	if raw := getenv(chaosCommandsEnv); raw != "" {
		c.Commands = strings.Split(raw, ",")
	}
	if truthy(c.Experiment) {
		// The book starts experiment 1 with CHAOS=true CHAOS_DELAY_SECONDS=0.1:
		// a truthy CHAOS takes the experiments whose settings are given, and
		// check refuses it when none is.
		if named, by := experimentsNamedBy(getenv); named != "none" {
			c.readAs = fmt.Sprintf("%s=%s read as %s=%s (%s set); write %s=%s next time",
				chaosEnv, c.Experiment, chaosEnv, named, strings.Join(by, " and "), chaosEnv, named)
			c.Experiment = named
		}
	}
	c.Layer = cmp.Or(getenv(chaosLayerEnv), c.Layer)
	c.ErrorReply = getenv(chaosErrorReplyEnv)
	if err := c.check(func(field string) string { return chaosFieldNames[field] }); err != nil {
		return c, usageError(err.Error())
	}
	return c, nil
}

// chaosConfigFromJSON reads a PUT /debug/chaos body: the fields it leaves out
// take their defaults, unknown fields are refused.
func chaosConfigFromJSON(body []byte) (chaosConfig, error) {
	c := chaosDefaults
	// Decode would take null, or nothing at all, as "every field at its
	// default": a typo would stop the running experiment.
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return c, fmt.Errorf("body is not a JSON object: want an experiment such as {\"experiment\":\"latency\",\"delay_seconds\":0.1}")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("body is not a JSON experiment: %v", err)
	}
	if dec.More() {
		return c, fmt.Errorf("body has more than one JSON value")
	}
	return c, c.check(func(field string) string { return field })
}

var redisCommandName = regexp.MustCompile(`^[a-z]+$`)

// check validates c and puts it in canonical form; name spells a field in the
// caller's terms.
func (c *chaosConfig) check(name func(field string) string) error {
	invalid := func(field string, value any, want string) error {
		return fmt.Errorf("invalid %s %q: %s", name(field), fmt.Sprint(value), want)
	}
	latency, failReads := false, false
	if raw := strings.TrimSpace(c.Experiment); raw != "" && raw != "none" {
		for part := range strings.SplitSeq(raw, ",") {
			switch part = strings.ToLower(strings.TrimSpace(part)); {
			case part == "latency":
				latency = true
			case part == "error":
				failReads = true
			case truthy(part):
				return invalid("experiment", c.Experiment, "ambiguous, it does not say which experiment; want "+chaosChoices)
			default:
				return invalid("experiment", c.Experiment, "want "+chaosChoices)
			}
		}
	}
	c.Experiment = experimentName(latency, failReads)
	seconds := func(v float64) bool { return !math.IsNaN(v) && v >= 0 && v <= 60 }
	switch {
	case !seconds(c.DelaySeconds):
		return invalid("delay_seconds", c.DelaySeconds, "want seconds from 0 to 60, such as 0.75")
	case !seconds(c.JitterSeconds):
		return invalid("delay_jitter_seconds", c.JitterSeconds, "want seconds from 0 to 60, such as 0.05")
	case c.ErrorEvery < 1:
		return invalid("error_every", c.ErrorEvery, "want a whole number from 1 up, such as 2 (every 2nd read fails)")
	case math.IsNaN(c.ErrorRate) || c.ErrorRate < 0 || c.ErrorRate > 1:
		return invalid("error_rate", c.ErrorRate, "want a probability from 0 to 1, such as 0.3")
	}
	for i, cmd := range c.Commands {
		c.Commands[i] = strings.ToLower(strings.TrimSpace(cmd))
		if !redisCommandName.MatchString(c.Commands[i]) {
			return invalid("commands", strings.Join(c.Commands, ","), "want Redis command names, such as get or get,evalsha")
		}
	}
	if err := c.checkLayer(invalid); err != nil {
		return err
	}
	if c.Seed == 0 {
		c.Seed = rand.Uint64() | 1 // shown in the status, so a run can be repeated
	}
	return nil
}

// truthy reports whether an experiment is spelled as a bare switch, such as
// CHAOS=true, which does not say which experiment.
func truthy(experiment string) bool {
	switch strings.ToLower(strings.TrimSpace(experiment)) {
	case "true", "1", "yes", "on":
		return true
	}
	return false
}

// experimentsNamedBy returns the experiments whose own settings the
// environment gives, and those settings: the delay names latency, the
// frequency of failed reads names error.
func experimentsNamedBy(getenv func(string) string) (named string, by []string) {
	set := func(envs ...string) bool {
		found := false
		for _, env := range envs {
			if getenv(env) != "" {
				by, found = append(by, env), true
			}
		}
		return found
	}
	latency := set(chaosDelayEnv)
	failReads := set(chaosErrorEveryEnv, chaosErrorRateEnv)
	return experimentName(latency, failReads), by
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

// chaosPlan is a checked configuration in the form the hooks use. The hooks
// load the active plan once per command, so a replaced plan never shows half.
type chaosPlan struct {
	config       chaosConfig
	latency      bool
	failReads    bool
	delay        time.Duration
	jitter       time.Duration
	commands     map[string]bool // nil: every command
	connLayer    bool            // inject on the connection (chaos_conn.go), not around the command
	errorReply   []byte          // the RESP error reply a failed read gets; nil: CHAOS, or a dropped connection
	latencySince time.Time
	errorSince   time.Time

	reads      atomic.Int64 // reads while this plan fails every Nth
	mu         sync.Mutex
	errorDraws *rand.Rand
	delayDraws *rand.Rand
}

func newChaosPlan(c chaosConfig) *chaosPlan {
	p := &chaosPlan{
		config:     c,
		latency:    strings.Contains(c.Experiment, "latency"),
		failReads:  strings.Contains(c.Experiment, "error"),
		delay:      time.Duration(math.Round(c.DelaySeconds * float64(time.Second))),
		jitter:     time.Duration(math.Round(c.JitterSeconds * float64(time.Second))),
		errorDraws: rand.New(rand.NewPCG(c.Seed, 1)),
		delayDraws: rand.New(rand.NewPCG(c.Seed, 2)),
		connLayer:  c.Layer == layerConnection,
		errorReply: redisErrorReplies[c.ErrorReply],
	}
	if len(c.Commands) > 0 {
		p.commands = map[string]bool{}
		for _, cmd := range c.Commands {
			p.commands[cmd] = true
		}
	}
	return p
}

// delays reports whether the latency experiment applies to a command.
func (p *chaosPlan) delays(name string) bool {
	return p.latency && (p.commands == nil || p.commands[name])
}

// nextDelay is the delay, moved by a uniform draw within ± the jitter, and
// never below zero.
func (p *chaosPlan) nextDelay() time.Duration {
	if p.jitter == 0 {
		return p.delay
	}
	p.mu.Lock()
	u := p.delayDraws.Float64()
	p.mu.Unlock()
	return max(0, p.delay+time.Duration((2*u-1)*float64(p.jitter)))
}

// failRead decides whether this read fails: every Nth read under this plan,
// or at random at the error rate from the seeded sequence of draws.
func (p *chaosPlan) failRead() bool {
	if !p.failReads {
		return false
	}
	if p.config.ErrorRate > 0 {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.errorDraws.Float64() < p.config.ErrorRate
	}
	return p.reads.Add(1)%p.config.ErrorEvery == 0
}

// succeeded carries over the time each fault kind became active: a kind that
// stays on keeps its time.
func (p *chaosPlan) succeeded(old *chaosPlan, now time.Time) {
	if p.latency {
		p.latencySince = now
		if old != nil && old.latency {
			p.latencySince = old.latencySince
		}
	}
	if p.failReads {
		p.errorSince = now
		if old != nil && old.failReads {
			p.errorSince = old.errorSince
		}
	}
}
