package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/collectors"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"example.com/shopsession/chaos"
)

// How the catalogue runs one side of a row: a redis-server of its own, the
// chaos build in front of it (through a toxiproxy proxy, for the conditions
// toxiproxy brings about), a warm-up with nothing wrong, then the fault
// (injected by PUT, or the real condition brought about) for the measured
// ab run, at catalogueConcurrency.

// catalogueRun is what one side of a row measured.
type catalogueRun struct {
	ab         abResult
	pages      pageCounts
	conn       chaos.ConnCounters
	errors     int64 // chaos: failed reads injected
	roundTrips int64 // to Redis, counted on the connections at either side
	breakers   int   // times a breaker opened during the measured run
	stored     int64 // the service's keys in Redis at the end
	// evalshas and noscripts are the EVALSHAs Redis ran and the NOSCRIPT
	// replies it gave during the measured run.
	evalshas, noscripts int64
}

func (r catalogueRun) recommendedShare() float64 {
	total := r.pages.WithRecommendations + r.pages.WithoutRecommendations
	if total == 0 {
		return 0
	}
	return float64(r.pages.WithRecommendations) / float64(total)
}

// catalogueRedis is a redis-server the bench started for one run.
type catalogueRedis struct {
	cmd  *exec.Cmd
	addr string
}

func startCatalogueRedis(ctx context.Context, workDir string, args []string) (*catalogueRedis, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(workDir, "catalogue-redis-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("redis-server", append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir, "--logfile", ""}, args...)...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	r := &catalogueRedis{cmd: cmd, addr: "127.0.0.1:" + strconv.Itoa(port)}
	if err := waitFor(ctx, 10*time.Second, func() error { return ping(r.addr) }); err != nil {
		r.stop()
		return nil, fmt.Errorf("redis-server on %s never answered: %w", r.addr, err)
	}
	return r, nil
}

func (r *catalogueRedis) url() string { return "redis://" + r.addr + "/0" }

// signal stops (SIGSTOP) or continues (SIGCONT) the server.
func (r *catalogueRedis) signal(sig syscall.Signal) error { return r.cmd.Process.Signal(sig) }

func (r *catalogueRedis) stop() {
	r.cmd.Process.Signal(syscall.SIGCONT) // a stopped server takes no SIGTERM
	stopRedis(r.cmd)
}

// toxicProxy proxies a loopback port to upstream with one toxic, given as
// toxiproxy's JSON.
func toxicProxy(upstream, toxic string) (*toxiproxy.Proxy, error) {
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	server.Metrics.ProxyMetrics = collectors.NewProxyMetricCollectors()
	proxy := toxiproxy.NewProxy(server, "redis", "127.0.0.1:0", upstream)
	if err := proxy.Start(); err != nil {
		return nil, err
	}
	if _, err := proxy.Toxics.AddToxicJson(strings.NewReader(toxic)); err != nil {
		proxy.Stop()
		return nil, err
	}
	return proxy, nil
}

// catalogueSide is one side of a row: the setup of its process and how its
// fault comes about.
type catalogueSide struct {
	label     string
	redisArgs []string // the redis-server's options
	env       []string // the app's, beside REDIS_URL
	// toxic, if set, puts a toxiproxy proxy with this toxic between the app
	// and Redis from the start (it is the real condition).
	toxic string
	// inject is the PUT body that injects the fault after the warm-up.
	inject string
	// begin brings about the real condition after the warm-up and returns
	// what ends it after the measured run.
	begin realCondition
}

// run measures one side: its own redis-server and process, a warm-up of a
// second with nothing wrong but a toxic, then the fault for b.seconds.
func (b *bench) catalogueSideRun(ctx context.Context, side catalogueSide, postFile string) (catalogueRun, error) {
	var run catalogueRun
	fail := func(err error) (catalogueRun, error) { return run, fmt.Errorf("%s: %w", side.label, err) }
	redisSrv, err := startCatalogueRedis(ctx, b.workDir, side.redisArgs)
	if err != nil {
		return fail(err)
	}
	defer redisSrv.stop()
	redisURL := redisSrv.url()
	if side.toxic != "" {
		proxy, err := toxicProxy(redisSrv.addr, side.toxic)
		if err != nil {
			return fail(fmt.Errorf("toxiproxy: %w", err))
		}
		defer proxy.Stop()
		redisURL = "redis://" + proxy.Listen + "/0"
	}
	app, err := startApp(ctx, b.chaosBinary, append([]string{"REDIS_URL=" + redisURL}, side.env...))
	if err != nil {
		return fail(err)
	}
	app.chaos = true
	defer app.stop()
	ab := abOptions{url: app.url + "/search", seconds: 1, concurrency: catalogueConcurrency, postFile: postFile, cookie: benchCookie}
	if _, err := runAB(ctx, ab, b.workDir); err != nil {
		return fail(fmt.Errorf("warm-up: %w", err))
	}
	rdb := redis.NewClient(&redis.Options{Addr: redisSrv.addr})
	defer rdb.Close()
	rdb.ConfigResetStat(ctx)
	end := func() {}
	switch {
	case side.inject != "":
		if err := app.setExperiment(side.inject); err != nil {
			return fail(err)
		}
	case side.begin != nil:
		if end, err = side.begin(ctx, redisSrv); err != nil {
			return fail(err)
		}
	}
	before, err := app.counts()
	if err != nil {
		end()
		return fail(err)
	}
	opened, err := breakerOpenings(app)
	if err != nil {
		end()
		return fail(err)
	}
	b.progress.start(side.label, b.seconds)
	ab.seconds = b.seconds
	run.ab, err = runAB(ctx, ab, b.workDir)
	b.progress.stop()
	if err != nil {
		end()
		return fail(err)
	}
	after, err := app.counts()
	if err == nil {
		run.breakers, err = breakerOpenings(app)
		run.breakers -= opened
	}
	end()
	if err != nil {
		return fail(err)
	}
	run.evalshas = infoCount(ctx, rdb, "commandstats", "cmdstat_evalsha:calls=")
	run.noscripts = infoCount(ctx, rdb, "errorstats", "errorstat_NOSCRIPT:count=")
	run.pages = minus(after.pages, before.pages)
	c := minus(after.chaos.Counters, before.chaos.Counters)
	run.conn, run.errors, run.roundTrips = c.Connection, c.ErrorsInjected, c.RedisRoundTrips
	if run.stored, err = storedKeys(ctx, redisSrv.addr); err != nil {
		return fail(err)
	}
	if err := app.stop(); err != nil {
		return fail(fmt.Errorf("stop: %w", err))
	}
	return run, nil
}

// breakerOpenings is how many times the app's breakers opened so far, from
// its /metrics.
func breakerOpenings(app *appProcess) (int, error) {
	families, err := scrapeMetrics(app.admin)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range families["shopsession_redis_breaker_transitions_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "to" && l.GetValue() == "open" {
				n += int(m.GetCounter().GetValue())
			}
		}
	}
	return n, nil
}

// infoCount is the number after prefix in a section of INFO; 0 if absent
// (or if a server stopped by the row does not answer).
func infoCount(ctx context.Context, rdb *redis.Client, section, prefix string) int64 {
	info, _ := rdb.Info(ctx, section).Result()
	for line := range strings.SplitSeq(info, "\r\n") {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			n, _ := strconv.ParseInt(strings.TrimRight(rest[:strings.IndexAny(rest+",", ",")], "\r\n"), 10, 64)
			return n
		}
	}
	return 0
}
