package chaos

import "net/http"

// hangFailure holds a call unanswered until the caller gives up: its
// context's deadline, or its cancellation. The call is never sent. When
// its plan stops first (a stop, an abort, the end of the duration) it is
// sent at once, as if it had been delayed: no experiment leaves a call
// hanging after it.
type hangFailure struct{}

func (hangFailure) inject(t *faultyTransport, p *plan, req *http.Request) (*http.Response, error) {
	t.counters.inProgress.Add(1)
	ctx := req.Context()
	select {
	case <-ctx.Done():
	case <-p.live.Done():
	}
	t.counters.inProgress.Add(-1)
	if ctx.Err() != nil {
		closeBody(req)
		return nil, ctx.Err()
	}
	return t.next.RoundTrip(req)
}
