package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"example.com/shopsession/chaos"
)

// TestChaosStatusDecodesTheHandler reads the status from package chaos's
// own handler, as the chaos build serves it on /debug/chaos.
func TestChaosStatusDecodesTheHandler(t *testing.T) {
	cfg, err := chaos.FromJSON([]byte(`{"experiment":"latency","delay_seconds":0.1,"error_every":3,"sessions_percent":50}`))
	if err != nil {
		t.Fatal(err)
	}
	e, err := chaos.New(cfg, chaos.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Token: "bench-test-token-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	srv := httptest.NewServer(e.Handler())
	defer srv.Close()
	app := &appProcess{admin: srv.URL + "/debug"}
	s, err := app.chaosStatus("blast-1")
	if err != nil {
		t.Fatal(err)
	}
	if s.Build != "chaos" || s.State != chaos.StateRunning || s.Experiment != "latency" || s.DelaySeconds != 0.1 || s.ErrorEvery != 3 {
		t.Errorf("status %+v", s)
	}
	if s.Session == nil || s.Session.ID != "blast-1" || (s.Session.Group != "experiment" && s.Session.Group != "control") {
		t.Errorf("session %+v", s.Session)
	}
	if _, ok := s.Groups["control"]; !ok || len(s.Groups) != 2 {
		t.Errorf("groups %+v", s.Groups)
	}
	if s, err := app.chaosStatus(""); err != nil || s.Session != nil {
		t.Errorf("without a session: %+v, %v", s.Session, err)
	}
	missing := httptest.NewServer(http.NotFoundHandler())
	defer missing.Close()
	if _, err := (&appProcess{admin: missing.URL}).chaosStatus(""); err == nil {
		t.Errorf("a 404 gave no error")
	}
}

// fill sets every number of v, a pointer to a struct, to a distinct value
// from next on, and returns the next unused one.
func fill(v reflect.Value, next float64) float64 {
	switch v.Kind() {
	case reflect.Pointer:
		return fill(v.Elem(), next)
	case reflect.Struct:
		for i := range v.NumField() {
			next = fill(v.Field(i), next)
		}
		return next
	case reflect.Map: // one key, the same on both sides
		e := reflect.New(v.Type().Elem()).Elem()
		next = fill(e, next)
		v.Set(reflect.MakeMap(v.Type()))
		v.SetMapIndex(reflect.ValueOf("dependency").Convert(v.Type().Key()), e)
		return next
	case reflect.Int64, reflect.Int:
		v.SetInt(int64(next))
	case reflect.Uint32:
		v.SetUint(uint64(next))
	case reflect.Float64:
		v.SetFloat(next)
	default:
		panic(v.Type().String())
	}
	return next + 1
}

// TestMinusCarriesEveryField: what a run added is every counter of the
// chaos package's types, the ones it has now and any it gains, such as the
// connection layer's error_replies_injected, which the bench's own copy of
// the type once lacked.
func TestMinusCarriesEveryField(t *testing.T) {
	// after's numbers are before's plus 100, field by field, so every
	// number of after − before is 100.
	check := func(name string, diff any) {
		t.Helper()
		leaves := 0
		var walk func(prefix string, v reflect.Value)
		walk = func(prefix string, v reflect.Value) {
			if v.Kind() == reflect.Struct {
				for i := range v.NumField() {
					walk(prefix+"."+v.Type().Field(i).Name, v.Field(i))
				}
				return
			}
			if v.Kind() == reflect.Map {
				if v.Len() == 0 {
					t.Errorf("%s%s: no keys", name, prefix)
				}
				for _, k := range v.MapKeys() {
					walk(fmt.Sprintf("%s[%v]", prefix, k), v.MapIndex(k))
				}
				return
			}
			leaves++
			if got := v.Convert(reflect.TypeFor[float64]()).Float(); got != 100 {
				t.Errorf("%s%s: after − before = %v, want 100", name, prefix, got)
			}
		}
		walk("", reflect.ValueOf(diff))
		if leaves < 3 {
			t.Errorf("%s: only %d fields", name, leaves)
		}
	}

	var cb, ca chaos.Counters
	fill(reflect.ValueOf(&cb), 1)
	fill(reflect.ValueOf(&ca), 101)
	check("Counters", minus(ca, cb))
	if got := plus(ca, cb); got.Reads != ca.Reads+cb.Reads || got.Connection.Dials != ca.Connection.Dials+cb.Connection.Dials {
		t.Errorf("plus: %+v", got)
	}

	var gb, ga chaos.GroupFigures
	fill(reflect.ValueOf(&gb), 1)
	fill(reflect.ValueOf(&ga), 101)
	check("GroupFigures", minus(ga, gb))
	g := groupBetween(ga, gb)
	if g.Searches != 100 || g.SearchSeconds != 100 || g.FailedReads != 100 || g.MeanSearchMS != 1000 {
		t.Errorf("groupBetween: %+v, want 100 of each and a mean of 1000 ms", g)
	}
	if s := groupSum(ga, gb); s.Searches != ga.Searches+gb.Searches || s.MeanSearchMS != (ga.SearchSeconds+gb.SearchSeconds)*1000/float64(s.Searches) {
		t.Errorf("groupSum: %+v", s)
	}
	if withMean(chaos.GroupFigures{}).MeanSearchMS != 0 {
		t.Errorf("no searches: a mean")
	}

	var pb, pa chaos.PoolStats
	fill(reflect.ValueOf(&pb), 1)
	fill(reflect.ValueOf(&pa), 101)
	check("PoolStats", minus(pa, pb))
	p := poolBetween(pa, pb)
	if p.Hits != 100 || p.Waits != 100 || p.Timeouts != 100 || p.WaitSeconds != 100 || p.UnusableConns != 100 {
		t.Errorf("poolBetween counters: %+v", p)
	}
	if p.TotalConns != pa.TotalConns || p.IdleConns != pa.IdleConns || p.StaleConns != pa.StaleConns {
		t.Errorf("poolBetween gauges: %+v, want after's %+v", p, pa)
	}
}

// TestSetExperimentSendsTheToken: the bench changes the chaos build's
// experiment with the token it gave the process, which package chaos's
// handler wants.
func TestSetExperimentSendsTheToken(t *testing.T) {
	const token = "bench-run-token-0123456789abcdef"
	e, err := chaos.New(chaos.Off(), chaos.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Token: token})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	mux := http.NewServeMux()
	mux.Handle("/debug/chaos", e.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	if err := (&appProcess{admin: srv.URL, token: token}).setExperiment(`{"experiment":"latency","delay_seconds":0.01}`); err != nil {
		t.Fatal(err)
	}
	if c := e.Config(); c.Experiment != "latency" {
		t.Errorf("after setExperiment: %+v", c)
	}
	if err := (&appProcess{admin: srv.URL, token: "another-token-0123456789abcdef"}).setExperiment(`{"experiment":"error"}`); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("setExperiment with another token: %v, want a 401", err)
	}
}

// A dependency that appears between before and after (its calls wrapped
// since) counts from zero.
func TestMinusOfAMapKeyOnOneSide(t *testing.T) {
	after := map[string]chaos.HTTPCounters{"recommender": {DelaysInjected: 5}}
	got := minus(chaos.Counters{HTTP: after}, chaos.Counters{})
	if got.HTTP["recommender"].DelaysInjected != 5 {
		t.Errorf("after − before: %+v, want 5 delays of the recommender", got.HTTP)
	}
}
