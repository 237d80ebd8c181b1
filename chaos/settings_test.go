package chaos

import (
	"bytes"
	"log/slog"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func TestFromEnv(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want Config
	}{
		{map[string]string{"CHAOS_SEED": "7"}, Config{Experiment: "none", DelaySeconds: 0.75, ErrorEvery: 2, Seed: 7, Layer: LayerCommand}},
		{map[string]string{"CHAOS": "latency", "CHAOS_SEED": "7"}, Config{Experiment: "latency", DelaySeconds: 0.75, ErrorEvery: 2, Seed: 7, Layer: LayerCommand}},
		{map[string]string{"CHAOS": "error", "CHAOS_ERROR_EVERY": "5", "CHAOS_SEED": "7"}, Config{Experiment: "error", DelaySeconds: 0.75, ErrorEvery: 5, Seed: 7, Layer: LayerCommand}},
		{map[string]string{"CHAOS": "Latency, error", "CHAOS_DELAY_SECONDS": "0.1", "CHAOS_SEED": "7"}, Config{Experiment: "latency,error", DelaySeconds: 0.1, ErrorEvery: 2, Seed: 7, Layer: LayerCommand}},
		{map[string]string{"CHAOS": "error,latency", "CHAOS_DELAY_SECONDS": "0", "CHAOS_DELAY_JITTER_SECONDS": "0.05", "CHAOS_SEED": "7"},
			Config{Experiment: "latency,error", JitterSeconds: 0.05, ErrorEvery: 2, Seed: 7, Layer: LayerCommand}},
		{map[string]string{"CHAOS": "none", "CHAOS_DELAY_SECONDS": "60", "CHAOS_SEED": "7"}, Config{Experiment: "none", DelaySeconds: 60, ErrorEvery: 2, Seed: 7, Layer: LayerCommand}},
		{map[string]string{"CHAOS": "latency", "CHAOS_DELAY_JITTER_SECONDS": "0.02", "CHAOS_COMMANDS": "GET, evalsha", "CHAOS_SEED": "7"},
			Config{Experiment: "latency", DelaySeconds: 0.75, JitterSeconds: 0.02, Commands: []string{"get", "evalsha"}, ErrorEvery: 2, Seed: 7, Layer: LayerCommand}},
		{map[string]string{"CHAOS": "error", "CHAOS_LAYER": "Connection", "CHAOS_ERROR_REPLY": "readonly", "CHAOS_SEED": "7"},
			Config{Experiment: "error", DelaySeconds: 0.75, ErrorEvery: 2, Seed: 7, Layer: LayerConnection, ErrorReply: "READONLY"}},
		{map[string]string{"CHAOS": "error", "CHAOS_ERROR_REPLY": " noscript", "CHAOS_COMMANDS": "EVALSHA", "CHAOS_ERROR_EVERY": "1", "CHAOS_SEED": "7"},
			Config{Experiment: "error", DelaySeconds: 0.75, Commands: []string{"evalsha"}, ErrorEvery: 1, Seed: 7, Layer: LayerCommand, ErrorReply: "NOSCRIPT"}},
		{map[string]string{"CHAOS": "error", "CHAOS_ERROR_RATE": "0.3", "CHAOS_SEED": "42"}, Config{Experiment: "error", DelaySeconds: 0.75, ErrorEvery: 2, ErrorRate: 0.3, Seed: 42, Layer: LayerCommand}},
	} {
		// Every experiment has a duration, and remembers that it was read
		// from the environment, for the errors New may give.
		tc.want.DurationSeconds, tc.want.fromEnv = defaultDurationSeconds, true
		got, err := FromEnv(mapGetenv(tc.env))
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("env %v: %+v, %v; want %+v", tc.env, got, err, tc.want)
		}
	}
	if c, _ := FromEnv(mapGetenv(nil)); c.Seed == 0 {
		t.Errorf("no CHAOS_SEED gave seed 0, want a random one to show")
	}
}

