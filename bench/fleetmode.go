package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

// runFleetMode is bin/bench -fleet -chaos BINARY (make fleet): the fleet
// scenario's redis-server and three instances, started the same way and
// left serving for a person to try ctl on, until SIGINT or SIGTERM stops
// them all. It exits 0 then, 1 when an instance exited by itself or did not
// stop cleanly, 2 when the fleet could not start.
func runFleetMode(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench -fleet", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	chaosBinary := fs.String("chaos", "", "chaos `binary`")
	load := fs.Bool("load", false, "search every instance as new sessions, for ctl run to compare both groups")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		if err == nil {
			err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
		}
		fmt.Fprintf(stderr, "bench -fleet: %v: want -fleet -chaos BINARY\n", err)
		return exitCannot
	}
	if *chaosBinary == "" {
		fmt.Fprintln(stderr, "bench -fleet: -chaos is required: want -fleet -chaos BINARY (make fleet builds it and passes it)")
		return exitCannot
	}
	if _, err := os.Stat(*chaosBinary); err != nil {
		fmt.Fprintf(stderr, "bench -fleet: -chaos %s: %v (run make build-chaos)\n", *chaosBinary, err)
		return exitCannot
	}
	workDir, err := os.MkdirTemp("", "shopsession-fleet-")
	if err != nil {
		fmt.Fprintln(stderr, "bench -fleet:", err)
		return exitCannot
	}
	defer os.RemoveAll(workDir)
	f, err := startFleet(ctx, *chaosBinary, workDir)
	if err == nil {
		for i, a := range f.apps {
			if _, statusErr := a.instanceStatus(); statusErr != nil {
				err = fmt.Errorf("fleet instance %d: %w", i+1, statusErr)
				f.close()
				break
			}
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "bench -fleet:", err)
		return exitCannot
	}
	printFleet(stdout, f, *load)
	if *load {
		lctx, stopLoad := context.WithCancel(ctx)
		defer stopLoad()
		for _, a := range f.apps {
			for range fleetRunClients {
				go newSessionSearches(lctx, a, fleetControlEvery, nil)
			}
		}
	}

	exited := make(chan int, len(f.apps))
	for i, a := range f.apps {
		go func() { <-a.exited; exited <- i }()
	}
	code := exitHeld
	select {
	case <-ctx.Done():
	case i := <-exited:
		// Ctrl-C reaches the instances too; one may exit before this
		// process has read its own signal.
		if ctx.Err() == nil {
			a := f.apps[i]
			fmt.Fprintf(stderr, "bench -fleet: instance %d exited by itself with status %d:\n%s\n", i+1, a.cmd.ProcessState.ExitCode(), a.stderr)
			code = exitDeviated
		}
	}
	fmt.Fprintln(stdout, "stopping the instances and redis-server")
	if err := f.close(); err != nil {
		fmt.Fprintln(stderr, "bench -fleet:", err)
		code = exitDeviated
	}
	return code
}

// printFleet says where everything is and what to try.
func printFleet(w io.Writer, f *fleet, load bool) {
	binary := f.chaosBinary
	fmt.Fprintf(w, "fleet: %d instances of %s on %s %s\n\n", len(f.apps), binary, f.redis.source, f.redis.version)
	for i, a := range f.apps {
		s, _ := a.instanceStatus()
		fmt.Fprintf(w, "instance %d (%s): shop %s  admin %s/debug/chaos\n", i+1, s.Fleet.Instance, a.url, a.admin)
	}
	fmt.Fprintf(w, `
In another shell, from this directory:

export REDIS_URL=%s
export CHAOS_CONTROL_TOKEN=%s
echo '%s' | %s ctl start -lease 30s
%s ctl status
for s in fleet-0 fleet-1; do curl -s -b sessionID=$s -d query=Apples %s/search -o /dev/null -w "$s %%{time_total} s\n"; done
curl -s %s/debug/chaos | grep -o '"fleet":{[^}]*}'
%s ctl halt -reason 'trying the halt'
%s ctl resume
%s ctl stop

With seed 22, fleet-0 is in the experiment group and fleet-1 in the control group.
ctl start holds the lease until Ctrl-C (it then stops the experiment) or until the experiment's
duration ends; kill -9 it and every instance stops at the lease's end by itself.
Ctrl-C here stops the three instances and redis-server.
`, f.redis.url, f.token, fleetBody, binary, binary, f.apps[0].url, f.apps[0].admin,
		binary, binary, binary)
	if load {
		fmt.Fprintf(w, `
Each instance gets up to %d searches a second, each a new session: an experiment file's run compares both
groups every second (docs/experiment-files.md):

%s ctl run experiments/redis-latency.yaml -journal run.jsonl -report run.html
`, fleetRunClients*int(time.Second/fleetControlEvery), binary)
	}
}
