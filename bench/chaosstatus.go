package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"

	"example.com/shopsession/chaos"
)

// The chaos build's GET /debug/chaos is decoded into package chaos's own
// types (chaos.Status and what it is made of), not into copies of them, so
// that the bench reads every field the service reports. What a run added is
// the difference of two readings, taken by minus over every number of the
// struct: a counter added to package chaos is carried without a change here.

// chaosStatus reads the chaos build's status; with session not empty it also
// asks which group that session is in (chaos.Status.Session).
func (a *appProcess) chaosStatus(session string) (chaos.Status, error) {
	var s chaos.Status
	target := a.admin + "/debug/chaos"
	if session != "" {
		target += "?session=" + url.QueryEscape(session)
	}
	resp, err := http.Get(target)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("GET %s: %s", target, resp.Status)
	}
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// groupBetween is what one group's figures added from before to after.
func groupBetween(after, before chaos.GroupFigures) chaos.GroupFigures {
	return withMean(minus(after, before))
}

// groupSum adds two groups' figures.
func groupSum(a, b chaos.GroupFigures) chaos.GroupFigures { return withMean(plus(a, b)) }

// withMean sets the mean time per search from the totals, which a
// difference or a sum of means does not give.
func withMean(g chaos.GroupFigures) chaos.GroupFigures {
	g.MeanSearchMS = 0
	if g.Searches > 0 {
		g.MeanSearchMS = g.SearchSeconds * 1000 / float64(g.Searches)
	}
	return g
}

// poolBetween is what go-redis's pool counted from before to after; its
// gauges (connections now open, idle, stale) are after's.
func poolBetween(after, before chaos.PoolStats) chaos.PoolStats {
	p := minus(after, before)
	p.TotalConns, p.IdleConns, p.StaleConns = after.TotalConns, after.IdleConns, after.StaleConns
	return p
}

// minus returns a − b for every number of a struct of numbers (nested
// structs and maps of them included, a key missing on one side counting as
// zero); plus returns a + b.
func minus[T any](a, b T) T { return combine(a, b, -1) }
func plus[T any](a, b T) T  { return combine(a, b, 1) }

func combine[T any](a, b T, sign int) T {
	var out T
	combineValues(reflect.ValueOf(&out).Elem(), reflect.ValueOf(a), reflect.ValueOf(b), sign)
	return out
}

func combineValues(out, a, b reflect.Value, sign int) {
	switch a.Kind() {
	case reflect.Struct:
		for i := range a.NumField() {
			combineValues(out.Field(i), a.Field(i), b.Field(i), sign)
		}
	case reflect.Map: // such as the counters of each HTTP dependency: key by key
		if a.Len() == 0 && b.Len() == 0 {
			return
		}
		out.Set(reflect.MakeMap(a.Type()))
		zero := reflect.Zero(a.Type().Elem())
		for _, m := range []reflect.Value{a, b} {
			for _, k := range m.MapKeys() {
				if out.MapIndex(k).IsValid() {
					continue
				}
				av, bv := a.MapIndex(k), b.MapIndex(k)
				if !av.IsValid() {
					av = zero
				}
				if !bv.IsValid() {
					bv = zero
				}
				v := reflect.New(a.Type().Elem()).Elem()
				combineValues(v, av, bv, sign)
				out.SetMapIndex(k, v)
			}
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		out.SetInt(a.Int() + int64(sign)*b.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if sign < 0 {
			out.SetUint(a.Uint() - b.Uint())
		} else {
			out.SetUint(a.Uint() + b.Uint())
		}
	case reflect.Float32, reflect.Float64:
		out.SetFloat(a.Float() + float64(sign)*b.Float())
	default:
		panic(fmt.Sprintf("minus, plus: %s is not a number", a.Type()))
	}
}