// TestFromEnvRefuses: every invalid value is one line naming the variable,
// the value and what is allowed. The shop turns it into its usage error
// (TestChaosConfigInvalid in the root package).
func TestFromEnvRefuses(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"CHAOS": "true"}, `invalid CHAOS "true": ambiguous, it does not say which experiment; want latency, error or latency,error`},
		{map[string]string{"CHAOS": "1"}, `invalid CHAOS "1": ambiguous`},
		{map[string]string{"CHAOS": "latancy"}, `invalid CHAOS "latancy": want latency, error or latency,error`},
		{map[string]string{"CHAOS": "latency,"}, `invalid CHAOS "latency,"`},
		{map[string]string{"CHAOS_DELAY_SECONDS": "fast"}, `invalid CHAOS_DELAY_SECONDS "fast": want seconds from 0 to 60`},
		{map[string]string{"CHAOS_DELAY_SECONDS": "-0.1"}, `invalid CHAOS_DELAY_SECONDS "-0.1"`},
		{map[string]string{"CHAOS_DELAY_SECONDS": "60.5"}, `invalid CHAOS_DELAY_SECONDS "60.5"`},
		{map[string]string{"CHAOS_DELAY_SECONDS": "NaN"}, `invalid CHAOS_DELAY_SECONDS "NaN"`},
		{map[string]string{"CHAOS_DELAY_SECONDS": "Inf"}, `invalid CHAOS_DELAY_SECONDS "Inf": want seconds from 0 to 60`},
		{map[string]string{"CHAOS_DELAY_SECONDS": "-inf"}, `invalid CHAOS_DELAY_SECONDS "-inf"`},
		{map[string]string{"CHAOS_DELAY_SECONDS": "1e3"}, `invalid CHAOS_DELAY_SECONDS "1e3"`},
		{map[string]string{"CHAOS_DELAY_JITTER_SECONDS": "infinity"}, `invalid CHAOS_DELAY_JITTER_SECONDS "infinity"`},
		{map[string]string{"CHAOS_ERROR_RATE": "+Inf"}, `invalid CHAOS_ERROR_RATE "+Inf": want a probability from 0 to 1`},
		{map[string]string{"CHAOS_ERROR_RATE": "2e0"}, `invalid CHAOS_ERROR_RATE "2e0"`},
		{map[string]string{"CHAOS_DELAY_SECONDS": "750ms"}, `invalid CHAOS_DELAY_SECONDS "750ms"`},
		{map[string]string{"CHAOS_DELAY_JITTER_SECONDS": "-1"}, `invalid CHAOS_DELAY_JITTER_SECONDS "-1": want seconds from 0 to 60`},
		{map[string]string{"CHAOS_ERROR_EVERY": "0"}, `invalid CHAOS_ERROR_EVERY "0": want a whole number from 1 up`},
		{map[string]string{"CHAOS_ERROR_EVERY": "2.5"}, `invalid CHAOS_ERROR_EVERY "2.5"`},
		{map[string]string{"CHAOS_ERROR_EVERY": "99999999999999999999"}, `invalid CHAOS_ERROR_EVERY`},
		{map[string]string{"CHAOS_ERROR_RATE": "1.5"}, `invalid CHAOS_ERROR_RATE "1.5": want a probability from 0 to 1`},
		{map[string]string{"CHAOS_ERROR_RATE": "0.3", "CHAOS_ERROR_EVERY": "2"}, `CHAOS_ERROR_EVERY and CHAOS_ERROR_RATE are both set`},
		{map[string]string{"CHAOS": "latency", "CHAOS_LAYER": "connection", "CHAOS_SESSIONS_PERCENT": "50"}, `invalid CHAOS_LAYER "connection": want command with sessions_percent below 100`},
		{map[string]string{"CHAOS_SEED": "-1"}, `invalid CHAOS_SEED "-1": want a whole number from 0 up`},
		{map[string]string{"CHAOS_COMMANDS": "get,,set"}, `invalid CHAOS_COMMANDS "get,,set": want Redis command names`},
		{map[string]string{"CHAOS_COMMANDS": "get*"}, `invalid CHAOS_COMMANDS "get*"`},
		{map[string]string{"CHAOS_LAYER": "network"}, `invalid CHAOS_LAYER "network": want command`},
		{map[string]string{"CHAOS_ERROR_REPLY": "EXECABORT"}, `invalid CHAOS_ERROR_REPLY "EXECABORT": want LOADING, READONLY, CLUSTERDOWN, NOSCRIPT, OOM, BUSY, TRYAGAIN, MOVED, ASK or MASTERDOWN`},
		// Settings that would run and inject nothing.
		{map[string]string{"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "0"}, `invalid CHAOS_DELAY_SECONDS "0": want seconds above 0 for a latency experiment`},
		{map[string]string{"CHAOS": "error", "CHAOS_ERROR_RATE": "0"}, `invalid CHAOS_ERROR_RATE "0": want a probability above 0`},
		{map[string]string{"CHAOS": "latency", "CHAOS_SESSIONS_PERCENT": "0"}, `invalid CHAOS_SESSIONS_PERCENT "0": want a percentage above 0`},
	} {
		_, err := FromEnv(mapGetenv(tc.env))
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("env %v: error %q, want one line containing %q", tc.env, err, tc.want)
		}
	}
}

