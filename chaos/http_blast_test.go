package chaos

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/redis/go-redis/v9"
)

// shopOf serves pages that read Redis and call the dependency with the
// page's context, as the shop's search does; a page is for the unit its
// X-Unit header names, and answers whether it got recommendations.
func shopOf(t *testing.T, e *Experiment, c *http.Client, dep *dependency) *httptest.Server {
	t.Helper()
	rdb := testClient(t, e, redis.Options{})
	shop := httptest.NewServer(e.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rdb.Get(r.Context(), "interests")
		if code, _, err := call(r.Context(), c, dep.URL); err != nil || code != 200 {
			io.WriteString(w, "without")
			return
		}
		io.WriteString(w, "with")
	})))
	t.Cleanup(shop.Close)
	return shop
}

func page(t *testing.T, shop *httptest.Server, unit string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, shop.URL, nil)
	req.Header.Set("X-Unit", unit)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

var unitOptions = Options{HTTPDependencies: []string{"recommender"}, Unit: func(r *http.Request) string { return r.Header.Get("X-Unit") }}

// TestHTTPBlastRadius: the calls of the experiment group's pages fail, the
// control group's do not, and each group counts its own; a dry run of the
// same decides the same and fails none, counting what it would have.
func TestHTTPBlastRadius(t *testing.T) {
	const body = `{"experiment":"error","error_every":1,"dependencies":["recommender"],"sessions_percent":50,"seed":7`
	for _, dry := range []bool{false, true} {
		dep := newDependency(t)
		e, c := httpExperimentWith(t, unitOptions, body+fmt.Sprintf(`,"dry_run":%v}`, dry), "recommender")
		shop := shopOf(t, e, c, dep)
		in := map[string]int64{}
		for i := range 40 {
			unit := fmt.Sprintf("session-%d", i)
			group := e.Status(unit).Session.Group
			in[group]++
			if got, want := page(t, shop, unit), map[bool]string{true: "without", false: "with"}[group == "experiment" && !dry]; got != want {
				t.Errorf("dry run %v: %s of the %s group: a page %s recommendations, want %s", dry, unit, group, got, want)
			}
		}
		s := e.Status("")
		g, h := s.Groups, s.Counters.HTTP["recommender"]
		if in["experiment"] < 10 || in["control"] < 10 {
			t.Fatalf("groups of 40 units at 50 %%: %v", in)
		}
		injected, would := g["experiment"].ErrorsInjected, g["experiment"].ErrorsWouldInject
		if dry {
			injected, would = would, injected
		}
		if injected != in["experiment"] || would != 0 || g["control"].ErrorsInjected+g["control"].ErrorsWouldInject != 0 {
			t.Errorf("dry run %v: groups %+v, want the experiment group's %d pages counted", dry, g, in["experiment"])
		}
		if dry && (h.ErrorsWouldInject != in["experiment"] || h.ErrorsInjected != 0 || dep.hits.Load() != 40) ||
			!dry && (h.ErrorsInjected != in["experiment"] || dep.hits.Load() != in["control"]) {
			t.Errorf("dry run %v: counters %+v, %d calls reached the dependency", dry, h, dep.hits.Load())
		}
		// The failed calls made their pages degraded, for the stop conditions.
		if want := map[bool]int64{false: in["experiment"], true: 0}[dry]; g["experiment"].DegradedSearches != want || g["control"].DegradedSearches != 0 {
			t.Errorf("dry run %v: degraded pages %+v, want %d in the experiment group", dry, g, want)
		}
	}
}
