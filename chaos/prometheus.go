package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	"github.com/prometheus/common/model"
)

// prometheusURLWant is what a probe's url is told it should be.
const prometheusURLWant = "want the http:// or https:// base URL of a Prometheus server, such as http://127.0.0.1:9090"

// checkPrometheusProbe validates a Prometheus probe's url and query when an
// experiment file is loaded, so that a typo stops the run before anything is
// injected. Its errors start with the field ("url: ", "query: ") for the
// loader to put the probe's path in front. The query is only required to be
// non-empty: parsing PromQL here would need the Prometheus server's own
// module, and the server's error, which names the position, is the message
// at the first steady-state check, before the first step.
func checkPrometheusProbe(rawURL, query string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("url: %q is not a URL: %s", redactURL(rawURL), prometheusURLWant)
	}
	shown := u.Redacted()
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("url: %q is not http or https: %s", shown, prometheusURLWant)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("url: %q has no host: %s", shown, prometheusURLWant)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		// Each request sets the query string to its own
		// parameters: one here would be dropped without a word.
		return fmt.Errorf("url: %q has a query string or fragment, which the API requests would drop: %s", shown, prometheusURLWant)
	}
	if strings.TrimSpace(query) == "" {
		return fmt.Errorf("query: is empty: want a PromQL expression with one value, such as histogram_quantile(0.99, sum by (le) (rate(shopsession_http_request_duration_seconds_bucket[1m])))")
	}
	return nil
}

// queryPrometheus runs query as an instant query at baseURL, at the
// server's own time, and returns its one value. A probe judges one number,
// so anything else is an error: an empty result (the series does not exist,
// or a comparison filtered it out), several series (the query lacks an
// aggregation), a range vector, a NaN or infinite value (a ratio of
// nothing), and warnings (the answer may be partial). Every error is one
// line naming the query and the URL, with any password redacted.
//
// It decodes the API's answer itself rather than through
// client_golang/api/prometheus/v1, which on this Go version needs
// json-iterator, a module the service does not otherwise carry.
func queryPrometheus(ctx context.Context, client *http.Client, baseURL, query string) (float64, error) {
	fail := func(format string, args ...any) (float64, error) {
		return 0, fmt.Errorf("prometheus query %q at %q: %s", query, redactURL(baseURL), oneLine(fmt.Sprintf(format, args...)))
	}
	c, err := api.NewClient(api.Config{Address: baseURL, Client: client})
	if err != nil {
		return fail("%v", err)
	}
	u := c.URL("/api/v1/query", nil)
	params := url.Values{"query": {query}}
	var within time.Duration
	if deadline, ok := ctx.Deadline(); ok {
		// The server stops evaluating when the runner stops waiting,
		// rather than finishing a heavy query nobody reads.
		within = time.Until(deadline).Round(time.Millisecond)
		if t := serverTimeout(within); t > 0 {
			params.Set("timeout", t.String())
		}
	}
	u.RawQuery = params.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fail("%v", err)
	}
	resp, body, err := c.Do(ctx, req)
	if err != nil {
		return fail("%s", describeRequestError(ctx, err, within, client))
	}
	var answer struct {
		Status    string   `json:"status"`
		ErrorType string   `json:"errorType"`
		Error     string   `json:"error"`
		Warnings  []string `json:"warnings"`
		Data      struct {
			ResultType model.ValueType `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	jsonErr := json.Unmarshal(body, &answer)
	switch {
	case jsonErr == nil && answer.Status == "error":
		// Prometheus's own refusals (a parse error, a timeout, a query
		// over its limits) come with a 4xx or 5xx and say why.
		return fail("the server refused it (%s): %s", answer.ErrorType, answer.Error)
	case resp.StatusCode/100 != 2:
		return fail("the server answered HTTP %s (is this the base URL of a Prometheus server?)", resp.Status)
	case jsonErr != nil:
		return fail("not an answer of the Prometheus API: %v", jsonErr)
	case answer.Status != "success":
		return fail("not an answer of the Prometheus API: status %q", answer.Status)
	case len(answer.Warnings) > 0:
		return fail("the server warned that the result may be incomplete: %s", strings.Join(answer.Warnings, "; "))
	}
	return probeValue(answer.Data.ResultType, answer.Data.Result, fail)
}

// probeValue is the one number of an instant query's result.
func probeValue(kind model.ValueType, result json.RawMessage, fail func(string, ...any) (float64, error)) (float64, error) {
	switch kind {
	case model.ValScalar:
		var v model.Scalar
		if err := json.Unmarshal(result, &v); err != nil {
			return fail("not an answer of the Prometheus API: %v", err)
		}
		return finiteValue(float64(v.Value), fail)
	case model.ValVector:
		var v model.Vector
		if err := json.Unmarshal(result, &v); err != nil {
			return fail("not an answer of the Prometheus API: %v", err)
		}
		switch len(v) {
		case 0:
			return fail("empty result: no series matched (is it scraped yet, or did a filter drop it?)")
		case 1:
			if v[0].Histogram != nil {
				return fail("a native histogram, a probe needs a number: take histogram_quantile() or histogram_count() of it")
			}
			return finiteValue(float64(v[0].Value), fail)
		}
		return fail("%d series, a probe needs one: aggregate them, such as with sum() or max(); they are %s", len(v), seriesList(v))
	case model.ValMatrix:
		var v []json.RawMessage
		json.Unmarshal(result, &v)
		return fail("a range vector (%d series), a probe needs one instant value: drop the [range] or wrap it, such as in rate()", len(v))
	}
	return fail("a %s, a probe needs a number", kind)
}

// describeRequestError says why a request got no answer, without the
// request's URL, which the caller's message names already.
func describeRequestError(ctx context.Context, err error, within time.Duration, client *http.Client) string {
	var netErr net.Error
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Sprintf("no answer within %s", within)
	case ctx.Err() != nil:
		return "cancelled"
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout():
		// The client's own Timeout ran out first.
		if client != nil && client.Timeout > 0 {
			return fmt.Sprintf("no answer within %s", client.Timeout)
		}
		return "no answer: timed out"
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err
	}
	return "unreachable: " + err.Error()
}

// serverTimeout is d as the API's timeout parameter can carry it: the server
// reads "1.5s" as neither a number nor a Prometheus duration, so whole
// seconds, or whole milliseconds below one.
func serverTimeout(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Truncate(time.Second)
	}
	return d.Truncate(time.Millisecond)
}

func finiteValue(f float64, fail func(string, ...any) (float64, error)) (float64, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fail("the value is %v, a probe needs a finite number (a ratio of nothing? guard the divisor, such as with > 0)", f)
	}
	return f, nil
}

// seriesList shows the first few series of v, enough to see which label
// tells them apart.
func seriesList(v model.Vector) string {
	const shown = 3
	var b strings.Builder
	for i, s := range v {
		if i == shown {
			fmt.Fprintf(&b, " and %d more", len(v)-shown)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(s.Metric.String())
	}
	return b.String()
}

// redactURL is raw with any password replaced by xxxxx, for messages; a
// value that does not parse is shown up to its authority's end at most, so
// that a malformed user:password@ does not leak either.
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	if at := strings.LastIndex(raw, "@"); at >= 0 {
		scheme := ""
		if i := strings.Index(raw, "://"); i >= 0 && i < at {
			scheme = raw[:i+3]
		}
		return scheme + "xxxxx@" + raw[at+1:]
	}
	return raw
}

// oneLine folds a server's multi-line message into one line of a report.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
