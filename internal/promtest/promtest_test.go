package promtest

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
)

func TestStartScrapesTargets(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "promtest_gauge"})
	reg.MustRegister(g)
	g.Set(3)
	begin := time.Now()
	s := Start(t, Export(t, reg))
	ready := time.Since(begin)
	if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") {
		t.Errorf("URL %s, want loopback", s.URL())
	}
	s.WaitFor(t, 15*time.Second, "promtest_gauge", func(v model.Vector) bool {
		return len(v) == 1 && v[0].Value == 3
	})
	t.Logf("ready after %s, first scrape seen after %s", ready.Round(time.Millisecond), time.Since(begin).Round(time.Millisecond))
	v := s.WaitFor(t, 15*time.Second, `up{job="promtest"}`, func(v model.Vector) bool { return len(v) == 1 })
	if v[0].Value != 1 {
		t.Errorf("up = %v, want 1", v[0].Value)
	}
	// A scalar comes back as one sample.
	s.WaitFor(t, 5*time.Second, "vector(1) * 2", func(v model.Vector) bool { return len(v) == 1 && v[0].Value == 2 })
	s.WaitFor(t, 5*time.Second, "scalar(vector(5))", func(v model.Vector) bool { return len(v) == 1 && v[0].Value == 5 })

	// The web API beyond queries is closed: no lifecycle, no admin.
	resp, err := http.Post(s.URL()+"/-/quit", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Errorf("/-/quit answered %s, want the lifecycle API off", resp.Status)
	}
}

func TestConfigWithoutTargets(t *testing.T) {
	if got := string(configFor(nil)); strings.Contains(got, "scrape_configs") || !strings.Contains(got, "scrape_interval: 1s") {
		t.Errorf("configFor(nil) =\n%s", got)
	}
}
