// Package chaos builds chaos experiments into a Go service that uses
// go-redis: latency on its Redis round trips, failing reads, faults on the
// connections themselves, and the guardrails that keep an experiment on real
// traffic safe (a duration, stop conditions, a blast radius with a control
// group), changed at run time over HTTP and counted in Prometheus metrics.
//
// It is meant to be linked only into a build made for experiments. A
// service keeps it out of its production binary with a build tag and two
// files that declare the same names, as Go's internal/race does:
// chaos_on.go (//go:build chaos) hands each call on to this package;
// chaos_off.go (//go:build !chaos) declares them empty, so the compiler drops
// every call and the production build's package graph holds nothing of it.
//
// # The model
//
// An Experiment runs one Config at a time, and none for ever: each ends
// after its duration (half an hour unless it says otherwise). FromEnv reads
// one from CHAOS and the CHAOS_* variables, FromJSON from a PUT body; New
// starts it, Use replaces it in one step, Stop ends it. Config.Layer picks where faults go,
// once per Config: around each go-redis command (the command layer, whose
// delay holds no connection and whose error go-redis never retries), or on
// the connections go-redis dials (the connection layer, where a slow or
// broken Redis acts: the pool, the read deadline and the retries all react).
//
// What is particular to the service is handed in as Options: which commands
// are its reads (the ones the error experiment fails, unless its commands
// list names others), which requests are its pages (the ones the guardrails
// count by group, and judge by what the experiment group's got: a failed
// Redis operation, an answer other than 2xx, a panic, the time taken), and
// whom a request is for (its unit: a session, a user), which Middleware
// puts in the request's context for the hooks. A unit the handler assigns during the request is given with
// SetUnit. Commands no experiment may touch, a health check's, are Spared;
// a page the service knows is degraded without a failed command (a breaker
// skipped it) it marks with Degraded. Which Redis commands the service sends (Commands) lets New and
// Use refuse a latency that would never apply. Instrument hooks a client
// (every node of a cluster); Handler serves GET, PUT, PATCH and DELETE of
// the experiment, every change with the control token (Token, which
// TokenFromEnv reads; none: New writes one to a file only its user can
// read, and logs the file's path); Register exports its metrics.
//
// # A fleet
//
// Join makes an Experiment follow the experiment its fleet keeps in the
// Redis the instances share (Fleet): a record signed with the control token,
// under a key whose TTL is a lease that its controller (Ctl, the ctl
// command) renews. Every instance applies it within a second, and stops by
// the lease's expiry as it last read it when nobody renews it, whatever
// became of the controller or of Redis. A halt stops every experiment and
// refuses new ones until a resume. While the fleet's experiment runs here, or
// a halt is in force, the instance's own Use, PUT and PATCH are refused; its
// Stop and DELETE always work.
//
// # Experiment files
//
// Ctl's run command runs an experiment file (docs/experiment-files.md): the
// steady state observed by a dry run before the first step and after the
// rollback, each step a fleet experiment judged on the per-second
// differences between its groups with the bootstrap interval the bench
// uses (internal/stats), the next, wider step only when the prediction
// held, and a rollback that always runs; a journal as it happens and an
// HTML report at the end.
//
// # Files
//
//	config.go       Config and Guardrails, FromJSON, Off, check
//	settings.go     the one table of settings: env name, JSON field, range; FromEnv
//	plan.go         a checked Config as the hooks use it; the layer chosen once
//	latency.go      the latency fault: delay, jitter, targeted commands, the delay
//	wait.go         the one wait of both layers, ended by whatever ends its reason
//	wait_linux.go   the wait on a timerfd: no spin, no millisecond rounding
//	wait_other.go   the wait elsewhere: a Go timer
//	failure.go      the failing-reads fault: every Nth or at a rate, of the reads or the commands listed
//	replies.go      Redis's own error replies, byte for byte; MOVED and ASK for a key's slot
//	conn.go         the connection layer: the wrapped net.Conn, round trips, RESP parsing
//	redis.go        Instrument and the go-redis hooks of the command layer
//	experiment.go   Options, Experiment, New, Use, Stop
//	guard.go        the duration, the stop conditions' once-a-second judge, the end of a run
//	stop.go         the stop conditions: each group's window, its judgement, Abort
//	blast.go        the blast radius, the request's unit and outcome in its context, Middleware
//	status.go       Status and the types it is made of
//	control.go      Handler: GET, PUT, PATCH, DELETE, and the loopback-only guard
//	token.go        the control token: TokenFromEnv, the generated one, the check
//	metrics.go      Register: every metric of the package, with the run id
//	loghandler.go   LogHandler: the run id on every log line
//	fleet.go        Fleet, Join: an instance follows the fleet's control plane in Redis
//	fleet_apply.go  a fleet record applied on a lease, the halt, the fleet beside local control
//	fleet_record.go the keys, the signed records, the scripts that change them
//	heartbeat.go    heartbeats, and the fleet's one status
//	ctl.go          Ctl: the fleet's command line; start
//	ctl_hold.go     the lease a held start renews, and how it ends
//	ctl_commands.go patch, stop, halt, resume, status
//	runfile.go      an experiment file read and checked: errors name the file, line and field
//	run.go          ctl run: the steps on the runner's lease, the observation, the rollback
//	run_measure.go  the per-second ticks of the heartbeats, the probes, the judgement
//	prometheus.go   the Prometheus probe: one instant query, one finite number
//	journal.go      the journal's events, each written as it happens
//	report.go       the run's report: one self-contained HTML file
//	report_svg.go   the report's inline SVG: the charts, the interval against the tolerance
package chaos
