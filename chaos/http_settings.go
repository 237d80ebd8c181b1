package chaos

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The settings of the dependencies an experiment faults and of its HTTP
// faults, which settings.go's table lists with the others. A setting that
// could never apply (an HTTP fault when only redis is named, a Redis one
// when redis is not) is refused, as a latency of a command the service
// never sends is.

// redisDependency is the name of the Redis client's dependency.
const redisDependency = "redis"

// isDependencyName reports what a dependency's name may be: what a metric's
// label value and an environment variable's list both take as it is; a
// lower-case letter, then up to 63 of a-z 0-9 _ -.
func isDependencyName(s string) bool {
	return s != "" && len(s) <= 64 && isLower(s[0]) && allBytes(s, func(b byte) bool { return isLower(b) || isDigit(b) || b == '_' || b == '-' })
}

const (
	wantDependencies = "want redis and/or the HTTP dependencies this service calls, such as redis, recommender or redis,recommender (empty: redis)"
	wantHTTPFault    = "want error (a transport error, the default), status (a synthetic response of http_status) or hang (no answer until the caller's deadline)"
	wantHTTPStatus   = "want an HTTP status from 400 to 599, such as 503 (the default)"
	wantHTTPHosts    = "want host names or host:port, such as recommender.internal or 127.0.0.1:8081 (empty: every host)"
	wantHTTPPaths    = "want path prefixes starting with /, such as /recommendations (empty: every path)"
	wantAfterHeaders = "want true (hold the response body after its headers) or false (delay the request, the default)"
	wantHTTPNamed    = "want an HTTP dependency in dependencies too, such as recommender: only HTTP calls take it"
	defaultHTTPCode  = 503
)

// faultsRedis reports whether c faults the Redis client.
func (c *Config) faultsRedis() bool {
	return len(c.Dependencies) == 0 || slices.Contains(c.Dependencies, redisDependency)
}

// httpDependencies are the HTTP dependencies c faults.
func (c *Config) httpDependencies() []string {
	return slices.DeleteFunc(slices.Clone(c.Dependencies), func(d string) bool { return d == redisDependency })
}

// listSetting is a setting of a list of names, comma-separated in the
// environment, each put in canonical form by norm and judged by valid.
func listSetting(env, field, want string, at func(*Config) *[]string, norm func(string) string, valid func(string) bool,
	needs func(*Config) string) setting {
	return setting{env: env, field: field, want: want,
		parse: func(c *Config, raw string) bool { *at(c) = strings.Split(raw, ","); return true },
		check: func(c *Config) (any, string) {
			list := *at(c)
			for i := range list {
				list[i] = norm(list[i])
				if !valid(list[i]) {
					return strings.Join(list, ","), want
				}
			}
			if len(list) > 0 && needs != nil {
				return strings.Join(list, ","), needs(c)
			}
			return nil, ""
		}}
}

