package chaos

import (
	"context"
	"io"
	"net/http"
	"sync"
	"time"
)

// The latency of an HTTP call: before the request, where it holds no
// connection (the command layer's delay, on HTTP), or with
// delay_after_headers after the response's headers, holding its body and
// so its pooled connection, as a dependency that answers at once and then
// streams slowly does. Either ends at its time, with the call's context,
// or at once when its plan stops, and the call then goes on as if never
// delayed.

// delayRequest waits d before the call is sent; it returns the context's
// error if the call's context ended first.
func (t *faultyTransport) delayRequest(p *plan, req *http.Request, d time.Duration) error {
	start := time.Now()
	if err := t.wait(req.Context(), p.live, context.Background(), start, start.Add(d)); err != errPlanEnded {
		return err
	}
	return nil
}

// wait is the one wait of an HTTP delay (see wait), counted while in
// progress and, once over, by the time it took.
func (t *faultyTransport) wait(ctx, plan, body context.Context, start, deadline time.Time) error {
	t.counters.inProgress.Add(1)
	defer t.counters.inProgress.Add(-1)
	err := wait(ctx, plan, body, deadline)
	t.counters.delayedNanos.Add(int64(time.Since(start)))
	return err
}

// holdBody sends the call and holds the body of its answer until d after
// the headers came.
func (t *faultyTransport) holdBody(p *plan, req *http.Request, d time.Duration) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	start := time.Now()
	b := &heldBody{ReadCloser: resp.Body, t: t, req: requestOf(req.Context()), ctx: req.Context(), plan: p.live,
		start: start, until: start.Add(d)}
	b.closed, b.close = context.WithCancel(context.Background())
	resp.Body = b
	return resp, nil
}

// heldBody is a response body whose first read waits until its time: a
// Close from another goroutine ends the wait too.
type heldBody struct {
	io.ReadCloser
	t            *faultyTransport
	req          *request
	ctx, plan    context.Context
	closed       context.Context
	close        context.CancelFunc
	start, until time.Time
	once         sync.Once
	waitErr      error
}

func (b *heldBody) Read(p []byte) (int, error) {
	b.once.Do(func() {
		switch err := b.t.wait(b.ctx, b.plan, b.closed, b.start, b.until); err {
		case nil, errPlanEnded:
		case errConnClosed:
			b.waitErr = http.ErrBodyReadAfterClose
		default:
			b.waitErr = err
			b.req.called(nil, err)
		}
	})
	if b.waitErr != nil {
		return 0, b.waitErr
	}
	return b.ReadCloser.Read(p)
}

func (b *heldBody) Close() error {
	b.close()
	return b.ReadCloser.Close()
}
