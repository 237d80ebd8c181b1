package chaos

import (
	"net/http"
	"syscall"
)

// transportFailure fails a call with a transport error, without sending
// it: what a call to a stopped dependency gets.
type transportFailure struct{}

func (transportFailure) inject(t *faultyTransport, _ *plan, req *http.Request) (*http.Response, error) {
	closeBody(req)
	return nil, &TransportError{Dependency: t.dependency}
}

// TransportError is the injected transport error of an HTTP call. It
// unwraps to ECONNREFUSED, which a call to a dependency that is not
// listening gets, so that a client that tells errors apart with errors.Is
// handles it as that; http.Client returns it inside a *url.Error, as it
// does a real one.
type TransportError struct {
	Dependency string
}

func (e *TransportError) Error() string {
	return "chaos: injected transport error calling " + e.Dependency + ": connection refused"
}

func (e *TransportError) Unwrap() error { return syscall.ECONNREFUSED }
