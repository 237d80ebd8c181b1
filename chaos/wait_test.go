//go:build unix

package chaos

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"
)

// TestDelayCostsNoCPU: 20 delays of 10 ms, one after the other, cost the
// process under a twentieth of the time they wait in CPU, its own idle
// upkeep included. Spinning through each delay's last 2 ms cost it a fifth.
func TestDelayCostsNoCPU(t *testing.T) {
	const n, d = 20, 10 * time.Millisecond
	ctx := context.Background()
	cpu := cpuTime(t)
	for range n {
		if err := wait(ctx, ctx, ctx, time.Now().Add(d)); err != nil {
			t.Fatal(err)
		}
	}
	used := cpuTime(t) - cpu
	if share := float64(used) / float64(n*d); share > 0.05 {
		t.Errorf("%d delays of %v used %v of CPU, %v a delay: %.1f %% of the time they waited, want under 5 %%", n, d, used, used/n, share*100)
	} else {
		t.Logf("%d delays of %v used %v of CPU, %v a delay: %.2f %% of the time they waited", n, d, used, used/n, share*100)
	}
}

// TestWaitEndsWithWhatEndsIt: a wait ends at its deadline with nil; at once
// with the command's context's error, errPlanEnded or errConnClosed when
// one of those ends first, including one that ended before it began.
func TestWaitEndsWithWhatEndsIt(t *testing.T) {
	bg := context.Background()
	start := time.Now()
	if err := wait(bg, bg, bg, start.Add(20*time.Millisecond)); err != nil || time.Since(start) < 20*time.Millisecond {
		t.Errorf("wait to its deadline: %v after %v", err, time.Since(start))
	}
	for _, waiter := range []struct {
		name string
		wait func(ctx, plan, conn context.Context, deadline time.Time) error
	}{{"wait", wait}, {"timerWait", timerWait}} {
		for _, tc := range []struct {
			name string
			want error
			args func(ended context.Context) (ctx, plan, conn context.Context)
		}{
			{"context", context.Canceled, func(c context.Context) (context.Context, context.Context, context.Context) { return c, bg, bg }},
			{"plan", errPlanEnded, func(c context.Context) (context.Context, context.Context, context.Context) { return bg, c, bg }},
			{"connection", errConnClosed, func(c context.Context) (context.Context, context.Context, context.Context) { return bg, bg, c }},
		} {
			for _, already := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%s/already=%v", waiter.name, tc.name, already), func(t *testing.T) {
					c, end := context.WithCancel(bg)
					if already {
						end()
					}
					ctx, plan, conn := tc.args(c)
					result := make(chan error, 1)
					go func() { result <- waiter.wait(ctx, plan, conn, time.Now().Add(time.Minute)) }()
					end()
					select {
					case err := <-result:
						if !errors.Is(err, tc.want) {
							t.Errorf("ended by its %s: %v, want %v", tc.name, err, tc.want)
						}
					case <-time.After(10 * time.Second):
						t.Fatalf("a wait went on 10 s after its %s ended", tc.name)
					}
				})
			}
		}
	}
}

// BenchmarkDelay measures the delay a wait really takes against the one
// asked for, and the CPU the process spends on each: late-µs (mean and
// max), cpu-µs a delay. Run it alone on an idle machine, for example
// go test -run '^$' -bench Delay -benchtime 200x ./chaos/.
func BenchmarkDelay(b *testing.B) {
	for _, d := range []time.Duration{10 * time.Millisecond, 100 * time.Millisecond} {
		b.Run(fmt.Sprint(d), func(b *testing.B) {
			var late, worst time.Duration
			ctx := context.Background()
			cpu := cpuTime(b)
			for b.Loop() {
				start := time.Now()
				if err := wait(ctx, ctx, ctx, start.Add(d)); err != nil {
					b.Fatal(err)
				}
				l := time.Since(start) - d
				late += l
				worst = max(worst, l)
			}
			cpu = cpuTime(b) - cpu
			b.ReportMetric(float64(late.Microseconds())/float64(b.N), "late-µs")
			b.ReportMetric(float64(worst.Microseconds()), "max-late-µs")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/delay")
		})
	}
}

// cpuTime is the user and system time the process has used.
func cpuTime(tb testing.TB) time.Duration {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}
