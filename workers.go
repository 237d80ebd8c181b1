package main

import (
	"fmt"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// workerPool runs each request's handler on a long-lived goroutine, as
// fasthttp's worker pool does. net/http serves every connection on a new
// goroutine, which starts with the smallest stack, and without keep-alive
// (ab as the book types it, many browsers' first visit) that is a new
// goroutine per page. A page goes deeper than that stack: the middleware,
// the breaker, go-redis's command path, html/template's escapers, the
// response's header. So the runtime copied the stack as it grew, more than
// once a page (docs/performance.md). A busy worker's stack stays grown (the
// garbage collector halves only the stacks of goroutines that use little of
// theirs, such as a worker idle for a while); handing a request over costs
// two goroutine switches.
//
// A worker that waits workerIdle without a request ends, so that a burst's
// workers do not outlive it; when none is waiting, the request starts one.
type workerPool struct {
	next http.Handler
	jobs chan *workerJob // unbuffered: a send succeeds only when a worker waits
	done chan struct{}   // closed by Close
	once sync.Once

	started atomic.Int64 // workers started, for the tests
}

const workerIdle = 10 * time.Second

type workerJob struct {
	w    http.ResponseWriter
	r    *http.Request
	done chan any // the handler's panic, or nil; buffered
}

var workerJobs = sync.Pool{New: func() any { return &workerJob{done: make(chan any, 1)} }}

func newWorkerPool(next http.Handler) *workerPool {
	return &workerPool{next: next, jobs: make(chan *workerJob), done: make(chan struct{})}
}

func (p *workerPool) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	j := workerJobs.Get().(*workerJob)
	j.w, j.r = w, r
	select {
	case p.jobs <- j:

	default:
		p.started.Add(1)
		go p.work(j)
	}
	recovered := <-j.done
	j.w, j.r = nil, nil
	workerJobs.Put(j)
	if _, ok := recovered.(workerGoexit); ok {
		// As the handler did: net/http's deferred close of the connection
		// runs, as it would have without the pool.
		runtime.Goexit()
	}
	if recovered != nil {
		// Again on the connection's goroutine, where net/http handles a
		// handler's panic: it logs it, or for ErrAbortHandler aborts the
		// response quietly, and closes the connection.
		panic(recovered)
	}
}

// Close ends the waiting workers; a busy one ends once its request is
// served. Requests after Close are each served on a goroutine of their own.
func (p *workerPool) Close() { p.once.Do(func() { close(p.done) }) }

func (p *workerPool) work(j *workerJob) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	serving := false
	defer func() {
		if serving { // the handler called runtime.Goexit: hand that back too
			j.done <- workerGoexit{}
		}
	}()
	for {
		serving = true
		recovered := p.serve(j)
		serving = false
		j.done <- recovered
		idle.Reset(workerIdle)
		select {
		case j = <-p.jobs:
		case <-idle.C:
			return
		case <-p.done:
			return
		}
	}
}

// serve runs the handler and returns what it panicked with, if it did, with
// the worker's stack: net/http's log would show only where the connection's
// goroutine panicked again.
func (p *workerPool) serve(j *workerJob) (recovered any) {
	defer func() {
		if v := recover(); v != nil {
			recovered = v
			if v != http.ErrAbortHandler {
				recovered = workerPanic{value: v, stack: debug.Stack()}
			}
		}
	}()
	p.next.ServeHTTP(j.w, j.r)
	// A response that gave its length goes out from here, on the worker's
	// stack, once every middleware has counted it: net/http would write it
	// when the request is finished, on the connection's goroutine, whose
	// small stack writing the header grows.
	if _, ok := j.w.Header()["Content-Length"]; ok {
		http.NewResponseController(j.w).Flush()
	}
	return nil
}

// workerGoexit is what a worker hands back when its handler called
// runtime.Goexit.
type workerGoexit struct{}

// workerPanic is a handler's panic as the connection's goroutine panics
// again with it.
type workerPanic struct {
	value any
	stack []byte
}

func (p workerPanic) String() string {
	return fmt.Sprintf("%v\n\non the worker:\n%s", p.value, p.stack)
}
