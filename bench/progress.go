package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// progress tells a person watching stderr which scenario runs and how long
// it has left: a countdown on a terminal, a line per run elsewhere.
type progress struct {
	w        io.Writer
	terminal bool
	mu       sync.Mutex
	stopped  chan struct{}
	finished chan struct{}
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.terminal = true
		}
	}
	return p
}

func (p *progress) note(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "bench: "+format+"\n", args...)
}

// start shows label counting down from seconds until stop.
func (p *progress) start(label string, seconds int) {
	p.note("%s: ab for %d s", label, seconds)
	if !p.terminal {
		return
	}
	p.stopped, p.finished = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(p.finished)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for left := seconds; ; left-- {
			p.mu.Lock()
			fmt.Fprintf(p.w, "\r  %s: %3d s left ", label, max(left, 0))
			p.mu.Unlock()
			select {
			case <-p.stopped:
				p.mu.Lock()
				fmt.Fprint(p.w, "\r\033[K")
				p.mu.Unlock()
				return
			case <-tick.C:
			}
		}
	}()
}

func (p *progress) stop() {
	if p.stopped != nil {
		close(p.stopped)
		<-p.finished
		p.stopped = nil
	}
}

func (p *progress) done() { p.note("done") }
