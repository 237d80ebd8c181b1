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
	if !r.hasPercentiles() {
		chart = "none (no ab run)"
	} else if err := r.chart(chart); err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	r.markdown(w)
	fmt.Fprintf(w, "\nFigures: %s (and %s); chart: %s\n", filepath.Join(dir, "latest.json"), stamped, chart)
	r.verdicts(w)
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
			if len(s.Findings) > 0 { // a baseline's own figures, such as a floor's
				fmt.Fprintf(w, "- **%s**: %s\n", s.Name, strings.Join(s.Findings, "; "))
			}
			continue
		}
		fmt.Fprintf(w, "- **%s** (%s): %s — %s\n", s.Name, s.Hypothesis, strings.Join(s.Findings, "; "), s.Verdict)
	}
	writeCatalogue(w, r.Catalogue)
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
// hasPercentiles reports whether a scenario has ab's percentiles to chart:
// BENCH_ONLY=instructions runs none.
func (r *report) hasPercentiles() bool {
	for _, s := range r.Scenarios {
		if s.Summary.percentile(50) > 0 {
			return true
		}
	}
	return false
}

func (r *report) chart(path string) error {
	percentiles := plot.New()
	percentiles.Title.Text = fmt.Sprintf("Time per request by percentile (ab -c %d; the load scenario -c %d)", r.Concurrency, loadConcurrency)
	percentiles.X.Label.Text = "percentile"
	percentiles.Y.Label.Text = "ms (log scale)"
	percentiles.Y.Scale = plot.LogScale{}
	percentiles.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	percentilesLegend := plot.NewLegend()
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
		percentilesLegend.Add(s.Name, line)
	}
	percentiles.Y.Max = highest * 1.5

	plots := []*plot.Plot{percentiles}
	legends := []plot.Legend{percentilesLegend}
	if sweep, legend := r.sweepPlot(); sweep != nil {
		plots, legends = append(plots, sweep), append(legends, legend)
	}
	// Each plot on the left, its legend to the right of it, outside the
	// plotting area, where it hides no line.
	const legendWidth = 230
	img := vgsvg.New(vg.Points(720+legendWidth), vg.Points(420*float64(len(plots))))
	tiles := draw.Tiles{Rows: len(plots), Cols: 1, PadX: vg.Points(12), PadY: vg.Points(24),
		PadTop: vg.Points(12), PadBottom: vg.Points(12), PadLeft: vg.Points(12), PadRight: vg.Points(12)}
	dc := draw.New(img)
	for i, p := range plots {
		tile := tiles.At(dc, 0, i)
		p.Draw(draw.Crop(tile, 0, -vg.Points(legendWidth), 0, 0))
		legends[i].Top, legends[i].Left = true, true
		legends[i].Draw(draw.Crop(tile, tile.Max.X-tile.Min.X-vg.Points(legendWidth-12), 0, 0, -vg.Points(30)))
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

// sweepPlot shows, per delay, how far the measured increase strayed from the
// prediction, with the tolerance band, and how much of that was the
// injection's error and how much the system's residual, in the service and
// in the floor.
func (r *report) sweepPlot() (*plot.Plot, plot.Legend) {
	var measured, injected, residual, floorSleep plotter.XYs
	for _, s := range r.Scenarios {
		if !strings.HasPrefix(s.Name, "sweep ") || s.DeltaMS == nil || s.PredictedMS == nil {
			continue
		}
		x, pct := s.DelaySeconds*1000, func(ms float64) float64 { return ms / *s.PredictedMS * 100 }
		measured = append(measured, plotter.XY{X: x, Y: pct(*s.DeltaMS - *s.PredictedMS)})
		if in := s.Injection; in != nil {
			injected = append(injected, plotter.XY{X: x, Y: in.ErrorPct})
			residual = append(residual, plotter.XY{X: x, Y: pct(in.ResidualMS)})
			floorSleep = append(floorSleep, plotter.XY{X: x, Y: pct(in.FloorSleepResMS)})
		}
	}
	legend := plot.NewLegend()
	if len(measured) == 0 {
		return nil, legend
	}
	p := plot.New()
	p.Title.Text = "Latency sweep: deviation from the prediction"
	p.X.Label.Text = "injected delay per Redis round trip (ms)"
	p.Y.Label.Text = "% of the predicted increase"
	p.Add(plotter.NewGrid())
	lo, hi := measured[0].X, measured[len(measured)-1].X
	// The band and every point in view, with a margin.
	p.Y.Min, p.Y.Max = -latencyTolerance*100*1.2, latencyTolerance*100*1.2
	for _, xys := range []plotter.XYs{measured, injected, residual, floorSleep} {
		for _, xy := range xys {
			p.Y.Min, p.Y.Max = min(p.Y.Min, xy.Y*1.1), max(p.Y.Max, xy.Y*1.1)
		}
	}
	for _, y := range []float64{-latencyTolerance * 100, latencyTolerance * 100} {
		band, _ := plotter.NewLine(plotter.XYs{{X: lo, Y: y}, {X: hi, Y: y}})
		band.Color = plotutil.Color(6)
		band.Dashes = []vg.Length{vg.Points(4), vg.Points(4)}
		p.Add(band)
		if y > 0 {
			legend.Add(fmt.Sprintf("tolerance ±%.0f %%", latencyTolerance*100), band)
		}
	}
	for i, series := range []struct {
		name string
		xys  plotter.XYs
	}{
		{"measured − predicted (ab)", measured},
		{"injected − requested (hook)", injected},
		{"residual: measured − injected", residual},
		{"floor's residual, same delay slept", floorSleep},
	} {
		if len(series.xys) == 0 {
			continue
		}
		line, points, err := plotter.NewLinePoints(series.xys)
		if err != nil {
			return nil, legend
		}
		line.Color, points.Color = plotutil.Color(i), plotutil.Color(i)
		points.Shape = plotutil.Shape(i)
		p.Add(line, points)
		legend.Add(series.name, line, points)
	}
	return p, legend
}

// verdicts ends the report with its tally and each deviated row's failing
// findings: the last lines are what a CI log's tail keeps.
func (r *report) verdicts(w io.Writer) {
	tally := map[string]int{}
	var order []string
	for _, s := range r.Scenarios {
		if s.Verdict == "" {
			continue
		}
		if tally[s.Verdict] == 0 {
			order = append(order, s.Verdict)
		}
		tally[s.Verdict]++
	}
	var parts []string
	for _, v := range order {
		parts = append(parts, fmt.Sprintf("%d %s", tally[v], v))
	}
	fmt.Fprintf(w, "Verdicts: %s\n", strings.Join(parts, ", "))
	for _, s := range r.Scenarios {
		if s.Verdict != verdictDeviated {
			continue // a row reported, not judged, keeps the findings it was compared on
		}
		for _, d := range s.Deviations {
			fmt.Fprintf(w, "DEVIATED: %s: %s\n", s.Name, d)
		}
	}
}
