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

	"github.com/redis/go-redis/v9"
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
	usage := c.Program + " start|patch|stop|halt|resume|status [flags]"
	if len(args) == 0 {
		return UsageError("missing command: want " + usage)
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
	case "stop", "resume":
	default:
		return UsageError(fmt.Sprintf("unknown command %q: want %s", args[0], usage))
	}
	if err := fs.Parse(args[1:]); err != nil {
		return UsageError(fmt.Sprintf("%s %s: %v", c.Program, args[0], err))
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
	end := time.Now().Add(time.Duration(cfg.DurationSeconds * float64(time.Second)))
	rec, sig, v, err := c.record(ctx, key, cfg, end, owner())
	if err != nil {
		return fmt.Errorf("control plane: %v", err)
	}
	id := make([]byte, 16)
	rand.Read(id)
	leaseID := hex.EncodeToString(id)
	ttl, detached := lease, "0"
	if detach {
		ttl, detached = time.Until(end), "1"
	}
	k := c.Fleet.keys()
	wctx, cancel := context.WithTimeout(ctx, ctlTimeout)
	res, err := startScript.Run(wctx, c.Fleet.Redis, []string{k.experiment, k.halt},
		rec, sig, leaseID, ttl.Milliseconds(), detached, k.channel).StringSlice()
	cancel()
	if err != nil {
		return fmt.Errorf("control plane: %v", err)
	}
	switch res[0] {
	case "halted":
		return refusedByHalt(res[1])
	case "running":
		var cur experimentRecord
		if json.Unmarshal([]byte(res[1]), &cur) != nil || cur.Version == 0 {
			return errors.New("refused: the fleet's experiment key holds a record ctl cannot read: ctl stop removes it")
		}
		return fmt.Errorf("refused: fleet experiment version %d runs (started by %s, ends at %s): ctl patch changes it, ctl stop stops it",
			cur.Version, cur.Owner, cur.EndsAt.Format(time.RFC3339))
	}
	if detach {
		c.printf("started fleet experiment version %d: %s; detached, it ends at %s (ctl stop stops it)", v, describe(cfg), end.Format(time.RFC3339))
		return nil
	}
	c.printf("started fleet experiment version %d: %s; lease %s, renewed until it ends at %s (Ctrl-C stops it)",
		v, describe(cfg), lease, end.Format(time.RFC3339))
	return c.hold(ctx, key, leaseID, lease, end)
}

func refusedByHalt(record string) error {
	var h haltRecord
	json.Unmarshal([]byte(record), &h)
	return fmt.Errorf("refused: chaos is halted fleet-wide by %s at %s (%s): ctl resume lifts it",
		h.By, h.At.Format(time.RFC3339), h.Reason)
}

// hold renews the lease every third of it until the experiment's end (a
// patch may move it), ctx's end, or its record's removal.
func (c *Ctl) hold(ctx context.Context, key [32]byte, leaseID string, lease time.Duration, end time.Time) error {
	k := c.Fleet.keys()
	renewed := time.Now()
	tick := time.NewTicker(lease / 3)
	defer tick.Stop()
	// A change announced (another ctl's stop, a halt) is looked at now,
	// not at the next renewal.
	sub := c.Fleet.Redis.Subscribe(ctx, k.channel)
	defer sub.Close()
	changes := sub.Channel()
	ends := time.NewTimer(time.Until(end))
	defer ends.Stop()
	var unreachable error
	for {
		select {
		case <-ctx.Done():
			return c.stopOwn(leaseID, "interrupted")
		case <-ends.C:
			return c.stopOwn(leaseID, "its duration ran out")
		case <-tick.C:
		case <-changes:
		}
		sent := time.Now()
		rctx, cancel := context.WithTimeout(ctx, lease/3)
		rec, err := renewScript.Run(rctx, c.Fleet.Redis, []string{k.experiment}, leaseID, lease.Milliseconds()).Text()
		cancel()
		switch {
		case errors.Is(err, redis.Nil) && time.Since(renewed) > lease:
			// Gone because no renewal reached Redis in time (ctl was paused,
			// or its renewals were late): the experiment did not run its
			// course, as when Redis is unreachable for the lease.
			return fmt.Errorf("lost the lease: it expired in Redis, the last renewal at %s; every instance stopped by its expiry",
				renewed.Format(time.RFC3339Nano))
		case errors.Is(err, redis.Nil):
			return c.gone()
		case err != nil && ctx.Err() != nil:
			return c.stopOwn(leaseID, "interrupted")
		case err != nil:
			if unreachable == nil {
				fmt.Fprintf(c.Stderr, "cannot renew the lease: %v; every instance stops by %s unless it is renewed\n",
					err, renewed.Add(lease).Format(time.RFC3339Nano))
			}
			unreachable = err
			if time.Since(renewed) > lease {
				return fmt.Errorf("lost the lease: the control plane has been unreachable since %s (%v); every instance stopped by its expiry",
					renewed.Format(time.RFC3339), err)
			}
			continue
		}
		if unreachable != nil {
			fmt.Fprintln(c.Stderr, "lease renewed again")
			unreachable = nil
		}
		renewed = sent
		var r experimentRecord
		if json.Unmarshal([]byte(rec), &r) == nil && !r.EndsAt.Equal(end) {
			end = r.EndsAt
			ends.Reset(time.Until(end))
		}
	}
}

// gone says why the held experiment's record is gone: a halt (exit 1) or
// another ctl's stop, or its lease expired in Redis.
func (c *Ctl) gone() error {
	k := c.Fleet.keys()
	ctx, cancel := context.WithTimeout(context.Background(), ctlTimeout)
	defer cancel()
	h, err := c.Fleet.Redis.HMGet(ctx, k.halt, "record", "halted").Result()
	if err == nil && h[1] == "1" {
		rec, _ := h[0].(string)
		return refusedByHalt(rec)
	}
	c.printf("the fleet experiment is gone: stopped by another ctl, or its lease expired before a renewal reached Redis")
	return nil
}

// stopOwn removes the held experiment, if it is still this lease's.
func (c *Ctl) stopOwn(leaseID, why string) error {
	k := c.Fleet.keys()
	ctx, cancel := context.WithTimeout(context.Background(), ctlTimeout)
	defer cancel()
	rec, err := stopScript.Run(ctx, c.Fleet.Redis, []string{k.experiment}, k.channel, leaseID).Text()
	switch {
	case errors.Is(err, redis.Nil):
		return c.gone()
	case err != nil:
		return fmt.Errorf("%s, but the control plane did not take the stop: %v; every instance stops when the lease lapses", why, err)
	}
	var r experimentRecord
	json.Unmarshal([]byte(rec), &r)
	c.printf("stopped fleet experiment version %d: %s", r.Version, why)
	return nil
}
