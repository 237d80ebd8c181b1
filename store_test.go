package main

import (
	"context"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

func TestWithQuery(t *testing.T) {
	for _, tc := range []struct {
		interests []string
		query     string
		want      []string
	}{
		{nil, "", nil},
		{nil, "a", []string{"a"}},
		{[]string{"a"}, "a", []string{"a"}},
		{[]string{"a", "b"}, "c", []string{"a", "b", "c"}},
		{[]string{"a", "b", "c"}, "d", []string{"b", "c", "d"}},
		{[]string{"a", "b", "c"}, "b", []string{"a", "b", "c"}},
	} {
		before := slices.Clone(tc.interests)
		if got := withQuery(tc.interests, tc.query); !slices.Equal(got, tc.want) {
			t.Errorf("withQuery(%q, %q) = %q, want %q", tc.interests, tc.query, got, tc.want)
		}
		if !slices.Equal(tc.interests, before) {
			t.Errorf("withQuery modified its input %q", before)
		}
	}
}

func TestDecodeInterests(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want []string
		ok   bool
	}{
		{`[]`, []string{}, true},
		{`["a","b"]`, []string{"a", "b"}, true},
		{`["a","b","c","d"]`, []string{"b", "c", "d"}, true},
		{`null`, nil, false},
		{`[1]`, nil, false},
		{`{}`, nil, false},
		{`["a"`, nil, false},
		{``, nil, false},
	} {
		got, ok := decodeInterests(tc.raw)
		if ok != tc.ok || !slices.Equal(got, tc.want) {
			t.Errorf("decodeInterests(%q) = %q, %v; want %q, %v", tc.raw, got, ok, tc.want, tc.ok)
		}
	}
}

// TestNoLostUpdates races three searches of one session, 200 times; a plain
// GET-then-SET loses one of them within a few trials.
func TestNoLostUpdates(t *testing.T) {
	rdb := testRedis.client(t)
	attemptsBefore := evalshaCalls(t, rdb)
	checkNoLostUpdates(t, nil, rdb, 200)
	t.Logf("%d compare-and-set attempts for 600 searches", evalshaCalls(t, rdb)-attemptsBefore)
}

// checkNoLostUpdates runs trials of three concurrent searches of one fresh
// session against the Redis that env names, and reads the result through rdb.
func checkNoLostUpdates(t *testing.T, env map[string]string, rdb redis.UniversalClient, trials int) {
	app := startApp(t, env)
	for trial := range trials {
		id := uuid.NewString()
		queries := []string{"red", "green", "blue"}
		var wg sync.WaitGroup
		for _, q := range queries {
			wg.Go(func() {
				if resp := app.searchFor(t, id, q); resp.status != 200 {
					t.Errorf("search %q = %d", q, resp.status)
				}
			})
		}
		wg.Wait()
		stored, ok := decodeInterests(rdb.Get(context.Background(), sessionKeyPrefix+id).Val())
		slices.Sort(stored)
		if !ok || !slices.Equal(stored, []string{"blue", "green", "red"}) {
			t.Fatalf("trial %d: stored %q, want all three queries", trial, stored)
		}
	}
	if strings.Contains(app.logs.String(), "redis error") {
		t.Errorf("conflicts were logged as errors:\n%s", app.logs.String())
	}
}

// evalshaCalls reads how many EVALSHA commands the server has run.
func evalshaCalls(t *testing.T, rdb *redis.Client) int {
	stats := rdb.Info(context.Background(), "commandstats").Val()
	m := regexp.MustCompile(`cmdstat_evalsha:calls=(\d+)`).FindStringSubmatch(stats)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