// TestFromEnvNamesWhatTheShopAlwaysNamed pins whole messages, the ones the
// shop gave before the package existed: the guardrails' numbers are shown as
// parsed and judged after the experiment's settings, and of several invalid
// variables the same one is named.
func TestFromEnvNamesWhatTheShopAlwaysNamed(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"CHAOS_DURATION_SECONDS": "1e6"}, `invalid CHAOS_DURATION_SECONDS "1e+06": want seconds from 1 to 86400, such as 300 (default 1800; there is no unlimited run: 0 is refused)`},
		{map[string]string{"CHAOS_SESSIONS_PERCENT": "Inf"}, `invalid CHAOS_SESSIONS_PERCENT "+Inf": want a percentage from 0 to 100, such as 50`},
		{map[string]string{"CHAOS_STOP_FAILED_READS_SHARE": "1e3"}, `invalid CHAOS_STOP_FAILED_READS_SHARE "1000": want a share from 0 to below 1, such as 0.5 (0: no such stop condition)`},
		{map[string]string{"CHAOS_STOP_SEARCH_P99_SECONDS": "-inf"}, `invalid CHAOS_STOP_SEARCH_P99_SECONDS "-Inf": want seconds from 0 to 60, such as 0.5 (0: no such stop condition)`},
		{map[string]string{"CHAOS": "true", "CHAOS_SESSIONS_PERCENT": "101"},
			`invalid CHAOS "true": ambiguous, it does not say which experiment; want latency, error or latency,error (none, unset or empty: no experiment)`},
		{map[string]string{"CHAOS_COMMANDS": "get*", "CHAOS_STOP_SEARCH_P99_SECONDS": "61"},
			`invalid CHAOS_COMMANDS "get*": want Redis command names, such as get or get,evalsha`},
		{map[string]string{"CHAOS_ERROR_RATE": "1.5", "CHAOS_ERROR_EVERY": "2"}, `invalid CHAOS_ERROR_RATE "1.5": want a probability from 0 to 1, such as 0.3`},
		{map[string]string{"CHAOS_ERROR_RATE": "0.3", "CHAOS_ERROR_EVERY": "x"},
			`CHAOS_ERROR_EVERY and CHAOS_ERROR_RATE are both set: set one, every Nth read or a random rate`},
		{map[string]string{"CHAOS_SESSIONS_PERCENT": "x", "CHAOS_STOP_FAILED_READS_SHARE": "x"},
			`invalid CHAOS_STOP_FAILED_READS_SHARE "x": want a share from 0 to below 1, such as 0.5 (0: no such stop condition)`},
		{map[string]string{"CHAOS_STOP_WINDOW_SEARCHES": "-1", "CHAOS_STOP_FAILED_READS_SHARE": "2"},
			`invalid CHAOS_STOP_WINDOW_SEARCHES "-1": want a whole number of searches from 1 to 100000, such as 100`},
		{map[string]string{"CHAOS": "yes", "CHAOS_COMMANDS": "get", "CHAOS_DELAY_JITTER_SECONDS": "0.1"},
			`invalid CHAOS "yes": ambiguous, it does not say which experiment; want latency, error or latency,error (none, unset or empty: no experiment)`},
	} {
		if _, err := FromEnv(mapGetenv(tc.env)); err == nil || err.Error() != tc.want {
			t.Errorf("env %v:\n error %v\n want  %s", tc.env, err, tc.want)
		}
	}
}

