package chaos

import (
	"bytes"
	"cmp"
	"context"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The report in the headless Chromium the shop's browser tests use, opened
// from disk as someone opens the file they were sent.

var screenshotPath = flag.String("screenshot", "", "TestReportScreenshot also writes the ramp's report as a PNG here (relative to the module's root), e.g. docs/run-report.png")

// pageLog is what the page asked of the network, and what went wrong.
type pageLog struct {
	mu       sync.Mutex
	requests []string
	failures []string
}

func (l *pageLog) take() (requests, failures []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	requests, failures = l.requests, l.failures
	l.requests, l.failures = nil, nil
	return requests, failures
}

// newReportBrowser starts Debian's Chromium headless with a fresh profile
// and no network: every name fails to resolve and every request goes to a
// proxy that nobody serves. The page's requests, failed loads and logged
// errors are recorded.
func newReportBrowser(t *testing.T) (context.Context, *pageLog) {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("the report's browser tests need Debian's Chromium: apt-get install chromium fonts-liberation (or: make deps)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND"),
		chromedp.ProxyServer("127.0.0.1:9"),
	)
	// The timeout bounds the whole browser: no test here needs a minute.
	ctx, cancelTimeout := context.WithTimeout(context.Background(), time.Minute)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc(); cancelTimeout() })
	log := &pageLog{}
	enable := chromedp.Func(func(ctx context.Context, target *chromedp.Target) error {
		if _, err := cdp.Call(ctx, target, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, target, cdplog.Enable, cdp.Empty{})
		return err
	})
	if err := chromedp.Do(ctx, enable); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	err = chromedp.Listen(ctx, func(ev any) {
		log.mu.Lock()
		defer log.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			log.requests = append(log.requests, ev.Request.URL)
		case *network.EventLoadingFailed:
			log.failures = append(log.failures, fmt.Sprintf("request %s failed: %s %s", ev.RequestID, ev.ErrorText, ev.BlockedReason))
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.EntryLevelError || ev.Entry.Level == cdplog.EntryLevelWarning {
				log.failures = append(log.failures, fmt.Sprintf("%s %s: %s %s", ev.Entry.Level, ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return ctx, log
}

func browserDo(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

func browserRead[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// openReport writes the report of events to a file and opens it, checking
// that the page loaded nothing but itself and that nothing failed.
func openReport(t *testing.T, ctx context.Context, log *pageLog, events []JournalEvent) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "report.html")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeReport(f, events); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	file := (&url.URL{Scheme: "file", Path: path}).String()
	log.take()
	browserDo(t, ctx, chromedp.EmulateViewport(reportWidth, 700), chromedp.Navigate(file), chromedp.WaitVisible(chromedp.CSS("#verdict")))
	requests, failures := log.take()
	for _, f := range failures {
		t.Error(f)
	}
	for _, r := range requests {
		if r != file {
			t.Errorf("the page requested %s", r)
		}
	}
}

// box is an element's size on the page, in CSS pixels.
type box struct {
	Class         string
	Width, Height float64
}

func TestReportInBrowser(t *testing.T) {
	ctx, log := newReportBrowser(t)
	for _, c := range reportCases {
		t.Run(c.name(), func(t *testing.T) {
			openReport(t, ctx, log, c.events(t))
			heading := browserRead(t, ctx, chromedp.Evaluate[string](`document.querySelector("h1, h2, h3, h4, h5, h6").textContent`))
			if heading != c.verdict {
				t.Errorf("first heading %q, want %q", heading, c.verdict)
			}
			boxes := browserRead(t, ctx, chromedp.Evaluate[[]box](
				`[...document.querySelectorAll("svg")].map(s => { const r = s.getBoundingClientRect(); return {Class: s.getAttribute("class"), Width: r.width, Height: r.height} })`))
			if w := browserRead(t, ctx, chromedp.Evaluate[float64](`document.documentElement.scrollWidth`)); w > reportWidth {
				t.Errorf("the page is %g px wide in a window of %d", w, reportWidth)
			}
			charts := 0
			for _, b := range boxes {
				if b.Class == "chart" {
					charts++
				}
				if b.Width < 100 || b.Height < 20 {
					t.Errorf("an svg.%s of %gx%g px", b.Class, b.Width, b.Height)
				}
			}
			if charts != c.charts {
				t.Errorf("%d charts drawn, want %d", charts, c.charts)
			}
			saveReportScreenshot(t, ctx, filepath.Join(artifactsDir(t), "report-"+c.name()+".png"))
		})
	}
}

// TestReportScreenshot renders a real run of the 3-step ramp
// (experiments/redis-latency-ramp.yaml on make fleet) as the docs show it; with
// -screenshot PATH it also writes the picture there:
//
//	go test ./chaos -run TestReportScreenshot -args -screenshot docs/run-report.png
func TestReportScreenshot(t *testing.T) {
	ctx, log := newReportBrowser(t)
	openReport(t, ctx, log, loadJournal(t, "testdata/run-real-ramp.jsonl"))
	path := filepath.Join(artifactsDir(t), "run-report.png")
	if *screenshotPath != "" {
		path = *screenshotPath
		if !filepath.IsAbs(path) {
			path = filepath.Join("..", path) // the tests run in chaos/
		}
	}
	shot := saveReportScreenshot(t, ctx, path)
	if *screenshotPath == "" {
		return
	}
	// The docs keep a small picture: the page has few colours besides the
	// anti-aliasing of its text and lines, so 256 of them lose little.
	small, err := paletted(shot)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, small, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d KB with 256 colours", path, len(small)/1024)
}

// paletted re-encodes a PNG with its 256 most frequent colours, each other
// colour replaced by the nearest of them.
func paletted(shot []byte) ([]byte, error) {
	src, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		return nil, err
	}
	b := src.Bounds()
	count := map[color.RGBA]int{}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			count[color.RGBAModel.Convert(src.At(x, y)).(color.RGBA)]++
		}
	}
	colours := slices.Collect(maps.Keys(count))
	slices.SortFunc(colours, func(a, b color.RGBA) int { // ties in a fixed order: the same page, the same file
		return cmp.Or(count[b]-count[a], cmp.Compare(a.R, b.R), cmp.Compare(a.G, b.G), cmp.Compare(a.B, b.B), cmp.Compare(a.A, b.A))
	})
	pal := color.Palette{}
	for _, c := range colours[:min(256, len(colours))] {
		pal = append(pal, c)
	}
	dst := image.NewPaletted(b, pal)
	nearest := map[color.RGBA]uint8{}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.RGBAModel.Convert(src.At(x, y)).(color.RGBA)
			i, ok := nearest[c]
			if !ok {
				i = uint8(pal.Index(c))
				nearest[c] = i
			}
			dst.SetColorIndex(x, y, i)
		}
	}
	var out bytes.Buffer
	err = (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&out, dst)
	return out.Bytes(), err
}

func artifactsDir(t *testing.T) string {
	dir := os.Getenv("ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join("..", "bin", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// reportWidth is the browser window's width: a laptop's.
const reportWidth = 1000

// saveReportScreenshot writes the whole page as a PNG, and returns it.
func saveReportScreenshot(t *testing.T, ctx context.Context, path string) []byte {
	t.Helper()
	shot := browserRead(t, ctx, chromedp.FullScreenshot(100))
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("the screenshot is no PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != reportWidth || b.Dy() < 500 {
		t.Errorf("the screenshot is %v", b)
	}
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d KB)", path, len(shot)/1024)
	return shot
}
