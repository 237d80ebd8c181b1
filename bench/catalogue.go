package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The catalogue: each Redis failure the chaos build injects (docs/
// redis-failures.md) beside the real condition it imitates, each brought
// about on a redis-server of its own under the same load, ab -c 16 for
// BENCH_SECONDS, and an agreement table with a verdict a row: the same
// outcome where it is discrete (non-2xx answers, the breaker, pages with
// recommendations), and page time within 10 % where it is not CPU-bound.
// BENCH_ONLY=catalogue runs it alone, every row; the whole bench runs it
// too, and at BENCH_SECONDS=2 (CI's quick bench) only the rows marked
// quick, which it names.

const (
	catalogueConcurrency = 16
	catalogueTolerance   = 0.10
	// catalogueTimeout is REDIS_TIMEOUT where a row waits for it: short, so
	// that a 2 s run sees the breaker open and probe several times.
	catalogueTimeout   = "300ms"
	catalogueTimeoutMS = 300
	// catalogueLongQuery is the longest query the shop takes (its
	// maxQueryRunes): the slow reply's row needs a reply whose size the
	// rate shows in.
	catalogueLongQuery = 200
	quickBenchSeconds  = 2
)

// catalogueRow is one fault of the catalogue.
type catalogueRow struct {
	fault    string // as docs/redis-failures.md names it
	real     string // the real condition
	injected catalogueSide
	reality  catalogueSide
	// cpuBound: a page takes a few milliseconds (the breaker open, or Redis
	// answering at once), so its time measures the shared machine's CPU
	// more than the fault: reported, not judged.
	cpuBound bool
	// waitsForTimeout: the pages that reach Redis wait for REDIS_TIMEOUT, so
	// the longest page is judged: within 10 %, and within the two
	// operations of REDIS_TIMEOUT a page may wait for, on both sides.
	waitsForTimeout bool
	// judgeTrips: the pages reach Redis, and their round trips a page are
	// judged within 10 %: the cost of the fault's handling (NOSCRIPT's
	// fallback), which CPU does not blur.
	judgeTrips bool
	// injectFrom, if set, is the injected side's PUT body from what the
	// real side measured (NOSCRIPT: at the share of EVALSHAs it hit).
	injectFrom func(real catalogueRun) string
	longQuery  bool // the slow reply's: ab posts catalogueLongQuery characters
	quick      bool // run by CI's quick bench
}

// catalogueRows are the rows, in docs/redis-failures.md's order.
func catalogueRows() []catalogueRow {
	timeout := []string{"REDIS_TIMEOUT=" + catalogueTimeout, "BREAKER_FAILURES=5"}
	connFault := func(fault string, more string) string {
		return `{"experiment":"error","error_every":1,"layer":"connection","conn_fault":"` + fault + `"` + more + `}`
	}
	errorReply := func(reply, commands string) string {
		return `{"experiment":"error","error_every":1,"layer":"connection","error_reply":"` + reply + `","commands":[` + commands + `]}`
	}
	return []catalogueRow{
		{fault: "blackhole", real: "redis-server stopped with SIGSTOP", cpuBound: true, waitsForTimeout: true, quick: true,
			injected: catalogueSide{env: timeout, inject: connFault("blackhole", "")},
			reality:  catalogueSide{env: timeout, begin: sigstopped}},
		{fault: "reset", real: "toxiproxy reset_peer: an RST at the first reply of each connection", cpuBound: true,
			injected: catalogueSide{env: timeout, inject: connFault("reset", "")},
			// The toxic resets the warm-up's connections too: both sides' breakers see it from the start.
			reality: catalogueSide{env: timeout, toxic: `{"type":"reset_peer","stream":"downstream","attributes":{"timeout":0}}`}},
		{fault: "slow_reply", real: "toxiproxy bandwidth 2 KB/s", longQuery: true, judgeTrips: true,
			injected: catalogueSide{inject: connFault("slow_reply", `,"slow_reply_bytes_per_second":2000`)},
			reality:  catalogueSide{toxic: `{"type":"bandwidth","stream":"downstream","attributes":{"rate":2}}`}},
		{fault: "NOSCRIPT", real: "SCRIPT FLUSH every 5 ms", cpuBound: true, judgeTrips: true, quick: true,
			injectFrom: func(real catalogueRun) string {
				share := float64(real.noscripts) / float64(max(real.evalshas, 1))
				return fmt.Sprintf(`{"experiment":"error","error_rate":%.6f,"layer":"connection","error_reply":"NOSCRIPT","commands":["evalsha"]}`, max(share, 1e-6))
			},
			reality: catalogueSide{begin: scriptFlushes}},
		{fault: "OOM", real: "maxmemory 1 with noeviction", cpuBound: true, judgeTrips: true,
			injected: catalogueSide{env: timeout, inject: errorReply("OOM", `"evalsha","eval"`)},
			reality:  catalogueSide{env: timeout, redisArgs: []string{"--maxmemory-policy", "noeviction"}, begin: atMaxmemory}},
		{fault: "BUSY", real: "a script looping past busy-reply-threshold 10 ms", cpuBound: true,
			injected: catalogueSide{env: timeout, inject: errorReply("BUSY", `"get","evalsha","eval"`)},
			reality:  catalogueSide{env: timeout, redisArgs: []string{"--busy-reply-threshold", "10"}, begin: busyScript}},
		{fault: "MASTERDOWN", real: "a replica of a master that is gone, replica-serve-stale-data no", cpuBound: true,
			injected: catalogueSide{env: timeout, inject: errorReply("MASTERDOWN", `"get"`)},
			reality:  catalogueSide{env: timeout, begin: masterGone}},
	}
}

// agreement is one row of the catalogue's table.
type agreement struct {
	Fault        string     `json:"fault"`
	Real         string     `json:"real_condition"`
	MeanMS       [2]float64 `json:"mean_ms"` // injected, real
	MedianMS     [2]float64 `json:"median_ms"`
	LongestMS    [2]float64 `json:"longest_ms"` // injected, real
	Non2xx       [2]int     `json:"non_2xx"`
	Recommend    [2]float64 `json:"recommended_share"`
	Breakers     [2]int     `json:"breaker_opened"`
	Stored       [2]int64   `json:"keys_stored"`
	TripsPerPage [2]float64 `json:"round_trips_per_page"`
	Verdict      string     `json:"verdict"`
}

func (b *bench) catalogueScenarios(ctx context.Context, all bool) ([]scenario, []agreement, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		sc := scenario{Name: "catalogue", Build: "chaos", Hypothesis: "each injected Redis failure does what its real condition does"}
		sc.inconclusive("not run: each row needs a redis-server of its own: apt-get install redis-server")
		return []scenario{sc}, nil, nil
	}
	longQuery := filepath.Join(b.workDir, "catalogue-query.txt")
	if err := os.WriteFile(longQuery, []byte("query="+strings.Repeat("a", catalogueLongQuery)+"\n"), 0o644); err != nil {
		return nil, nil, err
	}
	quick := !all && b.seconds <= quickBenchSeconds
	var out []scenario
	var table []agreement
	var skipped []string
	for _, row := range catalogueRows() {
		if quick && !row.quick {
			skipped = append(skipped, row.fault)
			continue
		}
		post := b.postFile
		if row.longQuery {
			post = longQuery
		}
		row.injected.label, row.reality.label = "catalogue "+row.fault+" injected", "catalogue "+row.fault+" real"
		real, err := b.catalogueSideRun(ctx, row.reality, post)
		if err != nil {
			return nil, nil, err
		}
		if row.injectFrom != nil {
			row.injected.inject = row.injectFrom(real)
		}
		inj, err := b.catalogueSideRun(ctx, row.injected, post)
		if err != nil {
			return nil, nil, err
		}
		sc, a := judgeCatalogueRow(row, inj, real)
		out, table = append(out, sc), append(table, a)
	}
	if len(skipped) > 0 {
		b.progress.note("catalogue: BENCH_SECONDS=%d runs the quick rows only; left out: %s (BENCH_ONLY=catalogue runs them all)", b.seconds, strings.Join(skipped, ", "))
		if len(out) > 0 {
			out[len(out)-1].Findings = append(out[len(out)-1].Findings, "quick bench: rows left out: "+strings.Join(skipped, ", "))
		}
	}
	return out, table, nil
}

