package main

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestSeveralContentTypeFields states the rule for a POST /search that
// carries more than one Content-Type field: the body is read as a form when
// any field names the form, and refused with 415 when none does.
func TestSeveralContentTypeFields(t *testing.T) {
	app := startApp(t, nil)
	rdb := testRedis.client(t)
	const form = "application/x-www-form-urlencoded"
	const multipart = "--x\r\nContent-Disposition: form-data; name=\"query\"\r\n\r\nlamp\r\n--x--\r\n"
	for i, tc := range []struct {
		name   string
		fields []string
		body   string
		want   int
	}{
		{"ab -p with -H: text/plain, then the form", []string{"text/plain", form}, "query=lamp\n", 200},
		{"the form, then text/plain", []string{form, "text/plain"}, "query=lamp", 200},
		{"JSON, then the form with a charset", []string{"application/json", form + "; charset=utf-8"}, "query=lamp", 200},
		{"lone form", []string{form}, "query=lamp", 200},
		{"lone text/plain", []string{"text/plain"}, "query=lamp", 415},
		{"lone JSON", []string{"application/json"}, `{"query":"lamp"}`, 415},
		{"lone multipart", []string{"multipart/form-data; boundary=x"}, multipart, 415},
		{"text/plain, then JSON", []string{"text/plain", "application/json"}, `{"query":"lamp"}`, 415},
		{"text/plain, then multipart", []string{"text/plain", "multipart/form-data; boundary=x"}, multipart, 415},
		{"one field listing two types", []string{"text/plain, " + form}, "query=lamp", 415},
		{"no Content-Type", nil, "query=lamp", 415},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("content-type-%d-%d", i, time.Now().UnixNano())
			req, err := http.NewRequest(http.MethodPost, app.url+"/search", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Cookie", sessionCookie+"="+id)
			for _, f := range tc.fields {
				req.Header.Add("Content-Type", f)
			}
			resp := app.send(t, req)
			if resp.status != tc.want {
				t.Fatalf("status %d, want %d; body %q", resp.status, tc.want, truncate(resp.body))
			}
			stored, err := rdb.Get(context.Background(), sessionKeyPrefix+id).Result()
			switch {
			case tc.want == 200 && (stored != `["lamp"]` || !slices.Equal(interestsOn(resp.body), []string{"lamp"})):
				t.Errorf("stored %q (%v), page interests %q; want lamp in both", stored, err, interestsOn(resp.body))
			case tc.want == 415 && (err != redis.Nil || !strings.Contains(resp.body, form)):
				t.Errorf("stored %q (%v), body %q; want nothing stored and the form type named", stored, err, resp.body)
			}
		})
	}
}

// bookCommands are the lines a reader of the book types to measure the steady
// state, verbatim.
const bookCommands = `echo "query=Apples" > query.txt
ab -c 1 -t 10 \
  -H "Cookie: sessionID=something" \
  -H "Content-type: application/x-www-form-urlencoded" \
  -p query.txt \
  http://127.0.0.1:5000/search
`

