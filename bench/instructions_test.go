package main

import (
	"os"
	"path/filepath"
	"testing"
)

// The sysmon thread's dump is told apart by the function only it runs, and
// every dump's count is its summary line.
func TestCallgrindTotal(t *testing.T) {
	dir := t.TempDir()
	worker := filepath.Join(dir, "out.1-01")
	sysmon := filepath.Join(dir, "out.1-02")
	os.WriteFile(worker, []byte("version: 1\nevents: Ir\nfn=(1) net/http.(*conn).serve\ncfn=(2) runtime.usleep\nsummary: 123456\ntotals: 999\n"), 0o644)
	os.WriteFile(sysmon, []byte("version: 1\nevents: Ir\nfn=(1750) runtime.sysmon\nfn=(3) runtime.usleep\nsummary: 4000\n"), 0o644)
	for _, c := range []struct {
		path   string
		total  float64
		sysmon bool
	}{{worker, 123456, false}, {sysmon, 4000, true}} {
		total, isSysmon, err := callgrindTotal(c.path)
		if err != nil || total != c.total || isSysmon != c.sysmon {
			t.Errorf("%s: %v, %v, %v; want %v, %v", filepath.Base(c.path), total, isSysmon, err, c.total, c.sysmon)
		}
	}
	empty := filepath.Join(dir, "out.1-03")
	os.WriteFile(empty, []byte("version: 1\n"), 0o644)
	if _, _, err := callgrindTotal(empty); err == nil {
		t.Error("a dump without a summary: no error")
	}
}
