package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseSettings(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "app")
	if err := os.WriteFile(bin, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"-prod", bin, "-chaos", bin}
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

	s, err := parseSettings(args, env(map[string]string{"BENCH_SECONDS": "2", "BENCH_DELAYS": "0.01, 0.1", "BENCH_LOAD_SECONDS": "0"}))
	if err != nil || s.seconds != 2 || s.pairs != 5 || s.loadSeconds != 0 || len(s.delays) != 2 || s.delays[1] != 0.1 {
		t.Errorf("settings %+v, %v", s, err)
	}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args, map[string]string{"BENCH_SECONDS": "0"}, `invalid BENCH_SECONDS "0": want a whole number from 1 to 600`},
		{args, map[string]string{"BENCH_PAIRS": "1"}, `invalid BENCH_PAIRS "1": want a whole number from 5 to 50`},
		{args, map[string]string{"BENCH_CONCURRENCY": "x"}, `invalid BENCH_CONCURRENCY "x"`},
		{args, map[string]string{"BENCH_LOAD_SECONDS": "-1"}, `invalid BENCH_LOAD_SECONDS "-1"`},
		{args, map[string]string{"BENCH_DELAYS": "0.1,fast"}, `invalid BENCH_DELAYS "0.1,fast"`},
		{[]string{"-prod", bin}, nil, "-chaos is required"},
		{[]string{"-prod", bin, "-chaos", bin + ".missing"}, nil, "run make build build-chaos"},
		{[]string{"-nope"}, nil, "flag provided but not defined"},
	} {
		if _, err := parseSettings(tc.args, env(tc.env)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("args %q env %v: %v, want %q", tc.args, tc.env, err, tc.want)
		}
	}
}