func lowerTrimmed(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// needsHTTP is what a setting of the HTTP faults wants when c names no HTTP
// dependency; "" when it does.
func needsHTTP(c *Config) string { return wantIf(len(c.httpDependencies()) == 0, wantHTTPNamed) }

func dependenciesSetting() setting {
	s := listSetting("CHAOS_DEPENDENCIES", "dependencies", wantDependencies, func(c *Config) *[]string { return &c.Dependencies },
		lowerTrimmed, isDependencyName, nil)
	check := s.check
	s.check = func(c *Config) (any, string) {
		if shown, want := check(c); want != "" {
			return shown, want
		}
		c.Dependencies = dedupe(c.Dependencies)
		if c.faultsRedis() {
			return nil, ""
		}
		// Redis's own settings would never apply: say so rather than run an
		// experiment that does not do what it says.
		shown := strings.Join(c.Dependencies, ",")
		switch {
		case c.Layer == LayerConnection:
			return shown, "want redis among them with layer connection, which is where Redis's connections are faulted"
		case c.ErrorReply != "":
			return shown, "want redis among them with error_reply, which only Redis reads get"
		case len(c.Commands) > 0:
			return shown, "want redis among them with commands, which name Redis commands"
		}
		return nil, ""
	}
	return s
}

// checkHTTPFault is http_fault's check: error, status or hang, the last
// two only with an HTTP dependency.
func checkHTTPFault(c *Config) (any, string) {
	c.HTTPFault = lowerTrimmed(c.HTTPFault)
	if _, known := httpFailures[c.HTTPFault]; !known {
		return c.HTTPFault, wantHTTPFault
	}
	if c.HTTPFault != "" && c.HTTPFault != httpFaultError {
		if want := needsHTTP(c); want != "" {
			return c.HTTPFault, want
		}
		// An experiment that runs and fails no call would never answer
		// it; with none running it waits for the PATCH that starts one.
		return c.HTTPFault, wantIf(c.Experiment != "none" && !c.failsReads(),
			"want an experiment that fails calls (error or latency,error) with http_fault "+c.HTTPFault)
	}
	return nil, ""
}

// dedupe is list without its repeats, in its order.
func dedupe(list []string) []string {
	out := list[:0]
	for i, v := range list {
		if !slices.Contains(list[:i], v) {
			out = append(out, v)
		}
	}
	return out
}

// parseHTTPStatus reads CHAOS_HTTP_STATUS, refusing it out of range as typed.
func parseHTTPStatus(c *Config, raw string) bool {
	n, err := strconv.Atoi(raw)
	c.HTTPStatus = n
	return err == nil && n >= 400 && n <= 599
}

func checkHTTPStatus(c *Config) (any, string) {
	if c.HTTPStatus == 0 && c.HTTPFault == httpFaultStatus {
		c.HTTPStatus = defaultHTTPCode // shown, so the status says what is answered
	}
	if c.HTTPStatus != 0 && (c.HTTPStatus < 400 || c.HTTPStatus > 599) {
		return c.HTTPStatus, wantHTTPStatus
	}
	if c.HTTPStatus != 0 && c.HTTPFault != httpFaultStatus {
		if c.HTTPStatus == defaultHTTPCode {
			// The default a status fault filled in, left by a PATCH to
			// another fault: nothing the operator asked for.
			c.HTTPStatus = 0
			return nil, ""
		}
		return c.HTTPStatus, "want http_fault status with http_status, the status a failed call is answered with"
	}
	return nil, ""
}

func parseDelayAfterHeaders(c *Config, raw string) bool {
	v, err := strconv.ParseBool(raw)
	c.DelayAfterHeaders = v
	return err == nil
}

func checkDelayAfterHeaders(c *Config) (any, string) {
	if c.DelayAfterHeaders {
		if want := needsHTTP(c); want != "" {
			return true, want
		}
		return true, wantIf(c.Experiment != "none" && !c.latency(),
			"want a latency experiment (latency or latency,error) with delay_after_headers, which places its delay")
	}
	return nil, ""
}

func httpHostsSetting() setting {
	return listSetting("CHAOS_HTTP_HOSTS", "http_hosts", wantHTTPHosts, func(c *Config) *[]string { return &c.HTTPHosts },
		lowerTrimmed, func(h string) bool { return h != "" && !strings.ContainsAny(h, "/?#@ \t") }, needsHTTP)
}

func httpPathsSetting() setting {
	return listSetting("CHAOS_HTTP_PATHS", "http_paths", wantHTTPPaths, func(c *Config) *[]string { return &c.HTTPPaths },
		strings.TrimSpace, func(p string) bool { return strings.HasPrefix(p, "/") && !strings.ContainsAny(p, "?# \t") }, needsHTTP)
}

// checkDependencies refuses a Config that names a dependency the service
// does not register, naming the setting as the Config was written.
func (e *Experiment) checkDependencies(c *Config) error {
	name := "dependencies"
	if c.fromEnv {
		name = "CHAOS_DEPENDENCIES"
	}
	for _, d := range c.Dependencies {
		if d != redisDependency && e.httpCalls[d] == nil {
			known := append([]string{redisDependency}, e.opts.HTTPDependencies...)
			return fmt.Errorf("invalid %s %q: %s is not a dependency this service registers; want some of %s",
				name, strings.Join(c.Dependencies, ","), d, strings.Join(known, ", "))
		}
	}
	return nil
}

// registerHTTP checks the HTTP dependencies the service names and makes
// their counters, which every plan's faults share.
func (e *Experiment) registerHTTP(names []string) error {
	e.opts.HTTPDependencies = nil
	e.httpCalls = map[string]*httpCounters{}
	for _, n := range names {
		n = lowerTrimmed(n)
		if !isDependencyName(n) || n == redisDependency || e.httpCalls[n] != nil {
			return fmt.Errorf("invalid chaos.Options.HTTPDependencies %q: want distinct names of 1 to 64 characters from a-z 0-9 _ -, starting with a letter, other than redis",
				strings.Join(names, ","))
		}
		e.opts.HTTPDependencies = append(e.opts.HTTPDependencies, n)
		e.httpCalls[n] = &httpCounters{}
	}
	return nil
}

// httpLogAttrs are c's HTTP settings for a log line, those set.
func (c Config) httpLogAttrs() []any {
	var attrs []any
	if len(c.Dependencies) > 0 {
		attrs = append(attrs, "dependencies", strings.Join(c.Dependencies, ","))
	}
	if len(c.httpDependencies()) == 0 {
		return attrs
	}
	attrs = append(attrs, "http_fault", cmp.Or(c.HTTPFault, httpFaultError))
	if c.HTTPStatus != 0 {
		attrs = append(attrs, "http_status", c.HTTPStatus)
	}
	if len(c.HTTPHosts) > 0 {
		attrs = append(attrs, "http_hosts", strings.Join(c.HTTPHosts, ","))
	}
	if len(c.HTTPPaths) > 0 {
		attrs = append(attrs, "http_paths", strings.Join(c.HTTPPaths, ","))
	}
	if c.DelayAfterHeaders {
		attrs = append(attrs, "delay_after_headers", true)
	}
	return attrs
}
