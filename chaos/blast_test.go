package chaos

import (
	"testing"

	"github.com/google/uuid"
)

func TestBlastRadiusSplitsSessions(t *testing.T) {
	percent := 30.0
	cfg := Config{Seed: 42, Guardrails: Guardrails{SessionsPercent: &percent}}
	one, other := newRun(cfg), newRun(cfg) // two instances, same seed
	reseeded := cfg
	reseeded.Seed = 43
	moved, inExperiment := 0, 0
	const sessions = 20000
	for range sessions {
		id := uuid.NewString()
		g := one.groupOf(id)
		if g != other.groupOf(id) || g != one.groupOf(id) {
			t.Fatalf("session %s changes group", id)
		}
		if g == experimentGroup {
			inExperiment++
		}
		if g != newRun(reseeded).groupOf(id) {
			moved++
		}
	}
	if share := float64(inExperiment) / sessions; share < 0.28 || share > 0.32 {
		t.Errorf("%.3f of the sessions are in the experiment group, want 0.30", share)
	}
	if moved == 0 {
		t.Errorf("another seed puts every session in the same group")
	}
	for _, p := range []float64{0, 100} {
		run := newRun(Config{Seed: 42, Guardrails: Guardrails{SessionsPercent: &p}})
		for range 1000 {
			if g := run.groupOf(uuid.NewString()); (g == experimentGroup) != (p == 100) {
				t.Fatalf("sessions_percent %v put a session in the %s group", p, g)
			}
		}
	}
}

// TestStatusNamesTheUnitsGroup: the group GET ?session= answers, which the
// shop's end-to-end tests use to find sessions on each side, is the one the
// hooks and the counts go by.
func TestStatusNamesTheUnitsGroup(t *testing.T) {
	e := testExperiment(t, map[string]string{"CHAOS": "error", "CHAOS_SESSIONS_PERCENT": "50", "CHAOS_SEED": "7"}, Options{})
	run := e.active.Load().run
	seen := map[group]int{}
	for range 200 {
		id := uuid.NewString()
		g := run.groupOf(id)
		seen[g]++
		if s := e.Status(id); s.Session == nil || s.Session.ID != id || s.Session.Group != g.String() {
			t.Fatalf("Status(%s).Session = %+v, want group %s", id, s.Session, g)
		}
	}
	if seen[experimentGroup] == 0 || seen[controlGroup] == 0 {
		t.Errorf("200 sessions at 50 %%: %v, want some in each group", seen)
	}
	if s := e.Status(""); s.Session != nil {
		t.Errorf("Status(\"\").Session = %+v, want none", s.Session)
	}
}
