package chaos

import (
	"io"
)

// Stand-in until the Prometheus probe lands.

func writeReport(w io.Writer, events []JournalEvent) error { return nil }
