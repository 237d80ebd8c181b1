package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"time"
)

// Ctl is the fleet's command line: the chaos build's ctl subcommand. It
// writes the fleet's experiment and halt to the control plane, signed with
// the control token, and reads the fleet's status.
//
//	start [-f FILE] [-lease 30s] [-detach]   start an experiment fleet-wide (a PUT body), hold its lease
//	patch [-f FILE]                          change the fields the body names (a PATCH body)
//	stop                                     stop it
//	halt -reason TEXT                        stop every experiment, refuse new ones until resume
//	resume                                   lift the halt
//	status [-json]                           the experiment, the halt, every instance
//	run FILE [-dry-run] [-journal PATH] [-report PATH]
//	                                         an experiment file's steps, judged (docs/experiment-files.md)
type Ctl struct {
	Fleet Fleet
	// Token is the fleet's control token (TokenFromEnv), the one every
	// instance has: the records are signed with it.
	Token string
	// Commands are the service's, as in Options: an experiment naming
	// another is refused here, before it reaches the fleet.
	Commands []string
	// Program names the command in messages, as "shopsession-chaos ctl".
	Program string
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
}

// UsageError is a ctl command used wrongly: its caller exits 2, as for a
// flag. Any other error of Run is a refusal or a failure: exit 1.
type UsageError string

func (e UsageError) Error() string { return string(e) }

// ExitCode is 2, as for a bad flag.
func (e UsageError) ExitCode() int { return 2 }

const (
	defaultLease = 30 * time.Second
	minLease     = 2 * time.Second
	maxLease     = 10 * time.Minute
	// ctlTimeout bounds each of ctl's Redis operations.
	ctlTimeout = 5 * time.Second
)

// Run runs one ctl command, args being its name and flags. start holds the
// lease until the experiment's end or until ctx is done (the caller's
// SIGINT or SIGTERM), then stops the experiment and returns nil.
func (c *Ctl) Run(ctx context.Context, args []string) error {
	usage := c.Program + " start|patch|stop|halt|resume|status|run [flags]"
	if len(args) == 0 {
		return UsageError("missing command: want " + usage)
	}
	if err := c.Fleet.check(); err != nil {
		return err
	}
	if c.Token == "" {
		return UsageError(c.Program + " signs the fleet's records with the control token: set " + envToken + " or " + envTokenFile + " to the one every instance has")
	}
	if want := checkToken(c.Token); want != "" {
		return UsageError("invalid control token: " + want)
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		file   = new(string)
		lease  = new(time.Duration)
		detach = new(bool)
		reason = new(string)
		asJSON = new(bool)
		dry    = new(bool)
		jpath  = new(string)
		rpath  = new(string)
	)
	switch args[0] {
	case "start":
		fs.StringVar(file, "f", "", "the experiment, a JSON body as PUT /debug/chaos takes; none: stdin")
		fs.DurationVar(lease, "lease", defaultLease, "the lease ctl renews, 2s to 10m")
		fs.BoolVar(detach, "detach", false, "write a lease for the experiment's duration and exit")
	case "patch":
		fs.StringVar(file, "f", "", "the fields to change, a JSON body as PATCH /debug/chaos takes; none: stdin")
	case "halt":
		fs.StringVar(reason, "reason", "", "why, for every instance's log and the fleet's status")
	case "status":
		fs.BoolVar(asJSON, "json", false, "print JSON")
	case "run":
		fs.BoolVar(dry, "dry-run", false, "inject nothing: count what each step would have injected, and judge that the groups do not differ")
		fs.StringVar(jpath, "journal", "", "append every event as a JSON line to this file, as it happens")
		fs.StringVar(rpath, "report", "", "write the run's report, one HTML file, here at the end")
	case "stop", "resume":
	default:
		return UsageError(fmt.Sprintf("unknown command %q: want %s", args[0], usage))
	}
	if err := fs.Parse(args[1:]); errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(c.Stdout, "Usage: %s %s [flags]\n", c.Program, args[0])
		fs.SetOutput(c.Stdout)
		fs.PrintDefaults()
		return nil
	} else if err != nil {
		return UsageError(fmt.Sprintf("%s %s: %v", c.Program, args[0], err))
	}
	var runPath string
	if args[0] == "run" && fs.NArg() > 0 {
		// ctl run FILE -flags: the file may come before the flags.
		runPath = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return UsageError(fmt.Sprintf("%s run: %v", c.Program, err))
		}
	}
	if fs.NArg() > 0 {
		return UsageError(fmt.Sprintf("%s %s: unexpected argument %q", c.Program, args[0], fs.Arg(0)))
	}
	key := tokenDigest(c.Token)
	named := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { named[f.Name] = true })
	switch args[0] {
	case "start":
		if *detach && named["lease"] {
			return UsageError(c.Program + " start: -lease with -detach: a detached experiment's lease is its duration; give one or the other")
		}
		if !*detach && (*lease < minLease || *lease > maxLease) {
			return UsageError(fmt.Sprintf("invalid -lease %s: want a duration from 2s to 10m, such as 30s", *lease))
		}
		body, err := c.body(*file)
		if err != nil {
			return err
		}
		return c.start(ctx, key, body, *lease, *detach)
	case "patch":
		body, err := c.body(*file)
		if err != nil {
			return err
		}
		return c.patch(ctx, key, body)
	case "stop":
		return c.stop(ctx)
	case "halt":
		if strings.TrimSpace(*reason) == "" {
			return UsageError(c.Program + " halt: -reason is required: say why, for whoever reads the instances' logs")
		}
		return c.halt(ctx, key, true, *reason)
	case "resume":
		return c.halt(ctx, key, false, "")
	case "run":
		if runPath == "" {
			return UsageError(c.Program + " run: missing experiment file: want run FILE [-dry-run] [-journal PATH] [-report PATH]")
		}
		return c.runFile(ctx, key, runPath, *dry, *jpath, *rpath)
	default:
		return c.status(ctx, key, *asJSON)
	}
}

