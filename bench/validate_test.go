package main

import (
	"strings"
	"testing"

	"example.com/shopsession/chaos"
)

func TestJudgeValidateRefused(t *testing.T) {
	const pairs = 9
	one := func(name string, meanMS float64, non2xx int, conn chaos.ConnCounters) validation {
		ab := abResult{Complete: 1000, MeanMS: meanMS, Non2xx: non2xx}
		return validation{sc: scenario{Name: name, Hypothesis: "h", Runs: []measurement{{AB: ab}}, Summary: ab}, conn: conn}
	}
	// Stopped runs drift from 4.5 to 5.4 ms; each connection-layer run is
	// its neighbours' mean × factor × its entry of scatter.
	stoppedMS := func(i int) float64 { return 4.5 + 0.1*float64(i) }
	even := make([]float64, pairs)
	for i := range even {
		even[i] = 1
	}
	wide := []float64{0.8, 1.25, 0.85, 1.3, 0.9, 1.2, 0.82, 1.28, 1.0}
	rows := func(factor float64, scatter []float64, non2xx int) []validation {
		var stopped, conn []validation
		for i := range pairs + 2 {
			stopped = append(stopped, one("validate-refused stopped", stoppedMS(i), 0, chaos.ConnCounters{DialsFailed: 4}))
		}
		for i, s := range scatter {
			ms := (stoppedMS(i) + stoppedMS(i+1)) / 2 * factor * s
			conn = append(conn, one("validate-refused connection", ms, non2xx*(i%2), chaos.ConnCounters{ConnectionsDropped: 6}))
		}
		return judgeValidateRefused(stopped, conn, one("validate-refused command", 7, 0, chaos.ConnCounters{}))
	}
	for _, tc := range []struct {
		name    string
		rows    []validation
		verdict string
	}{
		{"2 % slower in every run", rows(1.02, even, 0), "PASS"},
		{"8 % faster in every run", rows(0.92, even, 0), "PASS"},
		{"40 % slower in every run", rows(1.4, even, 0), "DEVIATED"},
		{"runs scattered ±25 %", rows(1, wide, 0), "INCONCLUSIVE"},
		{"scattered, and non-2xx responses", rows(1, wide, 3), "DEVIATED"},
		{"non-2xx responses", rows(1.02, even, 3), "DEVIATED"},
	} {
		ref, conn, cmd := tc.rows[0], tc.rows[1], tc.rows[2]
		if conn.sc.Verdict != tc.verdict {
			t.Errorf("%s: %s, want %s: %s", tc.name, conn.sc.Verdict, tc.verdict, strings.Join(conn.sc.Findings, "; "))
		}
		if ref.sc.Name != "validate-refused stopped" || len(ref.sc.Runs) != pairs+2 || ref.sc.Verdict != "PASS" || ref.conn.DialsFailed != 4*(pairs+2) {
			t.Errorf("%s: stopped row %s, %d runs, %s, %d refused dials", tc.name, ref.sc.Name, len(ref.sc.Runs), ref.sc.Verdict, ref.conn.DialsFailed)
		}
		if conn.sc.Name != "validate-refused connection" || len(conn.sc.Runs) != pairs || conn.sc.Summary.Complete != 1000*pairs ||
			conn.conn.ConnectionsDropped != 6*pairs || conn.sc.Ratio == nil || conn.sc.Ratio.Pairs != pairs {
			t.Errorf("%s: connection row %+v", tc.name, conn)
		}
		if cmd.sc.Verdict != "REPORTED" || !strings.Contains(strings.Join(cmd.sc.Findings, "; "), "against validate-refused stopped's 5.45") {
			t.Errorf("%s: command row %s: %s", tc.name, cmd.sc.Verdict, strings.Join(cmd.sc.Findings, "; "))
		}
	}
}
