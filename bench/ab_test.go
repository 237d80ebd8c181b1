package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The fixtures are real ab outputs, captured against this service.
func TestParseAB(t *testing.T) {
	for _, tc := range []struct {
		file string
		want abResult
	}{
		{"error-with-l.txt", abResult{Complete: 5434, RequestsPerS: 2716.96, MeanMS: 0.368}},
		{"error-length-failures.txt", abResult{Complete: 200, Failed: 100, FailedLength: 100, RequestsPerS: 2891.30, MeanMS: 0.692}},
		{"non-2xx.txt", abResult{Complete: 50, Non2xx: 50, RequestsPerS: 4994.01, MeanMS: 0.200}},
		{"latency-10-requests.txt", abResult{Complete: 10, RequestsPerS: 4.96, MeanMS: 201.546}},
	} {
		got, err := parseAB(fixture(t, tc.file))
		if err != nil {
			t.Errorf("%s: %v", tc.file, err)
			continue
		}
		if got.Complete != tc.want.Complete || got.Failed != tc.want.Failed || got.FailedLength != tc.want.FailedLength ||
			got.Non2xx != tc.want.Non2xx || got.RequestsPerS != tc.want.RequestsPerS || got.MeanMS != tc.want.MeanMS {
			t.Errorf("%s: parsed %+v, want %+v", tc.file, got, tc.want)
		}
	}
}

func TestParseABRejectsOtherOutput(t *testing.T) {
	if _, err := parseAB("ab: invalid URL\nUsage: ab [options] [http[s]://]hostname[:port]/path\n"); err == nil ||
		!strings.Contains(err.Error(), "Complete requests") {
		t.Errorf("parseAB of a usage message = %v, want an error naming the missing line", err)
	}
}

func TestParsePercentiles(t *testing.T) {
	p, err := parsePercentiles(fixture(t, "error-with-l.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if p["0"] != 0.120 || p["50"] != 0.315 || p["99"] != 0.689 || p["100"] != 5.948 {
		t.Errorf("p0 %v p50 %v p99 %v p100 %v", p["0"], p["50"], p["99"], p["100"])
	}
}

// With 10 requests ab prints garbage for the 95th to 99th percentiles; they
// are the longest request.
func TestParsePercentilesOfFewRequests(t *testing.T) {
	p, err := parsePercentiles(fixture(t, "latency-10-requests.csv"))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"94", "95", "99", "100"} {
		if p[key] != 202.047 {
			t.Errorf("p%s = %v, want 202.047", key, p[key])
		}
	}
	if p["50"] != 201.442 {
		t.Errorf("p50 = %v, want 201.442 as printed", p["50"])
	}
}

func TestParsePercentilesNeedsEveryRow(t *testing.T) {
	if _, err := parsePercentiles("Percentage served,Time in ms\n0,0.1\n1,0.2\n"); err == nil {
		t.Error("a CSV with two rows was accepted")
	}
}
