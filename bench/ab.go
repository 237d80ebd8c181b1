package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// abResult is what one Apache Bench run measured.
type abResult struct {
	Command       string             `json:"command"`
	Complete      int                `json:"complete_requests"`
	Failed        int                `json:"failed_requests"`
	FailedConnect int                `json:"failed_connect"`
	FailedReceive int                `json:"failed_receive"`
	FailedLength  int                `json:"failed_length"`
	FailedExcept  int                `json:"failed_exceptions"`
	Non2xx        int                `json:"non_2xx_responses"`
	RequestsPerS  float64            `json:"requests_per_second"`
	MeanMS        float64            `json:"mean_ms"`
	Percentiles   map[string]float64 `json:"percentiles_ms"` // "0" … "100", from ab -e
}

func (r abResult) percentile(p int) float64 { return r.Percentiles[strconv.Itoa(p)] }

// abOptions is one ab invocation: the book's command plus -l.
type abOptions struct {
	url         string
	seconds     int
	concurrency int
	postFile    string
	cookie      string
}

func (o abOptions) args(csvPath string) []string {
	return []string{
		"-q", "-r", "-l",
		"-c", strconv.Itoa(o.concurrency),
		"-t", strconv.Itoa(o.seconds),
		// -t implies -n 50000, too few for a fast server; ab allocates its
		// statistics for -n up front, so bound it by a generous rate.
		"-n", strconv.Itoa(o.seconds * 50000),
		"-p", o.postFile,
		// The book's form: -H, not -T. ab then sends its own text/plain
		// field first, as it does for the book's readers.
		"-H", "Cookie: " + o.cookie,
		"-H", "Content-type: application/x-www-form-urlencoded",
		"-e", csvPath,
		o.url,
	}
}

// runAB runs ab and parses what it printed and wrote.
func runAB(ctx context.Context, o abOptions, workDir string) (abResult, error) {
	csvPath := filepath.Join(workDir, "ab-percentiles.csv")
	args := o.args(csvPath)
	cmd := exec.CommandContext(ctx, "ab", args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return abResult{}, fmt.Errorf("ab %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	csv, err := os.ReadFile(csvPath)
	if err != nil {
		return abResult{}, err
	}
	r, err := parseAB(string(out))
	if err != nil {
		return r, err
	}
	r.Command = "ab " + shellJoin(args)
	r.Percentiles, err = parsePercentiles(string(csv))
	return r, err
}

var (
	abLine = regexp.MustCompile(`(?m)^([A-Za-z0-9 -]+):\s+(.*)$`)
	abFail = regexp.MustCompile(`\(Connect: (\d+), Receive: (\d+), Length: (\d+), Exceptions: (\d+)\)`)
	abNum  = regexp.MustCompile(`^[0-9.]+`)
)

// parseAB reads ab's report.
func parseAB(report string) (abResult, error) {
	var r abResult
	fields := map[string]string{}
	for _, m := range abLine.FindAllStringSubmatch(report, -1) {
		if _, seen := fields[m[1]]; !seen { // "Time per request" comes twice; the first is the mean
			fields[m[1]] = m[2]
		}
	}
	number := func(name string, required bool) (float64, error) {
		v, ok := fields[name]
		if !ok {
			if required {
				return 0, fmt.Errorf("ab output has no %q line", name)
			}
			return 0, nil
		}
		return strconv.ParseFloat(abNum.FindString(v), 64)
	}
	var err error
	var f float64
	if f, err = number("Complete requests", true); err != nil {
		return r, err
	}
	r.Complete = int(f)
	if f, err = number("Failed requests", true); err != nil {
		return r, err
	}
	r.Failed = int(f)
	if f, err = number("Non-2xx responses", false); err != nil {
		return r, err
	}
	r.Non2xx = int(f)
	if r.RequestsPerS, err = number("Requests per second", true); err != nil {
		return r, err
	}
	if r.MeanMS, err = number("Time per request", true); err != nil {
		return r, err
	}
	if m := abFail.FindStringSubmatch(report); m != nil {
		r.FailedConnect, _ = strconv.Atoi(m[1])
		r.FailedReceive, _ = strconv.Atoi(m[2])
		r.FailedLength, _ = strconv.Atoi(m[3])
		r.FailedExcept, _ = strconv.Atoi(m[4])
	}
	return r, nil
}

// parsePercentiles reads ab -e output: "Percentage served,Time in ms" and
// one row per percent from 0 to 100.
//
// With fewer than 100 requests ab reads past the end of its samples for the
// top percentiles and prints 0 or garbage there. Those percentiles are the
// longest request, so a value below the one before it or above the 100 %
// row is replaced by the 100 % row.
func parsePercentiles(csv string) (map[string]float64, error) {
	out := map[string]float64{}
	defer func() {
		longest, prev := out["100"], 0.0
		for p := range 100 {
			key := strconv.Itoa(p)
			if out[key] < prev || out[key] > longest {
				out[key] = longest
			}
			prev = out[key]
		}
	}()
	sc := bufio.NewScanner(strings.NewReader(csv))
	for sc.Scan() {
		pct, ms, ok := strings.Cut(strings.TrimSpace(sc.Text()), ",")
		if !ok || pct == "Percentage served" {
			continue
		}
		v, err := strconv.ParseFloat(ms, 64)
		if err != nil {
			return nil, fmt.Errorf("ab -e row %q: %v", sc.Text(), err)
		}
		out[pct] = v
	}
	if len(out) != 101 {
		return nil, fmt.Errorf("ab -e gave %d percentiles, want 0 to 100", len(out))
	}
	return out, nil
}

// shellJoin quotes the arguments that need it, for a command line a person
// can paste.
func shellJoin(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " '\"$;&|") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		quoted[i] = a
	}
	return strings.Join(quoted, " ")
}
