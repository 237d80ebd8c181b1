package chaos

import (
	"context"
	"log/slog"
)

// LogHandler wraps h so that every record it handles while an experiment
// with a run id runs carries run_id=<id>: the service's own log lines then
// say which run they were written during, as the experiment's do. While
// none runs it costs a record one atomic load. Wrapping a handler that is
// already this experiment's returns it as it is, so that no line carries
// the id twice. Under a group (WithGroup) the id is in the group, as every
// attribute of the record is.
func (e *Experiment) LogHandler(h slog.Handler) slog.Handler {
	if r, ok := h.(*runIDHandler); ok && r.e == e {
		return h
	}
	return &runIDHandler{h: h, e: e}
}

type runIDHandler struct {
	h slog.Handler
	e *Experiment
}

func (r *runIDHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return r.h.Enabled(ctx, level)
}

func (r *runIDHandler) Handle(ctx context.Context, rec slog.Record) error {
	if id := r.e.active.Load().runID; id != "" {
		rec.AddAttrs(slog.String("run_id", id))
	}
	return r.h.Handle(ctx, rec)
}

func (r *runIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &runIDHandler{h: r.h.WithAttrs(attrs), e: r.e}
}

func (r *runIDHandler) WithGroup(name string) slog.Handler {
	return &runIDHandler{h: r.h.WithGroup(name), e: r.e}
}
