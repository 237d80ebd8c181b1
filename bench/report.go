package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// write prints the Markdown report to w and saves latest.json, a
// timestamped copy of it, and latest.svg in dir.
func (r *report) write(w io.Writer, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	stamped := filepath.Join(dir, r.Started.Format("2006-01-02T15-04-05Z")+".json")
	for _, path := range []string{filepath.Join(dir, "latest.json"), stamped} {
		if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
			return err
		}
	}
	chart := filepath.Join(dir, "latest.svg")
	if err := r.chart(chart); err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	r.markdown(w)
	fmt.Fprintf(w, "\nFigures: %s (and %s); chart: %s\n", filepath.Join(dir, "latest.json"), stamped, chart)
	return nil
}

func (r *report) markdown(w io.Writer) {
	fmt.Fprintf(w, "ab -c %d -t %d per run; %d CPUs, %s, Redis %s (%s)\n\n",
		r.Concurrency, r.Seconds, r.Machine.CPUs, r.Machine.GoVersion, r.Machine.RedisVersion, r.Machine.RedisSource)
	fmt.Fprintln(w, "| scenario | build | requests | failed | non-2xx | req/s | mean ms | p50 ms | p99 ms | Δ mean vs steady | predicted Δ | pages with recommendations | verdict |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
	for _, s := range r.Scenarios {
		verdict := s.Verdict
		if verdict == "" {
			verdict = "baseline"
		}
		fmt.Fprintf(w, "| %s | %s | %d | %d | %d | %.1f | %.3f | %.3f | %.3f | %s | %s | %s | %s |\n",
			s.Name, s.Build, s.Summary.Complete, s.Summary.Failed, s.Summary.Non2xx, s.Summary.RequestsPerS,
			s.Summary.MeanMS, s.Summary.percentile(50), s.Summary.percentile(99),
			signedMS(s.DeltaMS), signedMS(s.PredictedMS), percent(s.RecommendedShare), verdict)
	}
	fmt.Fprintln(w)
	for _, s := range r.Scenarios {
		if s.Hypothesis == "" {
			continue
		}
		fmt.Fprintf(w, "- **%s** (%s): %s — %s\n", s.Name, s.Hypothesis, strings.Join(s.Findings, "; "), s.Verdict)
	}
}

func percent(share *float64) string {
	if share == nil {
		return "—"
	}
	return fmt.Sprintf("%.2f %%", *share*100)
}

func signedMS(v *float64) string {
	if v == nil {
		return "—"
	}
	return fmt.Sprintf("%+.3f ms", *v)
}

// redraw draws the chart of a saved report again, beside it: bench -redraw
// bench/results/latest.json writes bench/results/latest.svg.
func redraw(jsonPath string) error {
	data, err := os.ReadFile(jsonPath)
	if err != nil {
		return err
	}
	var r report
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("%s: %w", jsonPath, err)
	}
	return r.chart(strings.TrimSuffix(jsonPath, filepath.Ext(jsonPath)) + ".svg")
}

// chart draws each scenario's latency percentiles and, when there was a
// sweep, its predicted and measured increases.
func (r *report) chart(path string) error {
	percentiles := plot.New()
	percentiles.Title.Text = fmt.Sprintf("Time per request by percentile (ab -c %d; the load scenario -c %d)", r.Concurrency, loadConcurrency)
	percentiles.X.Label.Text = "percentile"
	percentiles.Y.Label.Text = "ms (log scale)"
	percentiles.Y.Scale = plot.LogScale{}
	percentiles.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	percentiles.Legend.Top = true
	percentiles.Legend.Left = true
	percentiles.Add(plotter.NewGrid())
	highest := 0.0
	for i, s := range r.Scenarios {
		pts := make(plotter.XYs, 0, 101)
		for p := range 101 {
			if ms := s.Summary.percentile(p); ms > 0 {
				pts = append(pts, plotter.XY{X: float64(p), Y: ms})
				highest = max(highest, ms)
			}
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		// Seven colours, then the same colours dashed.
		line.Color = plotutil.Color(i)
		line.Dashes = plotutil.Dashes(i / 7)
		line.Width = vg.Points(1.5)
		percentiles.Add(line)
		percentiles.Legend.Add(s.Name, line)
	}
	percentiles.Y.Max = highest * 20 // room for the legend above the lines

	plots := [][]*plot.Plot{{percentiles}}
	if sweep := r.sweepPlot(); sweep != nil {
		plots = append(plots, []*plot.Plot{sweep})
	}
	img := vgsvg.New(vg.Points(720), vg.Points(420*float64(len(plots))))
	tiles := draw.Tiles{Rows: len(plots), Cols: 1, PadX: vg.Points(12), PadY: vg.Points(24),
		PadTop: vg.Points(12), PadBottom: vg.Points(12), PadLeft: vg.Points(12), PadRight: vg.Points(12)}
	canvases := plot.Align(plots, tiles, draw.New(img))
	for i, row := range plots {
		row[0].Draw(canvases[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := img.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (r *report) sweepPlot() *plot.Plot {
	var predicted, measured plotter.XYs
	for _, s := range r.Scenarios {
		if strings.HasPrefix(s.Name, "sweep ") && s.DeltaMS != nil && s.PredictedMS != nil {
			predicted = append(predicted, plotter.XY{X: s.DelaySeconds * 1000, Y: *s.PredictedMS})
			measured = append(measured, plotter.XY{X: s.DelaySeconds * 1000, Y: *s.DeltaMS})
		}
	}
	if len(predicted) == 0 {
		return nil
	}
	p := plot.New()
	p.Title.Text = "Latency sweep: increase in mean time per request"
	p.X.Label.Text = "injected delay per Redis round trip (ms)"
	p.Y.Label.Text = "increase over steady state (ms)"
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	if err := plotutil.AddLinePoints(p, "predicted (delay × counted round trips)", predicted, "measured (ab)", measured); err != nil {
		return nil
	}
	return p
}
