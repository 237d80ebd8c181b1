package chaos

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"
)

// The report's units, and its charts, drawn here as inline SVG so that the
// page needs no script and no library. Every text that comes from the
// journal is escaped before it goes in: the markup is trusted as
// template.HTML.

const (
	colourExperiment = "#d9480f"
	colourControl    = "#1971c2"
	colourBand       = "#b2f2bb"
	colourAbort      = "#c92a2a"
)

var verdictColour = map[string]string{"PASS": "#2b8a3e", "DEVIATED": "#c92a2a", "INCONCLUSIVE": "#e67700"}

// metricLabel names a metric as a reader says it.
func metricLabel(metric string) string {
	switch metric {
	case "search_ms":
		return "search time"
	case "degraded_share":
		return "degraded pages"
	case "failed_read_share":
		return "pages with a failed read"
	case "recommendations_share":
		return "pages with recommendations"
	case "":
		return absent
	}
	return metric
}

// metricUnit scales a metric's journal value to what the report shows: times in
// ms, shares (fractions in the journal) in per cent.
func metricUnit(metric string) (scale float64, suffix string) {
	switch {
	case metric == "search_ms":
		return 1, " ms"
	case strings.HasSuffix(metric, "_share"):
		return 100, " %"
	}
	return 1, ""
}

func formatValue(metric string, x *float64, signed bool) string {
	if !drawable(x) {
		return absent
	}
	scale, suffix := metricUnit(metric)
	format := "%.1f"
	if suffix == "" {
		format = "%.4g"
	}
	if signed {
		format = strings.Replace(format, "%", "%+", 1)
	}
	return fmt.Sprintf(format, *x*scale) + suffix
}

func formatInterval(metric string, lo, hi *float64) string {
	if !drawable(lo) || !drawable(hi) {
		return absent
	}
	_, suffix := metricUnit(metric)
	a, b := formatValue(metric, lo, true), formatValue(metric, hi, true)
	return "[" + strings.TrimSuffix(a, suffix) + ", " + strings.TrimSuffix(b, suffix) + "]" + suffix
}

func esc(s string) string { return template.HTMLEscapeString(s) }

// drawable reports whether x is a value that can be drawn.
func drawable(x *float64) bool { return x != nil && !math.IsNaN(*x) && !math.IsInf(*x, 0) }

// intervalBar draws a judgement: the tolerance band around the prediction
// (around zero for a dry run), and the measured difference with its interval
// on the same scale, so a reader sees at once whether it lies inside.
func intervalBar(j *JournalEvent, dryRun bool) template.HTML {
	if !drawable(j.Low) || !drawable(j.High) || !drawable(j.Tolerance) {
		return ""
	}
	center := 0.0
	if !dryRun && drawable(j.Predicted) {
		center = *j.Predicted
	}
	tol := math.Abs(*j.Tolerance)
	lo, hi := min(center-tol, *j.Low), max(center+tol, *j.High)
	pad := (hi - lo) * 0.12
	if pad == 0 {
		pad = 1
	}
	lo, hi = lo-pad, hi+pad
	const w, h, m = 180.0, 30.0, 6.0
	x := func(v float64) float64 { return m + (v-lo)/(hi-lo)*(w-2*m) }
	colour := verdictColour[j.Verdict]
	if colour == "" {
		colour = "#495057"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="bar" viewBox="0 0 %g %g" width="%g" height="%g" role="img">`, w, h, w, h)
	tolLow, tolHigh := center-tol, center+tol
	fmt.Fprintf(&b, `<title>tolerance %s to %s; measured %s, interval %s</title>`,
		esc(formatValue(j.Metric, &tolLow, true)), esc(formatValue(j.Metric, &tolHigh, true)),
		esc(formatValue(j.Metric, j.Difference, true)), esc(formatInterval(j.Metric, j.Low, j.High)))
	fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%g" y2="%g" stroke="#adb5bd"/>`, m, w-m, h/2, h/2)
	fmt.Fprintf(&b, `<rect x="%.1f" y="4" width="%.1f" height="%g" fill="%s"/>`, x(center-tol), x(center+tol)-x(center-tol), h-8, colourBand)
	fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="2" y2="%g" stroke="#2b8a3e" stroke-width="1.5"/>`, x(center), x(center), h-2)
	if center != 0 && 0 > lo && 0 < hi {
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="2" y2="%g" stroke="#868e96" stroke-dasharray="2 2"/>`, x(0), x(0), h-2)
	}
	l, r := x(*j.Low), x(*j.High)
	fmt.Fprintf(&b, `<g stroke="%s" stroke-width="2.5"><line x1="%.1f" x2="%.1f" y1="%g" y2="%g"/>`, colour, l, r, h/2, h/2)
	fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="9" y2="%g"/><line x1="%.1f" x2="%.1f" y1="9" y2="%g"/></g>`, l, l, h-9, r, r, h-9)
	if drawable(j.Difference) {
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%g" r="3.5" fill="%s"/>`, x(*j.Difference), h/2, colour)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// chartPoint is one group's value in one tick, in the report's units.
type chartPoint struct{ x, y float64 }