// TestFromEnvReadsATruthyChaos: the book starts experiment 1 with
// CHAOS=true CHAOS_DELAY_SECONDS=0.1. A truthy CHAOS runs the experiments
// whose settings are given, and New's warning says how to spell it.
func TestFromEnvReadsATruthyChaos(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want Config
	}{
		{map[string]string{"CHAOS": "true", "CHAOS_DELAY_SECONDS": "0.1", "CHAOS_SEED": "7"}, Config{Experiment: "latency", DelaySeconds: 0.1, ErrorEvery: 2, Seed: 7, Layer: LayerCommand,
			readAs: "CHAOS=true read as CHAOS=latency (CHAOS_DELAY_SECONDS set); write CHAOS=latency next time"}},
		{map[string]string{"CHAOS": "On", "CHAOS_ERROR_EVERY": "3", "CHAOS_SEED": "7"}, Config{Experiment: "error", DelaySeconds: 0.75, ErrorEvery: 3, Seed: 7, Layer: LayerCommand,
			readAs: "CHAOS=On read as CHAOS=error (CHAOS_ERROR_EVERY set); write CHAOS=error next time"}},
		{map[string]string{"CHAOS": "1", "CHAOS_DELAY_SECONDS": "0.2", "CHAOS_ERROR_RATE": "0.3", "CHAOS_SEED": "7"}, Config{Experiment: "latency,error", DelaySeconds: 0.2, ErrorEvery: 2, ErrorRate: 0.3, Seed: 7, Layer: LayerCommand,
			readAs: "CHAOS=1 read as CHAOS=latency,error (CHAOS_DELAY_SECONDS and CHAOS_ERROR_RATE set); write CHAOS=latency,error next time"}},
		// Spelled out, there is nothing to warn about.
		{map[string]string{"CHAOS": "latency", "CHAOS_DELAY_SECONDS": "0.1", "CHAOS_SEED": "7"}, Config{Experiment: "latency", DelaySeconds: 0.1, ErrorEvery: 2, Seed: 7, Layer: LayerCommand}},
	} {
		// Every experiment has a duration, and remembers that it was read
		// from the environment, for the errors New may give.
		tc.want.DurationSeconds, tc.want.fromEnv = defaultDurationSeconds, true
		got, err := FromEnv(mapGetenv(tc.env))
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("env %v: %+v, %v; want %+v", tc.env, got, err, tc.want)
		}
	}
}

// TestNewWarns: New warns that faults are compiled in, with the experiment,
// and how a truthy CHAOS was read.
func TestNewWarns(t *testing.T) {
	var logs bytes.Buffer
	cfg, err := FromEnv(mapGetenv(map[string]string{"CHAOS": "true", "CHAOS_DELAY_SECONDS": "0.1"}))
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`level=WARN msg="CHAOS BUILD[^"]*" experiment=latency delay_seconds=0.1 `),
		regexp.MustCompile(`level=WARN msg="CHAOS=true read as CHAOS=latency \(CHAOS_DELAY_SECONDS set\); write CHAOS=latency next time"`),
	} {
		if !want.MatchString(logs.String()) {
			t.Errorf("log has no line matching %s:\n%s", want, logs.String())
		}
	}
}

