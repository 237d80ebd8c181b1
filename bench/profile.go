package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// runProfileMode is bin/bench -profile -prod BINARY (make profile): a CPU
// and an allocation profile of the production build under the bench's
// -c 16 load on a redis-server of its own, written to bench/results/ with
// the top entries of each printed, so that work on the search path starts
// from where its time goes.
func runProfileMode(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench -profile", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	prod := fs.String("prod", "", "production `binary`")
	seconds := fs.Int("seconds", 10, "how long the load and the CPU profile run, 2 to 60")
	out := fs.String("out", filepath.Join("bench", "results"), "`directory` for the profiles and their report")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		if err == nil {
			err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
		}
		fmt.Fprintf(stderr, "bench -profile: %v: want -profile -prod BINARY [-seconds 10] [-out DIR]\n", err)
		return exitCannot
	}
	if *seconds < 2 || *seconds > 60 {
		fmt.Fprintf(stderr, "bench -profile: invalid -seconds %d: want 2 to 60\n", *seconds)
		return exitCannot
	}
	if _, err := os.Stat(*prod); err != nil {
		fmt.Fprintf(stderr, "bench -profile: -prod %s: %v (run make build)\n", *prod, err)
		return exitCannot
	}
	if err := profile(ctx, *prod, *seconds, *out, stdout); err != nil {
		fmt.Fprintln(stderr, "bench -profile:", err)
		return exitCannot
	}
	return exitHeld
}

// profileConcurrency is the load the floor targets are judged at.
const profileConcurrency = 16

func profile(ctx context.Context, binary string, seconds int, out string, stdout io.Writer) error {
	workDir, err := os.MkdirTemp("", "shopsession-profile-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(workDir)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	redis, err := openRedis(ctx, "", workDir)
	if err != nil {
		return err
	}
	defer redis.close()
	app, err := startApp(ctx, binary, []string{"REDIS_URL=" + redis.url})
	if err != nil {
		return err
	}
	defer app.stop()
	postFile := filepath.Join(workDir, "query.txt")
	if err := os.WriteFile(postFile, []byte("query=Apples\n"), 0o644); err != nil {
		return err
	}
	for range warmUpRequests {
		if _, _, err := app.search("Apples", benchCookie); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	// The load runs a second longer on each side than the capture, so that
	// the profile holds none of its start or its end.
	load := make(chan error, 1)
	var result abResult
	go func() {
		var err error
		result, err = runAB(ctx, abOptions{url: app.url + "/search", seconds: seconds + 2, concurrency: profileConcurrency,
			postFile: postFile, cookie: benchCookie}, workDir)
		load <- err
	}()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Second):
	}
	cpu := filepath.Join(out, "profile-cpu.pb.gz")
	if err := fetch(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", app.admin, seconds), cpu); err != nil {
		return err
	}
	if err := <-load; err != nil {
		return err
	}
	allocs := filepath.Join(out, "profile-allocs.pb.gz")
	if err := fetch(app.admin+"/debug/pprof/allocs", allocs); err != nil {
		return err
	}
	var report strings.Builder
	fmt.Fprintf(&report, "# Profile of %s under ab -c %d for %d s\n\n%d requests, %d failed, %d non-2xx, %.0f req/s, mean %.3f ms\n",
		binary, profileConcurrency, seconds, result.Complete, result.Failed, result.Non2xx, result.RequestsPerS, result.MeanMS)
	for _, p := range []struct{ title, file, index string }{
		{"CPU, by where it was spent (flat)", cpu, ""},
		{"CPU, by what a function and its callees spent (cum)", cpu, "-cum"},
		{"Allocated bytes since the process started (flat)", allocs, "-sample_index=alloc_space"},
	} {
		args := []string{"tool", "pprof", "-top", "-nodecount=20"}
		if p.index != "" {
			args = append(args, p.index)
		}
		top, err := exec.CommandContext(ctx, "go", append(args, binary, p.file)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("go tool pprof %s: %v\n%s", p.file, err, top)
		}
		fmt.Fprintf(&report, "\n## %s\n\n```\n%s```\n", p.title, top)
	}
	fmt.Fprintf(&report, "\nFiles: %s, %s; `go tool pprof -http=: %s %s` browses one.\n", cpu, allocs, binary, cpu)
	if err := os.WriteFile(filepath.Join(out, "profile.md"), []byte(report.String()), 0o644); err != nil {
		return err
	}
	_, err = io.WriteString(stdout, report.String())
	return err
}

// fetch writes what GET url answers to file.
func fetch(url, file string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
