package chaos

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"
)

// BenchmarkDelay measures the delay a wait really takes against the one
// asked for, and the CPU the process spends on each: late-µs (mean and
// max), cpu-µs a delay. Run it alone on an idle machine, for example
// go test -run '^$' -bench Delay -benchtime 200x ./chaos/.
func BenchmarkDelay(b *testing.B) {
	for _, d := range []time.Duration{10 * time.Millisecond, 100 * time.Millisecond} {
		b.Run(fmt.Sprint(d), func(b *testing.B) {
			var late, worst time.Duration
			cpu := cpuTime(b)
			for b.Loop() {
				start := time.Now()
				if err := waitFn(context.Background(), start.Add(d)); err != nil {
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

var waitFn = func(ctx context.Context, t time.Time) error {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	<-timer.C
	return nil
}
