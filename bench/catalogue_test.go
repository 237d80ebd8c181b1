package main

import (
	"strings"
	"testing"
)

// catalogueSideOf is a side that measured mean and longest page times,
// non-2xx answers, breaker openings and pages with and without
// recommendations.
func catalogueSideOf(mean, longest float64, non2xx, breakers int, with, without int64) catalogueRun {
	return catalogueRun{ab: abResult{Complete: 1000, MeanMS: mean, Non2xx: non2xx, Percentiles: map[string]float64{"50": mean, "100": longest}},
		pages: pageCounts{WithRecommendations: with, WithoutRecommendations: without}, breakers: breakers}
}

func catalogueRowNamed(t *testing.T, fault string) catalogueRow {
	t.Helper()
	for _, row := range catalogueRows() {
		if row.fault == fault {
			return row
		}
	}
	t.Fatalf("no catalogue row %s", fault)
	return catalogueRow{}
}

// TestCatalogueVerdicts: a row passes on the same outcome and, where page
// time is judged, within 10 %; a breaker that opens on one side only, a
// page past REDIS_TIMEOUT's bound, or a slow reply's mean 20 % off deviate.
// A blackhole's mean page time, CPU-bound, is reported, not judged.
func TestCatalogueVerdicts(t *testing.T) {
	blackhole, slow := catalogueRowNamed(t, "blackhole"), catalogueRowNamed(t, "slow_reply")
	for _, tc := range []struct {
		name      string
		row       catalogueRow
		inj, real catalogueRun
		want      string
	}{
		{"blackhole agrees, means apart", blackhole, catalogueSideOf(2.5, 306, 0, 2, 0, 9000), catalogueSideOf(3.4, 303, 0, 2, 0, 9000), verdictPass},
		{"a breaker that never opens", blackhole, catalogueSideOf(2.5, 306, 0, 0, 0, 9000), catalogueSideOf(2.5, 303, 0, 2, 0, 9000), verdictDeviated},
		{"a page past REDIS_TIMEOUT", blackhole, catalogueSideOf(2.5, 640, 0, 2, 0, 9000), catalogueSideOf(2.5, 620, 0, 2, 0, 9000), verdictDeviated},
		{"500s on one side", blackhole, catalogueSideOf(2.5, 306, 3, 2, 0, 9000), catalogueSideOf(2.5, 303, 0, 2, 0, 9000), verdictDeviated},
		{"slow reply agrees", slow, catalogueSideOf(119, 130, 0, 0, 250, 0), catalogueSideOf(126, 133, 0, 0, 250, 0), verdictPass},
		{"slow reply 20 % off", slow, catalogueSideOf(150, 160, 0, 0, 250, 0), catalogueSideOf(125, 133, 0, 0, 250, 0), verdictDeviated},
		{"recommendations lost on one side", slow, catalogueSideOf(125, 130, 0, 0, 0, 250), catalogueSideOf(125, 133, 0, 0, 250, 0), verdictDeviated},
	} {
		sc, a := judgeCatalogueRow(tc.row, tc.inj, tc.real)
		if sc.Verdict != tc.want || a.Verdict != tc.want {
			t.Errorf("%s: %s (%s), want %s", tc.name, sc.Verdict, strings.Join(sc.Findings, "; "), tc.want)
		}
	}
}

// TestCatalogueQuickRows: CI's quick bench runs at least one row and
// leaves out some, so that it costs a fraction of the whole.
func TestCatalogueQuickRows(t *testing.T) {
	quick, all := 0, catalogueRows()
	for _, row := range all {
		if row.quick {
			quick++
		}
	}
	if quick == 0 || quick*2 > len(all) {
		t.Errorf("%d quick rows of %d, want at least one and at most half", quick, len(all))
	}
}
