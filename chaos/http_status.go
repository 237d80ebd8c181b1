package chaos

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// statusFailure answers a call with a synthetic response of its status
// (http_status), without sending it: the dependency answering an error of
// its own, such as a 503 while it sheds load.
type statusFailure struct{ code int }

// injectedHeader marks a synthetic response, for whoever reads a capture
// of the traffic; a client needs not look at it.
const injectedHeader = "Chaos-Injected"

func (s statusFailure) inject(_ *faultyTransport, _ *plan, req *http.Request) (*http.Response, error) {
	closeBody(req)
	text := http.StatusText(s.code)
	body := fmt.Sprintf("chaos: injected %d %s\n", s.code, text)
	return &http.Response{
		Status:     strconv.Itoa(s.code) + " " + text,
		StatusCode: s.code,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{
			"Content-Type":   {"text/plain; charset=utf-8"},
			"Content-Length": {strconv.Itoa(len(body))},
			injectedHeader:   {"http_status"},
		},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}, nil
}