// seriesChart draws both groups' value over a step, tick by tick, against
// the seconds since the run started, with the step's start and end and its
// abort marked.
func seriesChart(st *reportStep, t0, end time.Time, bound *float64) template.HTML {
	scale, suffix := metricUnit(st.Metric)
	since := func(t time.Time) float64 { return t.Sub(t0).Seconds() }
	var exp, ctl []chartPoint
	var expPages, ctlPages int64
	x0, x1 := since(st.start), since(st.start)
	if !end.IsZero() {
		x1 = since(end)
	}
	yMin, yMax := 0.0, 0.0
	for _, s := range st.samples {
		x := since(s.At)
		x0, x1 = min(x0, x), max(x1, x)
		for _, g := range []struct {
			s     *GroupSample
			pts   *[]chartPoint
			pages *int64
		}{{s.Experiment, &exp, &expPages}, {s.Control, &ctl, &ctlPages}} {
			if g.s == nil || g.s.Searches == 0 || !drawable(&g.s.Value) {
				*g.pts = append(*g.pts, chartPoint{x, math.NaN()}) // a gap in the line
				continue
			}
			*g.pts = append(*g.pts, chartPoint{x, g.s.Value * scale})
			*g.pages += g.s.Searches
			yMin, yMax = min(yMin, g.s.Value*scale), max(yMax, g.s.Value*scale)
		}
	}
	if drawable(bound) {
		yMax = max(yMax, *bound*scale)
	}
	if x1 <= x0 {
		x1 = x0 + 1
	}
	yMax += (yMax - yMin) * 0.05
	if suffix == " %" && yMax > 90 {
		yMax = 100 // a share's whole range, not 120 %
	}
	yTicks := niceTicks(yMin, yMax, 5)
	yBottom, yTop := yTicks[0], yTicks[len(yTicks)-1]
	const w, h, left, right, top, bottom = 760.0, 260.0, 64.0, 16.0, 40.0, 44.0
	px := func(x float64) float64 { return left + (x-x0)/(x1-x0)*(w-left-right) }
	py := func(y float64) float64 { return h - bottom - (y-yBottom)/(yTop-yBottom)*(h-top-bottom) }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %g %g" role="img" aria-label="%s">`, w, h, esc(fmt.Sprintf("step %d: %s of both groups", st.N, metricLabel(st.Metric))))
	b.WriteString(`<g class="axis">`)
	for _, t := range yTicks {
		fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%.1f" y2="%.1f" stroke="#e9ecef"/><text x="%g" y="%.1f" text-anchor="end" dy="4">%s</text>`,
			left, w-right, py(t), py(t), left-6, py(t), tickLabel(t, yTicks))
	}
	xTicks := niceTicks(x0, x1, 8)
	for _, t := range xTicks {
		if t < x0 || t > x1 {
			continue
		}
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%g" y2="%g" stroke="#868e96"/><text x="%.1f" y="%g" text-anchor="middle">%s</text>`,
			px(t), px(t), h-bottom, h-bottom+4, px(t), h-bottom+17, tickLabel(t, xTicks))
	}
	fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%g" y2="%g" stroke="#868e96"/>`, left, w-right, h-bottom, h-bottom)
	fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="middle">seconds since the run started (s)</text>`, left+(w-left-right)/2, h-6)
	fmt.Fprintf(&b, `<text transform="translate(14 %g) rotate(-90)" text-anchor="middle">%s (%s)</text></g>`,
		top+(h-top-bottom)/2, esc(metricLabel(st.Metric)), esc(strings.TrimSpace(suffix)))

	// A marker's label sits inside the plot, beside its line, on the side
	// away from the plot's edge.
	marker := func(x float64, colour, label, dash string, y float64, anchor string) {
		dx := 4.0
		if anchor == "end" {
			dx = -4
		}
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%g" y2="%g" stroke="%s" stroke-width="1.5"%s/><text x="%.1f" y="%g" fill="%s" text-anchor="%s">%s</text>`,
			px(x), px(x), top-16, h-bottom, colour, dash, px(x)+dx, y, colour, anchor, esc(label))
	}
	marker(since(st.start), "#495057", fmt.Sprintf("step %d starts", st.N), ` stroke-dasharray="4 3"`, top-5, "start")
	if !st.end.IsZero() && st.abort == nil {
		marker(since(st.end), "#495057", fmt.Sprintf("step %d ends", st.N), ` stroke-dasharray="4 3"`, top-5, "end")
	}
	if st.abort != nil {
		marker(since(st.abort.At), colourAbort, "abort", "", top-5, "end")
		if drawable(bound) {
			fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="6 3"/><text x="%g" y="%.1f" fill="%s" text-anchor="end" dy="-4">bound %s</text>`,
				left, w-right, py(*bound*scale), py(*bound*scale), colourAbort, w-right, py(*bound*scale), colourAbort, esc(formatValue(st.Metric, bound, false)))
		}
	}
	drawSeries(&b, exp, colourExperiment, px, py)
	drawSeries(&b, ctl, colourControl, px, py)
	if len(st.samples) == 0 {
		fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="middle" class="empty">no samples in the journal</text>`, left+(w-left-right)/2, top+(h-top-bottom)/2)
	}
	fmt.Fprintf(&b, `<g class="legend"><line x1="%g" x2="%g" y1="14" y2="14" stroke="%s" stroke-width="2.5"/><text x="%g" y="18">experiment (%d pages)</text>`,
		w-right-330, w-right-310, colourExperiment, w-right-305, expPages)
	fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="14" y2="14" stroke="%s" stroke-width="2.5"/><text x="%g" y="18">control (%d pages)</text></g>`,
		w-right-150, w-right-130, colourControl, w-right-125, ctlPages)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// drawSeries draws one group's line, broken where a tick had no page of it, and
// its points while they are few enough to tell apart.
func drawSeries(b *strings.Builder, pts []chartPoint, colour string, px, py func(float64) float64) {
	var d strings.Builder
	gap := true
	for _, p := range pts {
		if math.IsNaN(p.y) {
			gap = true
			continue
		}
		cmd := "L"
		if gap {
			cmd = "M"
		}
		fmt.Fprintf(&d, "%s%.1f %.1f ", cmd, px(p.x), py(p.y))
		gap = false
	}
	if d.Len() > 0 {
		fmt.Fprintf(b, `<path d="%s" fill="none" stroke="%s" stroke-width="2" stroke-linejoin="round"/>`, strings.TrimSpace(d.String()), colour)
	}
	if len(pts) > 150 {
		return
	}
	for _, p := range pts {
		if !math.IsNaN(p.y) {
			fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s"/>`, px(p.x), py(p.y), colour)
		}
	}
}

// niceTicks returns about n round values from lo to hi: the first at or
// below lo, the last at or above hi.
func niceTicks(lo, hi float64, n int) []float64 {
	if !(hi > lo) {
		hi = lo + 1
	}
	step := math.Pow(10, math.Floor(math.Log10((hi-lo)/float64(n))))
	for _, k := range []float64{1, 2, 5, 10} {
		if (hi-lo)/(step*k) <= float64(n) {
			step *= k
			break
		}
	}
	var ticks []float64
	for i := math.Floor(lo / step); ; i++ {
		ticks = append(ticks, i*step)
		if i*step >= hi-step*1e-9 || len(ticks) > 2*n+2 {
			return ticks
		}
	}
}

// tickLabel writes a tick with as many decimals as its step needs.
func tickLabel(t float64, ticks []float64) string {
	decimals := 0
	if len(ticks) > 1 {
		decimals = max(0, int(-math.Floor(math.Log10(ticks[1]-ticks[0])+1e-9)))
	}
	return strconv.FormatFloat(t, 'f', decimals, 64)
}
