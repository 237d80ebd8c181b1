package chaos

import (
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Options are what is particular to the service that runs experiments.
type Options struct {
	// Logger gets the experiment's warnings: the build, each change of
	// experiment, its end, each line with the run id of the experiment
	// running (LogHandler). nil: slog.Default().
	Logger *slog.Logger
	// Namespace prefixes the metrics' names, as in
	// Namespace_chaos_delays_injected_total; empty: none.
	Namespace string
	// Reads reports whether a command is one of the service's reads, which
	// the error experiment fails (unless Config.Commands names others) and
	// the stop conditions judge. nil: every GET.
	Reads func(Command) bool
	// Pages reports whether a request is one of the pages the guardrails
	// count by group and judge. nil: every request.
	Pages func(*http.Request) bool
	// Unit names whom a request is for (a session, a user, a tenant): the
	// blast radius puts each unit in the experiment or the control group.
	// A unit that the handler assigns during the request is given with
	// SetUnit. nil, or an empty unit: none, which a blast radius never
	// reaches.
	Unit func(*http.Request) string
	// Spared reports whether a command is one no experiment touches: no
	// delay, no failure, not counted as a read, at either layer. For the
	// service's health checks, whose commands a probe waits for: an
	// experiment that fails every replica's readiness probe causes the
	// outage the probe exists to prevent. (PING and a new connection's
	// handshake are spared anyway unless the commands list names them.) A
	// pipeline with a spared command is spared whole. nil: none.
	Spared func(Command) bool
	// ValidUnit checks the unit that GET ?session= asks about, and says what
	// it wants when it refuses one. nil: 1 to 256 printable ASCII bytes.
	ValidUnit func(string) (ok bool, want string)
	// Commands are the Redis commands the service sends, its connections'
	// handshake included: a Config whose commands name any other is
	// refused, since its latency would never apply. nil: only the names'
	// syntax is checked.
	Commands []string
	// Token is the credential that PUT, PATCH and DELETE of Handler need, as
	// Authorization: Bearer (TokenFromEnv reads one): 16 to 1024 printable
	// ASCII characters. Empty: New generates one and writes it to a new
	// file only this user can read, whose path it logs as token_file.
	Token string
}

// Command is what both layers know of a Redis command: its name in lower
// case and its key: the first argument of most commands, the first key of
// a script's (EVAL, EVALSHA, FCALL and their _RO forms; "" if it has none).
type Command struct {
	Name string
	Key  string
}

// keyAt is where a command's key is among its arguments, the name being 0:
// a script's keys follow the script and their number.
func keyAt(name string) int {
	switch name {
	case "eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro":
		return 3
	}
	return 1
}

// spared reports whether no experiment may touch any of cmds (the Spared
// option).
func (o *Options) spared(cmds ...Command) bool {
	if o.Spared == nil {
		return false
	}
	for _, c := range cmds {
		if o.Spared(c) {
			return true
		}
	}
	return false
}

func (o *Options) isRead(c Command) bool {
	if o.Reads == nil {
		return c.Name == "get"
	}
	return o.Reads(c)
}

func (o *Options) isPage(r *http.Request) bool { return o.Pages == nil || o.Pages(r) }

// checkCommands refuses a Config whose commands the service never sends;
// name spells the setting as the Config was written.
func (o *Options) checkCommands(c *Config, name string) error {
	if len(o.Commands) == 0 {
		return nil
	}
	for _, cmd := range c.Commands {
		if !slices.Contains(o.Commands, cmd) {
			return fmt.Errorf("invalid %s %q: %s is not a command this service sends; want some of %s",
				name, strings.Join(c.Commands, ","), cmd, strings.Join(o.Commands, ", "))
		}
	}
	return nil
}

func (o *Options) validUnit(unit string) (bool, string) {
	if o.ValidUnit != nil {
		return o.ValidUnit(unit)
	}
	for i := 0; i < len(unit); i++ {
		if unit[i] < ' ' || unit[i] > '~' {
			return false, "want 1 to 256 printable ASCII characters"
		}
	}
	return unit != "" && len(unit) <= 256, "want 1 to 256 printable ASCII characters"
}

// Experiment is the running experiment, which PUT on its control handler
// replaces, and what the experiments have done since it was made.
type Experiment struct {
	opts        Options
	logger      *slog.Logger
	tokenDigest [sha256.Size]byte
	// tokenGenerated: no fleet shares this instance's token, so no fleet
	// record verifies.
	tokenGenerated bool
	active         atomic.Pointer[plan]
	swap           sync.Mutex // serialises replacements, which read the plan they replace
	rdb            redis.UniversalClient
	clock          clock // nil: the real one

	roundTrips     atomic.Int64
	reads          atomic.Int64
	delaysInjected atomic.Int64
	errorsInjected atomic.Int64
	// The faults dry runs decided and did not inject, at either layer.
	delaysWouldInject atomic.Int64
	errorsWouldInject atomic.Int64
	// delayedNanos is the time the delays actually waited, cut short or not,
	// each measured on the monotonic clock: it tells an inaccurate delay from
	// the system's reaction.
	delayedNanos     atomic.Int64
	delaysInProgress atomic.Int64 // both layers' delays waiting now
	conn             connCounters
	// groupTotals count every run's pages by group since the experiment was
	// made, for the metrics, which must only grow; each run counts its own.
	groupTotals [2]groupCounters

	// The fleet (fleet_apply.go): a halt in force, the fleet's versions that
	// are over here (under swap), and this instance's name once it joined.
	halt       atomic.Pointer[Halt]
	fleetFloor int64
	instance   atomic.Pointer[string]
	member     atomic.Pointer[member] // nil: it joined none
	fleetReads atomic.Int64           // readings of the control plane followed
}

// New starts cfg (from FromEnv, FromJSON or Off) with the service's
// particulars, and warns in the log that faults are compiled in. Hook it in
// with Instrument and Middleware; serve Handler to change it at run time.
// An invalid cfg (FromEnv and FromJSON check all but what needs opts:
// Options.Commands) or Options.Token is an error of one line, and nothing
// starts.
func New(cfg Config, opts Options) (*Experiment, error) { return newExperiment(cfg, opts, nil) }

// newExperiment is New on the guardrails' clock c (nil: the real one), which
// must be in place before the first run starts: that run's duration is timed
// on it.
func newExperiment(cfg Config, opts Options, c clock) (*Experiment, error) {
	e := &Experiment{opts: opts, clock: c}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	e.logger = slog.New(e.LogHandler(logger.Handler()))
	e.opts.Commands = nil
	for _, cmd := range opts.Commands {
		e.opts.Commands = append(e.opts.Commands, strings.ToLower(cmd))
	}
	if err := e.check(&cfg); err != nil {
		return nil, err
	}
	token, tokenFile := opts.Token, ""
	if token == "" {
		var err error
		if token, tokenFile, err = generateToken(); err != nil {
			return nil, err
		}
	} else if want := checkToken(token); want != "" {
		return nil, fmt.Errorf("invalid chaos.Options.Token: %s", want)
	}
	e.tokenDigest = tokenDigest(token)
	e.tokenGenerated = tokenFile != ""
	p := newPlan(cfg)
	p.succeeded(nil, time.Now())
	e.swap.Lock()
	e.started(p, nil)
	e.active.Store(p)
	e.swap.Unlock()
	e.logPlan("CHAOS BUILD: fault injection is compiled in; never run this binary in production", cfg)
	if cfg.readAs != "" {
		e.logger.Warn(cfg.readAs)
	}
	if tokenFile != "" {
		e.logger.Warn("chaos control token generated: PUT, PATCH and DELETE need it as Authorization: Bearer; it is in token_file, which only this user can read",
			"token_file", tokenFile)
	}
	return e, nil
}

// check validates cfg, whoever built it, in the terms it was written in: the
// environment's variables or the JSON fields.
func (e *Experiment) check(cfg *Config) error {
	name, commands := jsonName, "commands"
	if cfg.fromEnv {
		name, commands = envName, "CHAOS_COMMANDS"
	}
	if err := cfg.check(name); err != nil {
		return err
	}
	return e.opts.checkCommands(cfg, commands)
}

// Use makes cfg the running experiment, in one step, after checking it as
// New does; an invalid cfg changes nothing.
func (e *Experiment) Use(cfg Config) error {
	if err := e.check(&cfg); err != nil {
		return err
	}
	e.swap.Lock()
	defer e.swap.Unlock()
	if err := e.refusesLocal(cfg); err != nil {
		return err
	}
	e.install(cfg, time.Time{}, 0)
	return nil
}

// install makes the checked cfg the running experiment, of the fleet's
// version fleetVersion (0: the instance's own); end, if not zero, is its end
// time instead of its duration's (a PATCH that does not name the duration
// keeps the running one's; a fleet record names it). The caller holds
// e.swap.
func (e *Experiment) install(cfg Config, end time.Time, fleetVersion int64) *plan {
	p := newPlan(cfg)
	p.fleetVersion = fleetVersion
	if fleetVersion != 0 {
		p.run.lease = &lease{} // extended by applyFleet
	}
	old := e.active.Load()
	if !end.IsZero() {
		p.run.setEnd(end)
	}
	p.succeeded(old, time.Now())
	e.started(p, old)
	e.active.Store(p)
	e.changed()
	attrs := cfg.logAttrs()
	if old != nil && old.runID != "" && old.runID != p.runID {
		// The run that ended here, which its id finds in the log.
		attrs = append(attrs, "ended_run_id", old.runID)
	}
	e.logger.Warn("chaos experiment replaced", attrs...)
	return p
}

// continueRun makes the checked cfg, which changes only the running
// experiment's faults (a PATCH), the running experiment on the same run: its
// pages, its stop conditions' window and judge, its start and its end stay,
// so that changing a delay neither restarts the stop conditions' count nor
// the clock. end, if not zero, is its new end time. The caller holds e.swap.
func (e *Experiment) continueRun(cfg Config, end time.Time, fleetVersion int64) *plan {
	old := e.active.Load()
	r := old.run
	p := planOn(cfg, r)
	p.fleetVersion = fleetVersion
	p.succeeded(old, time.Now())
	r.cfg.DurationSeconds = cfg.DurationSeconds
	if !end.IsZero() && !end.Equal(r.end()) {
		r.stopTimer()
		r.setEnd(end)
		r.stopTimer = e.guardClock().AfterFunc(end.Sub(e.now()), func() { e.end(p, nil) })
	}
	old.retired()
	e.active.Store(p)
	e.changed()
	e.logPlan("chaos experiment changed", cfg)
	return p
}

// Stop ends the running experiment: no injection until the next Use.
func (e *Experiment) Stop() { e.Use(Off()) }

// Config is the running experiment.
func (e *Experiment) Config() Config { return e.active.Load().config }

func (e *Experiment) logPlan(msg string, c Config) { e.logger.Warn(msg, c.logAttrs()...) }
