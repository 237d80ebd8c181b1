package main

import (
	"context"
	"example.com/shopsession/internal/redistest"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// redisCluster is a three-master Redis Cluster of redis-server processes on
// loopback, without replicas.
type redisCluster struct{ nodes []*redisServer }

// startRedisCluster starts three cluster-enabled redis-servers and joins them
// with redis-cli --cluster create. A master that stops takes only its own
// slots down (cluster-require-full-coverage no) and is noticed within a
// second (cluster-node-timeout 1000).
func startRedisCluster() (*redisCluster, error) {
	c := &redisCluster{}
	var addrs []string
	for len(c.nodes) < 3 {
		port, err := freeClusterPort()
		if err != nil {
			c.stop()
			return nil, err
		}
		s, err := redistest.StartOn(port, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "1000", "--cluster-require-full-coverage", "no")
		if err != nil {
			c.stop()
			return nil, err
		}
		node := &redisServer{s}
		c.nodes = append(c.nodes, node)
		addrs = append(addrs, node.addr())
	}
	create := exec.Command("redis-cli", append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")...)
	if out, err := create.CombinedOutput(); err != nil {
		c.stop()
		return nil, fmt.Errorf("redis-cli --cluster create: %v\n%s", err, out)
	}
	// Every node must agree that the cluster is up before the tests use it.
	deadline := time.Now().Add(30 * time.Second)
	for _, node := range c.nodes {
		rdb := redis.NewClient(&redis.Options{Addr: node.addr()})
		for !strings.Contains(rdb.ClusterInfo(context.Background()).Val(), "cluster_state:ok") {
			if time.Now().After(deadline) {
				rdb.Close()
				c.stop()
				return nil, fmt.Errorf("the cluster at %v never reached cluster_state:ok", addrs)
			}
			time.Sleep(50 * time.Millisecond) // polling the cluster's own state; nothing to wait on
		}
		rdb.Close()
	}
	return c, nil
}

// freeClusterPort finds a free port whose cluster bus port (+10000) is free too.
func freeClusterPort() (int, error) {
	for range 20 {
		port, err := freePort()
		if err != nil {
			return 0, err
		}
		if port+10000 > 65535 {
			continue
		}
		if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000)); err == nil {
			ln.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free port pair for a cluster node")
}

func (c *redisCluster) stop() {
	for _, n := range c.nodes {
		n.stop()
	}
}

// url is the cluster in go-redis's cluster URL syntax.
func (c *redisCluster) url() string {
	u := "redis://" + c.nodes[0].addr() + "/?"
	for i, n := range c.nodes[1:] {
		if i > 0 {
			u += "&"
		}
		u += "addr=" + n.addr()
	}
	return u
}

func (c *redisCluster) client(t testing.TB) *redis.ClusterClient {
	opts, err := redis.ParseClusterURL(c.url())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClusterClient(opts)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

var (
	sharedCluster     *redisCluster
	sharedClusterErr  error
	sharedClusterOnce sync.Once
)

// testCluster returns a cluster shared by the tests that do not break it;
// TestMain stops it.
func testCluster(t *testing.T) *redisCluster {
	t.Helper()
	sharedClusterOnce.Do(func() { sharedCluster, sharedClusterErr = startRedisCluster() })
	if sharedClusterErr != nil {
		t.Fatal(sharedClusterErr)
	}
	return sharedCluster
}

func TestClusterURLConfig(t *testing.T) {
	cfg, err := parseConfig(nil, mapGetenv(map[string]string{"REDIS_URL": "redis://127.0.0.1:7000?addr=127.0.0.1:7001&addr=127.0.0.1:7002"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.redisCluster == nil || cfg.redisOptions != nil || !slices.Equal(cfg.redisCluster.Addrs, []string{"127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"}) {
		t.Errorf("cluster options %+v, single options %+v", cfg.redisCluster, cfg.redisOptions)
	}
	_, err = parseConfig(nil, mapGetenv(map[string]string{"REDIS_URL": "redis://127.0.0.1:7000?addr=127.0.0.1:7001&bogus=1"}), nil)
	if err == nil || !strings.Contains(err.Error(), "invalid REDIS_URL") {
		t.Errorf("a cluster URL with an unknown option: %v", err)
	}
}

func TestClusterSearch(t *testing.T) {
	checkSearchRemembers(t, map[string]string{"REDIS_URL": testCluster(t).url()})
}

func TestClusterNoLostUpdates(t *testing.T) {
	c := testCluster(t)
	checkNoLostUpdates(t, map[string]string{"REDIS_URL": c.url()}, c.client(t), 50)
}

// TestClusterSessionMovesBetweenInstances: two app instances share one
// cluster, so a visitor sent to either sees one session.
func TestClusterSessionMovesBetweenInstances(t *testing.T) {
	env := map[string]string{"REDIS_URL": testCluster(t).url()}
	a, b := startApp(t, env), startApp(t, env)
	id := uuid.NewString()
	a.searchFor(t, id, "apple")
	b.searchFor(t, id, "pear")
	if got := interestsOn(a.searchFor(t, id, "plum").body); !slices.Equal(got, []string{"apple", "pear", "plum"}) {
		t.Errorf("interests across instances A, B, A = %q", got)
	}
}

// TestClusterMasterKilled stops one master: sessions whose slots it served
// lose their recommendations, every other session keeps them, and every page
// still renders.
func TestClusterMasterKilled(t *testing.T) {
	c, err := startRedisCluster()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.stop)
	app := startApp(t, map[string]string{"REDIS_URL": c.url(), "REDIS_TIMEOUT": "500ms"})
	rdb := c.client(t)
	ctx := context.Background()

	// One session per master.
	sessionOn := map[string]string{}
	for i := 0; len(sessionOn) < len(c.nodes) && i < 1000; i++ {
		id := fmt.Sprint("kill-", i)
		master, err := rdb.MasterForKey(ctx, sessionKeyPrefix+id)
		if err != nil {
			t.Fatal(err)
		}
		if _, seen := sessionOn[master.Options().Addr]; !seen {
			sessionOn[master.Options().Addr] = id
		}
	}
	for addr, id := range sessionOn {
		if resp := app.searchFor(t, id, "apple"); !hasRecommendation(resp.body) {
			t.Fatalf("session on %s: no recommendation before the kill", addr)
		}
	}

	killed := c.nodes[0]
	killed.stop()
	for addr, id := range sessionOn {
		resp := app.searchFor(t, id, "pear")
		onKilled := addr == killed.addr()
		if resp.status != 200 || !strings.HasSuffix(resp.body, "</html>\n") || hasRecommendation(resp.body) == onKilled {
			t.Errorf("session on %s (killed: %v): status %d, recommendation %v", addr, onKilled, resp.status, hasRecommendation(resp.body))
		}
	}
	if resp := app.get(t, "/healthz", ""); resp.status != 200 {
		t.Errorf("GET /healthz = %d after a master died", resp.status)
	}
}
