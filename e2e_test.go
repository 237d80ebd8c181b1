package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// newBrowser starts Debian's Chromium headless with a fresh profile and
// nothing that reaches beyond loopback, and returns a chromedp context.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("the browser tests need Debian's Chromium: apt-get install chromium (or: make deps)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
	)
	// The timeout bounds the whole browser: no test here needs a minute.
	ctx, cancelTimeout := context.WithTimeout(context.Background(), time.Minute)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc(); cancelTimeout() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// browse runs steps in the browser and fails the test on the first error.
func browse(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// read runs one action in the browser and returns its value.
func read[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// sessionCookieIn returns the browser's sessionID cookie for url.
func sessionCookieIn(t *testing.T, ctx context.Context, url string) string {
	t.Helper()
	cookies := read(t, ctx, func(ctx context.Context, target *chromedp.Target) ([]*network.Cookie, error) {
		res, err := cdp.Call(ctx, target, network.GetCookies, network.GetCookiesParams{URLs: []string{url}})
		return res.Cookies, err
	})
	for _, c := range cookies {
		if c.Name == sessionCookie {
			return c.Value
		}
	}
	return ""
}

// searchThroughForm types query into the home page's form and submits it.
func searchThroughForm(t *testing.T, ctx context.Context, base, query string) {
	t.Helper()
	browse(t, ctx,
		chromedp.Navigate(base+"/"),
		chromedp.SendKeys(chromedp.CSS("#query"), query),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#session")),
	)
}

// resultsPage is what a person sees on /search.
type resultsPage struct {
	heading         string
	interests       []string
	recommendations int
}

func readResults(t *testing.T, ctx context.Context) resultsPage {
	t.Helper()
	browse(t, ctx, chromedp.WaitVisible(chromedp.CSS("#session")))
	return resultsPage{
		heading:         read(t, ctx, chromedp.Text(chromedp.CSS("h1"))),
		interests:       read(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#interests li")].map(li => li.textContent)`)),
		recommendations: read(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll("#recommendations a").length`)),
	}
}

func TestBrowserShopsAndResets(t *testing.T) {
	app := startApp(t, nil)
	ctx := newBrowser(t)

	browse(t, ctx, chromedp.Navigate(app.url+"/"), chromedp.WaitVisible(chromedp.CSS("form")))
	first := sessionCookieIn(t, ctx, app.url)
	if first == "" {
		t.Fatal("the home page set no sessionID cookie")
	}

	searchThroughForm(t, ctx, app.url, "apple")
	page := readResults(t, ctx)
	if !strings.Contains(page.heading, "apple") || !slices.Equal(page.interests, []string{"apple"}) || page.recommendations != 1 {
		t.Errorf("after searching apple: %+v", page)
	}

	for _, q := range []string{"laptop", "phone", "tv"} {
		searchThroughForm(t, ctx, app.url, q)
	}
	page = readResults(t, ctx)
	if !slices.Equal(page.interests, []string{"laptop", "phone", "tv"}) || page.recommendations != 1 {
		t.Errorf("after four searches: %+v, want only the last three", page)
	}
	saveScreenshot(t, ctx, "results-page.png")

	browse(t, ctx, chromedp.Navigate(app.url+"/"), chromedp.Click(chromedp.CSS(`nav a[href="/search"]`)))
	page = readResults(t, ctx)
	if page.heading != "Recommendations" || !slices.Equal(page.interests, []string{"laptop", "phone", "tv"}) {
		t.Errorf("following Recommendations: %+v", page)
	}

	// From the results page, Reset leads home: the form shows once it is there.
	browse(t, ctx, chromedp.Click(chromedp.CSS(`nav a[href="/reset"]`)), chromedp.WaitVisible(chromedp.CSS("form")))
	if second := sessionCookieIn(t, ctx, app.url); second == "" || second == first {
		t.Errorf("after Reset the session is %q, want a new one (was %q)", second, first)
	}
	browse(t, ctx, chromedp.Click(chromedp.CSS(`nav a[href="/search"]`)))
	if page = readResults(t, ctx); len(page.interests) != 0 || page.recommendations != 0 {
		t.Errorf("after Reset: %+v, want no interests", page)
	}
}

// saveScreenshot keeps a picture of the page as a test artefact, in
// $ARTIFACTS_DIR or bin/artifacts.
func saveScreenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	browse(t, ctx, chromedp.EmulateViewport(900, 600))
	png := read(t, ctx, chromedp.FullScreenshot(100))
	dir := os.Getenv("ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join("bin", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}