// judgeCatalogueRow compares a row's two sides.
func judgeCatalogueRow(row catalogueRow, inj, real catalogueRun) (scenario, agreement) {
	sc := scenario{Name: "catalogue " + row.fault, Build: "chaos", Setup: append([]string{"PUT /debug/chaos " + row.injected.inject}, row.injected.env...),
		Runs: []measurement{{AB: inj.ab}, {AB: real.ab}}, Summary: inj.ab,
		Hypothesis: fmt.Sprintf("ab -c %d: the injected %s does what %s does: the same outcome (non-2xx, breaker, recommendations), page time within %.0f %%",
			catalogueConcurrency, row.fault, row.real, catalogueTolerance*100)}
	a := agreement{Fault: row.fault, Real: row.real,
		MeanMS: [2]float64{inj.ab.MeanMS, real.ab.MeanMS}, MedianMS: [2]float64{inj.ab.percentile(50), real.ab.percentile(50)}, LongestMS: [2]float64{inj.ab.percentile(100), real.ab.percentile(100)},
		Non2xx: [2]int{inj.ab.Non2xx, real.ab.Non2xx}, Recommend: [2]float64{inj.recommendedShare(), real.recommendedShare()},
		Breakers: [2]int{inj.breakers, real.breakers}, Stored: [2]int64{inj.stored, real.stored}}
	share := inj.recommendedShare()
	sc.RecommendedShare = &share
	sc.judge((inj.ab.Non2xx == 0) == (real.ab.Non2xx == 0), fmt.Sprintf("non-2xx: %d injected, %d real", inj.ab.Non2xx, real.ab.Non2xx))
	sc.judge((inj.breakers > 0) == (real.breakers > 0), fmt.Sprintf("breaker opened %d times injected, %d real", inj.breakers, real.breakers))
	sc.judge(sameShare(inj.recommendedShare(), real.recommendedShare()), fmt.Sprintf("pages with recommendations: %.1f %% injected, %.1f %% real",
		inj.recommendedShare()*100, real.recommendedShare()*100))
	if row.waitsForTimeout {
		bound := float64(2 * catalogueTimeoutMS)
		sc.judge(within(a.LongestMS[0], a.LongestMS[1]) && max(a.LongestMS[0], a.LongestMS[1]) <= bound, fmt.Sprintf(
			"longest page %.1f ms injected, %.1f ms real (%+.1f %%; want within %.0f %%, and at most two operations of REDIS_TIMEOUT, %.0f ms)",
			a.LongestMS[0], a.LongestMS[1], off(a.LongestMS), catalogueTolerance*100, bound))
	} else {
		sc.Findings = append(sc.Findings, fmt.Sprintf("longest page %.1f ms injected, %.1f ms real: reported", a.LongestMS[0], a.LongestMS[1]))
	}
	trips := [2]float64{perPage(inj), perPage(real)}
	a.TripsPerPage = trips
	if row.judgeTrips {
		sc.judge(within(trips[0], trips[1]), fmt.Sprintf("round trips a page %.3f injected, %.3f real (%+.1f %%)", trips[0], trips[1], off(trips)))
	} else {
		sc.Findings = append(sc.Findings, fmt.Sprintf("round trips a page %.4f injected, %.4f real: the breaker bounds them, reported", trips[0], trips[1]))
	}
	if row.cpuBound {
		sc.Findings = append(sc.Findings, fmt.Sprintf("mean page %.3f ms injected, %.3f ms real (%+.1f %%): CPU-bound at a few ms a page, reported, not judged",
			a.MeanMS[0], a.MeanMS[1], off(a.MeanMS)))
	} else {
		// The median, not the mean: on a shared machine of two cores either
		// side's 2 s run may catch a few pages 2–3 times as slow as the
		// rest (seen on both sides alike), which moves a mean of 250 pages
		// by more than 10 % and the median by little.
		median := a.MedianMS
		sc.judge(within(median[0], median[1]), fmt.Sprintf("median page %.2f ms injected, %.2f ms real (%+.1f %%); mean %.2f and %.2f ms (%+.1f %%)",
			median[0], median[1], off(median), a.MeanMS[0], a.MeanMS[1], off(a.MeanMS)))
	}
	sc.Findings = append(sc.Findings, fmt.Sprintf("injected: %d failures injected, connection layer %+v; real: %d dials; keys stored: %d injected, %d real",
		inj.errors, inj.conn, real.conn.Dials, inj.stored, real.stored))
	a.Verdict = sc.Verdict
	return sc, a
}