// body reads the experiment from file, or from stdin.
func (c *Ctl) body(file string) ([]byte, error) {
	var r io.Reader = c.Stdin
	name := "stdin"
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, UsageError(fmt.Sprintf("-f: %v", err))
		}
		defer f.Close()
		r, name = f, file
	}
	if r == nil {
		return nil, UsageError("no experiment: give -f FILE or JSON on stdin")
	}
	body, err := io.ReadAll(io.LimitReader(r, 64<<10+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %v", name, err)
	}
	if len(body) > 64<<10 {
		return nil, fmt.Errorf("%s is larger than 64 KiB", name)
	}
	return body, nil
}

func (c *Ctl) checked(cfg *Config) error {
	o := Options{Commands: c.Commands}
	if err := o.checkCommands(cfg, "commands"); err != nil {
		return err
	}
	if cfg.Experiment == "none" {
		return errors.New(`experiment "none" starts nothing: ctl stop stops the fleet's experiment`)
	}
	return nil
}

func owner() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s@%s pid %d", name, host, os.Getpid())
}

func (c *Ctl) version(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, ctlTimeout)
	defer cancel()
	return nextVersion.Run(ctx, c.Fleet.Redis, []string{c.Fleet.keys().version}, time.Now().UnixMilli()).Int64()
}

// record signs an experiment record of cfg.
func (c *Ctl) record(ctx context.Context, key [32]byte, cfg Config, end time.Time, by string) (rec, sig string, v int64, err error) {
	if v, err = c.version(ctx); err != nil {
		return "", "", 0, err
	}
	r, _ := json.Marshal(experimentRecord{Version: v, Config: recordConfig(cfg), EndsAt: end, Owner: by, At: time.Now()})
	return string(r), sign(key, c.Fleet.keys().experiment, r), v, nil
}

func (c *Ctl) printf(format string, a ...any) { fmt.Fprintf(c.Stdout, format+"\n", a...) }

func describe(cfg Config) string {
	s := cfg.Experiment
	if cfg.latency() {
		s += fmt.Sprintf(" delay %gs", cfg.DelaySeconds)
	}
	if cfg.SessionsPercent != nil {
		s += fmt.Sprintf(" on %g%% of sessions", *cfg.SessionsPercent)
	}
	return s + fmt.Sprintf(", seed %d", cfg.Seed)
}

func (c *Ctl) start(ctx context.Context, key [32]byte, body []byte, lease time.Duration, detach bool) error {
	cfg, err := FromJSON(body)
	if err == nil {
		err = c.checked(&cfg)
	}
	if err != nil {
		return err
	}
	l, err := c.begin(ctx, key, cfg, lease, detach)
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return c.stopOwn(l.id, "interrupted as it started")
	}
	if detach {
		c.printf("started fleet experiment version %d: %s; detached, it ends at %s (ctl stop stops it)", l.version, describe(cfg), l.end.Format(time.RFC3339))
		return nil
	}
	c.printf("started fleet experiment version %d: %s; lease %s, renewed until it ends at %s (Ctrl-C stops it)",
		l.version, describe(cfg), lease, l.end.Format(time.RFC3339))
	return c.hold(ctx, key, l, lease)
}

// leased is a fleet experiment ctl wrote.
type leased struct {
	version int64
	id      string // the lease's, which only this ctl's stop and renewals name
	end     time.Time
	sent    time.Time // when the write that began the lease was sent
}

// begin writes cfg as the fleet's experiment on a lease, or refused.
func (c *Ctl) begin(ctx context.Context, key [32]byte, cfg Config, lease time.Duration, detach bool) (leased, error) {
	end := time.Now().Add(time.Duration(cfg.DurationSeconds * float64(time.Second)))
	rec, sig, v, err := c.record(ctx, key, cfg, end, owner())
	if err != nil {
		return leased{}, fmt.Errorf("control plane: %v", err)
	}
	id := make([]byte, 16)
	rand.Read(id)
	leaseID := hex.EncodeToString(id)
	ttl, detached := lease, "0"
	if detach {
		ttl, detached = time.Until(end), "1"
	}
	k := c.Fleet.keys()
	// Not cut by the caller's interrupt: a write cut short may still land,
	// and ctl would report a failure while the experiment runs. An
	// interrupt during the write stops what it wrote, after.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ctlTimeout)
	sent := time.Now()
	res, err := startScript.Run(wctx, c.Fleet.Redis, []string{k.experiment, k.halt},
		rec, sig, leaseID, ttl.Milliseconds(), detached, k.channel).StringSlice()
	cancel()
	if err != nil {
		// The write may have landed though its answer did not: remove
		// what this lease may have written, or it runs for the lease.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ctlTimeout)
		stopScript.Run(sctx, c.Fleet.Redis, []string{k.experiment}, k.channel, leaseID)
		cancel()
		return leased{}, fmt.Errorf("control plane: %v", err)
	}
	switch res[0] {
	case "halted":
		return leased{}, refusedByHalt(res[1])
	case "running":
		var cur experimentRecord
		if json.Unmarshal([]byte(res[1]), &cur) != nil || cur.Version == 0 {
			return leased{}, errors.New("refused: the fleet's experiment key holds a record ctl cannot read: ctl stop removes it")
		}
		return leased{}, fmt.Errorf("refused: fleet experiment version %d runs (started by %s, ends at %s): ctl patch changes it, ctl stop stops it",
			cur.Version, cur.Owner, cur.EndsAt.Format(time.RFC3339))
	}
	return leased{v, leaseID, end, sent}, nil
}
