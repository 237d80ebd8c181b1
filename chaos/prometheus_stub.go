package chaos

import (
	"context"
	"errors"
	"io"
	"net/http"
)

// Stand-in until the Prometheus probe lands.
func checkPrometheusProbe(rawURL, query string) error { return nil }

func queryPrometheus(ctx context.Context, client *http.Client, baseURL, query string) (float64, error) {
	return 0, errors.New("not yet")
}

func writeReport(w io.Writer, events []JournalEvent) error { return nil }
