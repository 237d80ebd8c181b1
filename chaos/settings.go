package chaos

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// setting is one field of Config: its environment variable, its JSON field,
// and how each is read and checked. settings is the only list of them.
type setting struct {
	env   string
	field string
	want  string // what an invalid value is told it should be
	// parse reads the environment's raw value into c; false: not a value
	// of this setting (for the experiment's own numbers, out of range
	// included, so that the error echoes the value as typed, "Inf" or "1e3",
	// not as check formats it; the guardrails' ranges are check's).
	parse func(c *Config, raw string) bool
	// check validates c's value and puts it in canonical form; it returns
	// the value as shown and, when invalid, what is wanted.
	check func(c *Config) (shown any, want string)
}

const (
	experimentChoices  = "latency, error or latency,error (none, unset or empty: no experiment)"
	errorReplyChoices  = "LOADING, READONLY, CLUSTERDOWN, NOSCRIPT, OOM, BUSY, TRYAGAIN, MOVED, ASK or MASTERDOWN (empty: CHAOS at the command layer, a dropped connection at the connection layer)"
	maxDurationSeconds = 24 * 60 * 60
	// defaultDurationSeconds ends an experiment that names no duration:
	// long enough for a session of experiments, short enough that one
	// forgotten ends the same afternoon.
	defaultDurationSeconds = 30 * 60
	defaultStopWindow      = 100 // pages
	// defaultStopMinSearches is the fewest pages the stop conditions judge
	// by default: at 1 in 10 a share of 0.1 breaks at the first failure.
	defaultStopMinSearches = 10
	maxStopWindow          = 100_000
)

// Names are checked byte by byte rather than by regexp: the compiled
// `{0,64}` of a run id alone is tens of kilobytes of heap, which every
// garbage collection of a chaos build would scan, experiment or none.

func isCommandName(s string) bool { return s != "" && allBytes(s, isLower) }