func perPage(r catalogueRun) float64 {
	return float64(r.roundTrips) / float64(max(r.pages.WithRecommendations+r.pages.WithoutRecommendations, 1))
}

func within(got, want float64) bool { return math.Abs(got-want) <= catalogueTolerance*want }

func off(v [2]float64) float64 {
	if v[1] == 0 {
		return 0
	}
	return (v[0] - v[1]) / v[1] * 100
}

// sameShare: none in both, all in both, or within 10 % of each other.
func sameShare(got, want float64) bool {
	switch {
	case got == 0 || want == 0:
		return got == want
	case got >= steadyRecommended || want >= steadyRecommended:
		return got >= steadyRecommended && want >= steadyRecommended
	}
	return within(got, want)
}

// storedKeys counts the service's keys on the Redis at addr.
func storedKeys(ctx context.Context, addr string) (int64, error) {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	var n int64
	iter := rdb.Scan(ctx, 0, sessionKeys, 1000).Iterator()
	for iter.Next(ctx) {
		n++
	}
	return n, iter.Err()
}

// writeCatalogue prints the agreement table.
func writeCatalogue(w io.Writer, table []agreement) {
	if len(table) == 0 {
		return
	}
	fmt.Fprintf(w, "\nCatalogue: each injected Redis failure against its real condition, ab -c %d, injected / real\n\n", catalogueConcurrency)
	fmt.Fprintln(w, "| fault | real condition | mean ms | median ms | longest ms | round trips a page | non-2xx | with recommendations | breaker opened | keys stored | verdict |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|")
	for _, a := range table {
		fmt.Fprintf(w, "| %s | %s | %.2f / %.2f (%+.1f %%) | %.1f / %.1f (%+.1f %%) | %.0f / %.0f | %.3f / %.3f | %d / %d | %.1f / %.1f %% | %d / %d | %d / %d | %s |\n",
			a.Fault, a.Real, a.MeanMS[0], a.MeanMS[1], off(a.MeanMS), a.MedianMS[0], a.MedianMS[1], off(a.MedianMS), a.LongestMS[0], a.LongestMS[1], a.TripsPerPage[0], a.TripsPerPage[1],
			a.Non2xx[0], a.Non2xx[1], a.Recommend[0]*100, a.Recommend[1]*100, a.Breakers[0], a.Breakers[1], a.Stored[0], a.Stored[1], a.Verdict)
	}
}