// TestBookCommands runs the book's commands, with -t 2 for -t 10 and the
// app's address for the book's, against the production binary, and against
// the chaos build in both experiments as the book starts them (experiment 2:
// CHAOS=error, as the book has no variable for it). Each run must get only
// 2xx responses and store Apples for the session.
func TestBookCommands(t *testing.T) {
	if _, err := exec.LookPath("ab"); err != nil {
		t.Fatal("this test needs Apache Bench: apt-get install apache2-utils (or: make deps)")
	}
	dir := t.TempDir()
	production := filepath.Join(dir, "shopsession")
	chaos := filepath.Join(dir, "shopsession-chaos")
	goBuild(t, ".", production)
	goBuild(t, ".", chaos, "-tags", "chaos")
	redisServer := ownRedisServer(t)
	rdb := redisServer.client(t)
	ctx := context.Background()

	for _, step := range []struct {
		name   string
		binary string
		env    []string
		check  func(t *testing.T, app *process, run abRun)
	}{
		{"steady state", production, nil, func(t *testing.T, app *process, run abRun) {
			if run.failed != 0 {
				t.Errorf("%d failed requests, want 0", run.failed)
			}
			// The same search by another client gets the page ab measured.
			if page := app.searchFor(t, "something", "Apples"); len(page.body) != run.documentLength || !hasRecommendation(page.body) {
				t.Errorf("ab's page is %d bytes; a search for Apples is %d bytes, recommendation shown: %v",
					run.documentLength, len(page.body), hasRecommendation(page.body))
			}
		}},
		{"experiment 1", chaos, []string{"CHAOS=true", "CHAOS_DELAY_SECONDS=0.1"}, func(t *testing.T, app *process, run abRun) {
			if run.failed != 0 {
				t.Errorf("%d failed requests, want 0", run.failed)
			}
			// Two round trips, each delayed by 0.1 s: the experiment is on.
			if run.meanMS < 200 {
				t.Errorf("mean time per request %.3f ms, want at least 200 ms", run.meanMS)
			}
			app.logs.waitFor(t, regexp.MustCompile(`level=WARN msg="[^"]*CHAOS=latency[^"]*next time`))
		}},
		{"experiment 2", chaos, []string{"CHAOS=error"}, func(t *testing.T, app *process, run abRun) {
			// Every other page lacks the recommendation, so ab counts
			// length differences as failures, and only those.
			if run.failed != run.failedLength {
				t.Errorf("%d failed requests, %d of them for their length; want no other failure", run.failed, run.failedLength)
			}
			// The log names the session by its keyed hash, never by its id.
			app.logs.waitFor(t, regexp.MustCompile(`level=WARN msg="redis error CHAOS" op=read session=[0-9a-f]{16}\n`))
			if strings.Contains(app.logs.String(), "something") {
				t.Errorf("the log carries the session id:\n%s", app.logs.String())
			}
		}},
	} {
		t.Run(step.name, func(t *testing.T) {
			rdb.Del(ctx, sessionKeyPrefix+"something")
			app := startBinary(t, step.binary, append([]string{"REDIS_URL=" + redisServer.url()}, step.env...)...)
			run := runBookCommands(t, app.url)
			t.Logf("%s: %d requests, %d failed, %d non-2xx, %.2f req/s, %.3f ms mean",
				step.name, run.complete, run.failed, run.non2xx, run.perSecond, run.meanMS)
			if run.complete == 0 || run.non2xx != 0 {
				t.Errorf("%d non-2xx responses of %d, want none:\n%s", run.non2xx, run.complete, run.output)
			}
			if stored := rdb.Get(ctx, sessionKeyPrefix+"something").Val(); stored != `["Apples"]` {
				t.Errorf("stored for session something: %q, want [\"Apples\"]", stored)
			}
			step.check(t, app, run)
		})
	}
}

// abRun is what ab reported.
type abRun struct {
	output                                 string
	complete, failed, failedLength, non2xx int
	documentLength                         int
	perSecond, meanMS                      float64
}

var abFigure = regexp.MustCompile(`(?m)^(Complete requests|Failed requests|Non-2xx responses|Document Length|Requests per second|Time per request):\s+([0-9.]+)`)
var abLengthFailures = regexp.MustCompile(`Length: (\d+)`)

// runBookCommands runs bookCommands in a new directory with -t 2 and base in
// place of the book's address.
func runBookCommands(t *testing.T, base string) abRun {
	t.Helper()
	script := bookCommands
	for old, new := range map[string]string{"-t 10": "-t 2", "http://127.0.0.1:5000": base} {
		if strings.Count(script, old) != 1 {
			t.Fatalf("the book's commands do not contain %q once", old)
		}
		script = strings.Replace(script, old, new, 1)
	}
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	run := abRun{output: string(out)}
	figures := map[string]float64{}
	for _, m := range abFigure.FindAllStringSubmatch(run.output, -1) {
		if _, seen := figures[m[1]]; !seen { // the first "Time per request" is the mean
			figures[m[1]], _ = strconv.ParseFloat(m[2], 64)
		}
	}
	if _, ok := figures["Complete requests"]; !ok {
		t.Fatalf("ab printed no report:\n%s", out)
	}
	run.complete, run.failed, run.non2xx = int(figures["Complete requests"]), int(figures["Failed requests"]), int(figures["Non-2xx responses"])
	run.documentLength = int(figures["Document Length"])
	run.perSecond, run.meanMS = figures["Requests per second"], figures["Time per request"]
	if m := abLengthFailures.FindStringSubmatch(run.output); m != nil {
		run.failedLength, _ = strconv.Atoi(m[1])
	}
	return run
}
