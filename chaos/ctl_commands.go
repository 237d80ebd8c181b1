package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"
)

// ctl's commands besides start: patch, stop, halt and resume, status.

func (c *Ctl) patch(ctx context.Context, key [32]byte, body []byte) error {
	k := c.Fleet.keys()
	rctx, cancel := context.WithTimeout(ctx, ctlTimeout)
	v, err := readControl(rctx, c.Fleet.Redis, k)
	cancel()
	if err != nil {
		return fmt.Errorf("control plane: %v", err)
	}
	if v.experiment == "" {
		return errors.New("refused: no fleet experiment is running: ctl patch changes a running one; ctl start starts one")
	}
	var old experimentRecord
	if err := verified(key, k.experiment, v.experiment, v.experimentSig, &old); err != nil {
		return fmt.Errorf("refused: the fleet experiment's record is %v: ctl stop removes it", err)
	}
	cfg, err := FromJSON(old.Config)
	if err != nil {
		return fmt.Errorf("the fleet experiment's record: %v", err)
	}
	fields, err := decodeOnto(&cfg, body)
	if err == nil {
		err = cfg.check(jsonName)
	}
	if err == nil {
		err = c.checked(&cfg)
	}
	if err != nil {
		return err
	}
	end := old.EndsAt
	if names(fields, "duration_seconds") {
		end = time.Now().Add(time.Duration(cfg.DurationSeconds * float64(time.Second)))
	}
	rec, sig, version, err := c.record(ctx, key, cfg, end, old.Owner)
	if err != nil {
		return fmt.Errorf("control plane: %v", err)
	}
	wctx, cancel := context.WithTimeout(ctx, ctlTimeout)
	defer cancel()
	done, err := patchScript.Run(wctx, c.Fleet.Redis, []string{k.experiment}, v.experiment, rec, sig, end.UnixMilli(), k.channel).Int()
	if err != nil {
		return fmt.Errorf("control plane: %v", err)
	}
	if done == 0 {
		return errors.New("refused: the fleet experiment changed or stopped while this patch was made: read ctl status and try again")
	}
	c.printf("patched fleet experiment version %d to version %d: %s, ends at %s", old.Version, version, describe(cfg), end.Format(time.RFC3339))
	return nil
}

func (c *Ctl) stop(ctx context.Context) error {
	k := c.Fleet.keys()
	ctx, cancel := context.WithTimeout(ctx, ctlTimeout)
	defer cancel()
	rec, err := stopScript.Run(ctx, c.Fleet.Redis, []string{k.experiment}, k.channel, "").Text()
	switch {
	case errors.Is(err, redis.Nil):
		c.printf("no fleet experiment was running")
		return nil
	case err != nil:
		return fmt.Errorf("control plane: %v", err)
	}
	var r experimentRecord
	json.Unmarshal([]byte(rec), &r)
	c.printf("stopped fleet experiment version %d: every instance stops within 1 s", r.Version)
	return nil
}

// halt writes a halt (on) with its reason, or the resume that lifts it.
func (c *Ctl) halt(ctx context.Context, key [32]byte, on bool, reason string) error {
	v, err := c.version(ctx)
	if err != nil {
		return fmt.Errorf("control plane: %v", err)
	}
	r, _ := json.Marshal(haltRecord{Halted: on, Halt: Halt{By: owner(), Reason: reason, At: time.Now(), Version: v}})
	flag := "0"
	if on {
		flag = "1"
	}
	k := c.Fleet.keys()
	ctx, cancel := context.WithTimeout(ctx, ctlTimeout)
	defer cancel()
	if err := haltScript.Run(ctx, c.Fleet.Redis, []string{k.experiment, k.halt}, r, sign(key, k.halt, r), flag, k.channel).Err(); err != nil {
		return fmt.Errorf("control plane: %v", err)
	}
	if on {
		c.printf("halted: every instance stops its experiment within 1 s and refuses new ones until ctl resume")
	} else {
		c.printf("resumed: experiments may start again")
	}
	return nil
}

func (c *Ctl) status(ctx context.Context, key [32]byte, asJSON bool) error {
	ctx, cancel := context.WithTimeout(ctx, ctlTimeout)
	defer cancel()
	st, err := c.Fleet.status(ctx, key)
	if err != nil {
		return fmt.Errorf("control plane: %v", err)
	}
	if asJSON {
		enc := json.NewEncoder(c.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	switch x := st.Experiment; {
	case x == nil:
		c.printf("experiment: none")
	case x.Unverified:
		c.printf("experiment: version %d, NOT signed with this control token: the instances ignore it (ctl stop removes it)", x.Version)
	default:
		var cfg Config
		json.Unmarshal(x.Config, &cfg)
		lease := fmt.Sprintf("lease %.1fs left", x.LeaseLeft)
		if x.Detached {
			lease = "detached"
		}
		c.printf("experiment: version %d, %s; started by %s; ends at %s; %s", x.Version, describe(cfg), x.Owner,
			x.EndsAt.Format(time.RFC3339), lease)
	}
	if h := st.Halt; h != nil {
		c.printf("HALTED by %s at %s: %s", h.By, h.At.Format(time.RFC3339), h.Reason)
	}
	w := tabwriter.NewWriter(c.Stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(w, "INSTANCE\tBUILD\tVERSION\tSTATE\tEXPERIMENT\tCONTROL\tSEEN\tFLAGS")
	for _, is := range st.Instances {
		var flags []string
		if is.Quiet {
			flags = append(flags, "QUIET")
		}
		if is.OtherVersion {
			flags = append(flags, "OTHER-VERSION")
		}
		if is.OtherBuild {
			flags = append(flags, "OTHER-BUILD")
		}
		if is.Halted {
			// Said here too: an instance stays halted when the halt's
			// record is lost (a Redis restart), and refuses what ctl starts.
			flags = append(flags, "HALTED")
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\t%.1fs ago\t%s\n", is.Instance, is.Build, is.Version, is.State,
			groupCell(is.Groups["experiment"]), groupCell(is.Groups["control"]), is.AgeSeconds, strings.Join(flags, ","))
	}
	if len(st.Instances) > 0 {
		fmt.Fprintf(w, "all\t\t\t\t%s\t%s\t\t\n", groupCell(st.Groups["experiment"]), groupCell(st.Groups["control"]))
	}
	return w.Flush()
}

// groupCell is a group's searches and mean page time.
func groupCell(g GroupFigures) string {
	if g.Searches == 0 {
		return "-"
	}
	return fmt.Sprintf("%d searches %.1fms", g.Searches, g.MeanSearchMS)
}