// TestFromJSON: a PUT body takes the defaults for what it leaves out, in
// canonical form; what the environment refuses, it refuses too, naming the
// JSON field; and anything but one JSON object is refused.
func TestFromJSON(t *testing.T) {
	got, err := FromJSON([]byte(`{"experiment":"latency","delay_seconds":0.05,"delay_jitter_seconds":0.01,"commands":["GET "],"seed":9}`))
	want := Config{Experiment: "latency", DelaySeconds: 0.05, JitterSeconds: 0.01, Commands: []string{"get"}, ErrorEvery: 2, Seed: 9, Layer: LayerCommand,
		Guardrails: Guardrails{DurationSeconds: defaultDurationSeconds}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("FromJSON = %+v, %v; want %+v", got, err, want)
	}
	if c, err := FromJSON([]byte(`{}`)); err != nil || c.Experiment != "none" || c.Seed == 0 {
		t.Errorf("FromJSON({}) = %+v, %v; want no experiment with a random seed", c, err)
	}
	for body, want := range map[string]string{
		`{"experiment":"true"}`:                       `invalid experiment "true": ambiguous, it does not say which experiment; want latency, error or latency,error (none, unset or empty: no experiment)`,
		`{"experiment":"slow"}`:                       `invalid experiment "slow": want latency, error or latency,error (none, unset or empty: no experiment)`,
		`{"delay_seconds":61}`:                        `invalid delay_seconds "61": want seconds from 0 to 60, such as 0.75`,
		`{"delay_seconds":-1}`:                        `invalid delay_seconds "-1": want seconds from 0 to 60, such as 0.75`,
		`{"error_rate":2}`:                            `invalid error_rate "2": want a probability from 0 to 1, such as 0.3`,
		`{"error_every":0}`:                           `invalid error_every "0": want a whole number from 1 up, such as 2 (every 2nd read fails)`,
		`{"experiment":"error","error_rate":0}`:       `invalid error_rate "0": want a probability above 0, such as 0.3 (to fail every Nth read instead: error_every; to fail none: DELETE)`,
		`{"experiment":"latency","delay_seconds":0}`:  `invalid delay_seconds "0": want seconds above 0 for a latency experiment, such as 0.75 (with no jitter, a delay of 0 injects nothing)`,
		`{"experiment":"error","sessions_percent":0}`: `invalid sessions_percent "0": want a percentage above 0, such as 50: at 0 no session is in the experiment group, so nothing would be injected`,
		`{"commands":["get*"]}`:                       `invalid commands "get*": want Redis command names, such as get or get,evalsha`,
		`{"error_every":3,"error_rate":0.5}`:          `error_every and error_rate are both set: set one, every Nth read (error_every) or a random rate (error_rate)`,
		`{"duration_seconds":0}`:                      `invalid duration_seconds "0": want seconds from 1 to 86400, such as 300 (default 1800; there is no unlimited run: 0 is refused)`,
		`{"layer":"network"}`:                         `invalid layer "network": want command (around each go-redis command, the default) or connection (on the connections go-redis dials)`,
		`{"error_reply":"EXECABORT"}`:                 `invalid error_reply "EXECABORT": want LOADING, READONLY, CLUSTERDOWN, NOSCRIPT, OOM, BUSY, TRYAGAIN, MOVED, ASK or MASTERDOWN (empty: CHAOS at the command layer, a dropped connection at the connection layer)`,
		`{"delay":1}`:                                 `body is not a JSON experiment: json: unknown field "delay"`,
		`{"seed":-1}`:                                 `body is not a JSON experiment: json: cannot unmarshal number -1 into Go struct field Config.seed of type uint64`,
		`{} {}`:                                       `body has more than one JSON value`,
		`{"experiment":"latency"} x`:                  `body has more than one JSON value`,
		`{`:                                           `body is not a JSON experiment: unexpected EOF`,
		`{"experiment":"latency","layer":"connection","sessions_percent":50}`: `invalid layer "connection": want command with sessions_percent below 100: the connection layer cannot tell sessions apart`,
	} {
		if _, err := FromJSON([]byte(body)); err == nil || err.Error() != want {
			t.Errorf("FromJSON(%s):\n error %v\n want  %s", body, err, want)
		}
	}
	for _, body := range []string{`not json`, `null`, ` null `, `[]`, `"latency"`, `1`, `true`, ``} {
		if _, err := FromJSON([]byte(body)); err == nil || !strings.HasPrefix(err.Error(), "body is not a JSON object: want an experiment such as ") {
			t.Errorf("FromJSON(%q) = %v, want it refused as not an object", body, err)
		}
	}
}