func allBytes(s string, ok func(byte) bool) bool {
	for i := range len(s) {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

func isLower(b byte) bool { return 'a' <= b && b <= 'z' }
func isDigit(b byte) bool { return '0' <= b && b <= '9' }

var settings = []setting{
	{env: "CHAOS", field: "experiment", want: "want " + experimentChoices,
		parse: func(c *Config, raw string) bool { c.Experiment = raw; return true },
		check: checkExperiment},
	latencyDelay(),
	seconds("CHAOS_DELAY_JITTER_SECONDS", "delay_jitter_seconds", 60, "0.05", func(c *Config) *float64 { return &c.JitterSeconds }),
	{env: "CHAOS_ERROR_EVERY", field: "error_every", want: "want a whole number from 1 up, such as 2 (every 2nd read fails)",
		parse: func(c *Config, raw string) bool {
			n, err := strconv.ParseInt(raw, 10, 64)
			c.ErrorEvery = n
			return err == nil
		},
		check: func(c *Config) (any, string) {
			return c.ErrorEvery, wantIf(c.ErrorEvery < 1, "want a whole number from 1 up, such as 2 (every 2nd read fails)")
		}},
	number("CHAOS_ERROR_RATE", "error_rate", "want a probability from 0 to 1, such as 0.3", 0, 1, func(c *Config) *float64 { return &c.ErrorRate }),
	{env: "CHAOS_COMMANDS", field: "commands", want: "want Redis command names, such as get or get,evalsha",
		parse: func(c *Config, raw string) bool { c.Commands = strings.Split(raw, ","); return true },
		check: func(c *Config) (any, string) {
			for i, cmd := range c.Commands {
				c.Commands[i] = strings.ToLower(strings.TrimSpace(cmd))
				if !isCommandName(c.Commands[i]) {
					return strings.Join(c.Commands, ","), "want Redis command names, such as get or get,evalsha"
				}
			}
			return nil, ""
		}},
	{env: "CHAOS_SEED", field: "seed", want: "want a whole number from 0 up (0: a random seed)",
		parse: func(c *Config, raw string) bool {
			n, err := strconv.ParseUint(raw, 10, 64)
			c.Seed = n
			return err == nil
		}},
	{env: "CHAOS_LAYER", field: "layer",
		parse: func(c *Config, raw string) bool { c.Layer = raw; return true },
		check: checkLayer},
	{env: "CHAOS_ERROR_REPLY", field: "error_reply", want: "want " + errorReplyChoices,
		parse: func(c *Config, raw string) bool { c.ErrorReply = raw; return true },
		check: func(c *Config) (any, string) {
			c.ErrorReply = strings.ToUpper(strings.TrimSpace(c.ErrorReply))
			return c.ErrorReply, wantIf(c.ErrorReply != "" && !knownReply(c.ErrorReply), "want "+errorReplyChoices)
		}},
	{env: "CHAOS_CONN_FAULT", field: "conn_fault", want: "want " + connFaultChoices,
		parse: func(c *Config, raw string) bool { c.ConnFault = raw; return true },
		check: checkConnFault},
	{env: "CHAOS_SLOW_REPLY_BYTES_PER_SECOND", field: "slow_reply_bytes_per_second", want: wantSlowReplyRate,
		parse: func(c *Config, raw string) bool {
			v, err := strconv.ParseFloat(raw, 64)
			c.SlowReplyBytesPerSecond = v
			return err == nil
		},
		check: checkSlowReplyRate},
	guardrail("CHAOS_DURATION_SECONDS", "duration_seconds", "want seconds from 1 to 86400, such as 300 (default 1800; there is no unlimited run: 0 is refused)", 1, maxDurationSeconds,
		func(c *Config) *float64 { return &c.DurationSeconds }),
	{env: "CHAOS_SESSIONS_PERCENT", field: "sessions_percent", want: wantPercent,
		parse: func(c *Config, raw string) bool {
			v, err := strconv.ParseFloat(raw, 64)
			c.SessionsPercent = &v
			return err == nil
		},
		check: func(c *Config) (any, string) {
			if c.SessionsPercent == nil {
				return nil, ""
			}
			if *c.SessionsPercent == 0 && c.Experiment != "none" {
				return 0.0, "want a percentage above 0, such as 50: at 0 no session is in the experiment group, so nothing would be injected"
			}
			return *c.SessionsPercent, wantIf(!within(*c.SessionsPercent, 0, 100), wantPercent)
		}},
	{env: "CHAOS_STOP_WINDOW_SEARCHES", field: "stop_window_searches", want: wantWindow,
		parse: func(c *Config, raw string) bool {
			n, err := strconv.Atoi(raw)
			c.StopWindowSearches = n
			return err == nil
		},
		check: func(c *Config) (any, string) {
			return c.StopWindowSearches, wantIf(c.StopWindowSearches < 0 || c.StopWindowSearches > maxStopWindow, wantWindow)
		}},
	{env: "CHAOS_STOP_MIN_SEARCHES", field: "stop_min_searches", want: "want a whole number of searches from 1 to the window's size, such as 10",
		parse: func(c *Config, raw string) bool {
			n, err := strconv.Atoi(raw)
			c.StopMinSearches = n
			return err == nil
		},
		check: func(c *Config) (any, string) {
			window := c.stopWindow()
			return c.StopMinSearches, wantIf(c.StopMinSearches < 0 || c.StopMinSearches > window,
				fmt.Sprintf("want a whole number of searches from 1 to the window's %d, such as %d", window, min(defaultStopMinSearches, window)))
		}},
	stopShare("CHAOS_STOP_FAILED_READS_SHARE", "stop_failed_reads_share", func(c *Config) *float64 { return &c.StopFailedReadsShare }),
	stopShare("CHAOS_STOP_DEGRADED_SHARE", "stop_degraded_share", func(c *Config) *float64 { return &c.StopDegradedShare }),
	guardrail("CHAOS_STOP_SEARCH_P99_SECONDS", "stop_search_p99_seconds", "want seconds from 0 to 60, such as 0.5 (0: no such stop condition)", 0, 60,
		func(c *Config) *float64 { return &c.StopSearchP99Seconds }),
	{env: "CHAOS_DRY_RUN", field: "dry_run", want: wantDryRun,
		parse: func(c *Config, raw string) bool {
			v, err := strconv.ParseBool(raw)
			c.DryRun = v
			return err == nil
		}},
	{env: "CHAOS_RUN_ID", field: "run_id", want: wantRunID,
		parse: func(c *Config, raw string) bool { c.RunID = raw; return true },
		check: func(c *Config) (any, string) { return c.RunID, wantIf(!isRunID(c.RunID), wantRunID) }},
	dependenciesSetting(),
	{env: "CHAOS_HTTP_FAULT", field: "http_fault", want: wantHTTPFault,
		parse: func(c *Config, raw string) bool { c.HTTPFault = raw; return true }, check: checkHTTPFault},
	{env: "CHAOS_HTTP_STATUS", field: "http_status", want: wantHTTPStatus, parse: parseHTTPStatus, check: checkHTTPStatus},
	httpHostsSetting(),
	httpPathsSetting(),
	{env: "CHAOS_DELAY_AFTER_HEADERS", field: "delay_after_headers", want: wantAfterHeaders,
		parse: parseDelayAfterHeaders, check: checkDelayAfterHeaders},
}

const (
	wantPercent = "want a percentage from 0 to 100, such as 50"
	wantWindow  = "want a whole number of searches from 1 to 100000, such as 100"
	wantShare   = "want a share from 0 to below 1, such as 0.5 (0: no such stop condition)"
	wantDryRun  = "want true (decide as the experiment would, inject nothing) or false"
	wantRunID   = "want up to 64 characters of A-Z a-z 0-9 . _ -, such as latency-2024-06-01 (empty: none)"
)

// isRunID reports what a run id may be: what a log line, a label value and
// a file name all take as it is.
func isRunID(s string) bool {
	return len(s) <= 64 && allBytes(s, func(b byte) bool {
		return isLower(b) || 'A' <= b && b <= 'Z' || isDigit(b) || b == '.' || b == '_' || b == '-'
	})
}

// stopShare is a stop condition's share of the searches, which it aborts
// above: below 1, as no share is above every search.
func stopShare(env, field string, at func(*Config) *float64) setting {
	s := guardrail(env, field, wantShare, 0, 1, at)
	s.check = func(c *Config) (any, string) {
		switch v := *at(c); {
		case v == 1:
			return v, "want a share below 1, such as 0.5: no share of the searches is above 1, so it could never fire (0: no such stop condition)"
		case !within(v, 0, 1):
			return v, wantShare
		}
		return nil, ""
	}
	return s
}

// latencyDelay is delay_seconds's setting, which a latency experiment needs
// above 0 unless it has a jitter: else it would run and inject nothing.
func latencyDelay() setting {
	s := seconds("CHAOS_DELAY_SECONDS", "delay_seconds", 60, "0.75", func(c *Config) *float64 { return &c.DelaySeconds })
	check := s.check
	s.check = func(c *Config) (any, string) {
		if shown, want := check(c); want != "" {
			return shown, want
		}
		if c.latency() && c.DelaySeconds == 0 && c.JitterSeconds == 0 {
			return c.DelaySeconds, "want seconds above 0 for a latency experiment, such as 0.75 (with no jitter, a delay of 0 injects nothing)"
		}
		return nil, ""
	}
	return s
}

// wantRateAbove0 is what an error_rate of 0 is told: given, 0 would not
// mean "no errors" but "every Nth read", error_every's default.
const wantRateAbove0 = "want a probability above 0, such as 0.3 (to fail every Nth read instead: error_every; to fail none: DELETE)"

func seconds(env, field string, highest float64, example string, at func(*Config) *float64) setting {
	return number(env, field, fmt.Sprintf("want seconds from 0 to %g, such as %s", highest, example), 0, highest, at)
}

// number is a setting of a float64 field within [low, high], whose
// environment variable is refused out of range as typed.
func number(env, field, want string, low, high float64, at func(*Config) *float64) setting {
	s := guardrail(env, field, want, low, high, at)
	parse := s.parse
	s.parse = func(c *Config, raw string) bool { return parse(c, raw) && within(*at(c), low, high) }
	return s
}

// guardrail is a number whose range only check enforces, as for JSON: out
// of range, the environment's value is shown as parsed ("1e+06" for 1e6).
func guardrail(env, field, want string, low, high float64, at func(*Config) *float64) setting {
	return setting{env: env, field: field, want: want,
		parse: func(c *Config, raw string) bool {
			v, err := strconv.ParseFloat(raw, 64)
			*at(c) = v
			return err == nil
		},
		check: func(c *Config) (any, string) { return *at(c), wantIf(!within(*at(c), low, high), want) },
	}
}

func within(v, low, high float64) bool { return !math.IsNaN(v) && v >= low && v <= high }

func wantIf(invalid bool, want string) string {
	if invalid {
		return want
	}
	return ""
}

func checkExperiment(c *Config) (any, string) {
	latency, failReads := false, false
	if raw := strings.TrimSpace(c.Experiment); raw != "" && raw != "none" {
		for part := range strings.SplitSeq(raw, ",") {
			switch part = strings.ToLower(strings.TrimSpace(part)); {
			case part == "latency":
				latency = true
			case part == "error":
				failReads = true
			case truthy(part):
				return c.Experiment, "ambiguous, it does not say which experiment; want " + experimentChoices
			default:
				return c.Experiment, "want " + experimentChoices
			}
		}
	}
	c.Experiment = experimentName(latency, failReads)
	return nil, ""
}

func checkLayer(c *Config) (any, string) {
	switch strings.ToLower(strings.TrimSpace(c.Layer)) {
	case "", LayerCommand:
		c.Layer = LayerCommand
	case LayerConnection:
		c.Layer = LayerConnection
	default:
		return c.Layer, "want command (around each go-redis command, the default) or connection (on the connections go-redis dials)"
	}
	// The connection layer sees RESP bytes, not requests, so it cannot tell
	// one unit from another: a blast radius needs the command layer.
	if c.Layer == LayerConnection && c.SessionsPercent != nil && *c.SessionsPercent < 100 {
		return c.Layer, "want command with sessions_percent below 100: the connection layer cannot tell sessions apart"
	}
	return nil, ""
}

// FromEnv reads the experiment from the environment. Every invalid value is
// an error naming the variable, the value and what is allowed.
func FromEnv(getenv func(string) string) (Config, error) {
	c := defaults
	c.fromEnv = true
	for _, i := range envOrder {
		s := &settings[i]
		raw := getenv(s.env)
		if raw == "" && s.env != "CHAOS" {
			continue
		}
		if s.env == "CHAOS_ERROR_EVERY" && getenv("CHAOS_ERROR_RATE") != "" {
			return c, fmt.Errorf("CHAOS_ERROR_EVERY and CHAOS_ERROR_RATE are both set: set one, every Nth read or a random rate")
		}
		if !s.parse(&c, raw) {
			return c, fmt.Errorf("invalid %s %q: %s", s.env, raw, s.want)
		}
		if s.env == "CHAOS_ERROR_RATE" && c.ErrorRate == 0 {
			return c, fmt.Errorf("invalid %s %q: %s", s.env, raw, wantRateAbove0)
		}
	}
	if truthy(c.Experiment) {
		// The book starts experiment 1 with CHAOS=true CHAOS_DELAY_SECONDS=0.1:
		// a truthy CHAOS takes the experiments whose settings are given, and
		// check refuses it when none is.
		if named, by := experimentsNamedBy(getenv); named != "none" {
			c.readAs = fmt.Sprintf("CHAOS=%s read as CHAOS=%s (%s set); write CHAOS=%s next time",
				c.Experiment, named, strings.Join(by, " and "), named)
			c.Experiment = named
		}
	}
	return c, c.check(envName)
}

// envOrder is the order FromEnv reads the variables in, which decides which
// of several invalid ones its error names; check then judges the values in
// the table's order. It is the order they have always been read in, so that
// the same mistake gets the same message: an invalid CHAOS_ERROR_RATE, for
// one, is named before its being set together with CHAOS_ERROR_EVERY.
var envOrder = func() []int {
	order := []string{"CHAOS", "CHAOS_DELAY_SECONDS", "CHAOS_DELAY_JITTER_SECONDS", "CHAOS_ERROR_RATE", "CHAOS_ERROR_EVERY",
		"CHAOS_SEED", "CHAOS_COMMANDS", "CHAOS_DURATION_SECONDS", "CHAOS_STOP_FAILED_READS_SHARE", "CHAOS_STOP_SEARCH_P99_SECONDS",
		"CHAOS_SESSIONS_PERCENT", "CHAOS_STOP_WINDOW_SEARCHES", "CHAOS_LAYER", "CHAOS_ERROR_REPLY",
		"CHAOS_STOP_MIN_SEARCHES", "CHAOS_STOP_DEGRADED_SHARE", "CHAOS_DRY_RUN", "CHAOS_RUN_ID",
		"CHAOS_CONN_FAULT", "CHAOS_SLOW_REPLY_BYTES_PER_SECOND",
		"CHAOS_DEPENDENCIES", "CHAOS_HTTP_FAULT", "CHAOS_HTTP_STATUS", "CHAOS_HTTP_HOSTS", "CHAOS_HTTP_PATHS", "CHAOS_DELAY_AFTER_HEADERS"}
	var index []int
	for _, env := range order {
		i := slices.IndexFunc(settings, func(s setting) bool { return s.env == env })
		if i < 0 || slices.Contains(index, i) {
			panic("chaos: envOrder names " + env + " twice or not in settings")
		}
		index = append(index, i)
	}
	if len(index) != len(settings) {
		panic("chaos: envOrder leaves a setting out")
	}
	return index
}()

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
	latency := set("CHAOS_DELAY_SECONDS")
	failReads := set("CHAOS_ERROR_EVERY", "CHAOS_ERROR_RATE")
	return experimentName(latency, failReads), by
}
