package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/breaker"
)

// chromiumPath finds Debian's chromium: $CHROMIUM, or chromium on $PATH. A
// missing browser fails the test: it is never skipped.
func chromiumPath(t *testing.T) string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found: this test drives the dashboard in a real browser. " +
		"Install Debian's chromium (apt-get install -y chromium, or bash .ci/chromium.sh), or set CHROMIUM to its path.")
	return ""
}

// outputDir is where the test writes its screenshots: $LEVEE_TEST_OUTPUT/dashboard
// when set (kept), a temporary folder otherwise.
func outputDir(t *testing.T) string {
	dir := t.TempDir()
	if base := os.Getenv("LEVEE_TEST_OUTPUT"); base != "" {
		dir = filepath.Join(base, "dashboard")
		require.NoError(t, os.MkdirAll(dir, 0o755))
	}
	return dir
}

// serve runs the demo's traffic and its server on loopback until the test
// ends, and returns the page's URL.
func serve(t *testing.T, d *demo) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: d.handler(), ReadHeaderTimeout: 5 * time.Second}
	srv.RegisterOnShutdown(d.dash.Close)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	ctx, cancel := context.WithCancel(context.Background())
	loaded := make(chan struct{})
	go func() { d.load(ctx); close(loaded) }()
	t.Cleanup(func() {
		cancel()
		<-loaded
		shutdown, done := context.WithTimeout(context.Background(), 10*time.Second)
		defer done()
		assert.NoError(t, srv.Shutdown(shutdown), "server shutdown")
		assert.ErrorIs(t, <-served, http.ErrServerClosed)
	})
	return "http://" + ln.Addr().String() + "/debug/levee/"
}

// browser starts a headless chromium with the flags that work on a machine
// without network, and returns its context; it ends with the test.
func browser(t *testing.T, dialogs *atomic.Int32) context.Context {
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1180, 560),
	)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })

	// Start the browser, with no timeout on this first call (it would
	// bound the browser's life), but a bound on how long the start takes.
	started := make(chan error, 1)
	go func() {
		// Any script that called alert() would be recorded here, and by
		// the dialog listener below: neither may see one.
		_, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
				Source: `window.__alerts = []; window.alert = (m) => window.__alerts.push(String(m));`,
			})
			return chromedp.Void{}, err
		})
		started <- err
	}()
	select {
	case err := <-started:
		require.NoError(t, err, "starting chromium")
	case <-time.After(60 * time.Second):
		t.Fatal("chromium did not start within 60s")
	}
	go func() {
		for _, err := range chromedp.Events(ctx, page.JavascriptDialogOpening) {
			if err != nil {
				return
			}
			dialogs.Add(1)
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	return ctx
}

// pageHelpers are defined in the page by the test: row(kind, name) finds a
// policy's row.
const pageHelpers = `window.row = (kind, name) => Array.from(document.querySelectorAll('#rows tr')).find((tr) => tr.dataset.kind === kind && tr.dataset.name === name);
window.rowsText = () => Array.from(document.querySelectorAll('#rows tr')).map((tr) => tr.dataset.kind + ' ' + JSON.stringify(tr.dataset.name) + ' ' + tr.dataset.state).join('; ');
true`

func js(v string) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestDashboard_InARealBrowser(t *testing.T) {
	out := outputDir(t)
	d := newDemo(basicAuth("the operator's password"))
	url := serve(t, d)
	var dialogs atomic.Int32
	ctx := browser(t, &dialogs)

	run := func(what string, timeout time.Duration, a chromedp.Action[chromedp.Void]) {
		t.Helper()
		c, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if err := chromedp.Do(c, a); err != nil {
			t.Fatalf("%s: %v (page rows: %s)", what, err, rows(ctx))
		}
	}
	eval := func(expr string, res any) {
		t.Helper()
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		v, err := chromedp.Run(c, chromedp.Evaluate[json.RawMessage](expr))
		require.NoError(t, err, expr)
		require.NoError(t, json.Unmarshal(v, res), expr)
	}
	waitFor := func(what string, timeout time.Duration, expr string) {
		t.Helper()
		run("waiting for "+what, timeout+5*time.Second,
			chromedp.Func(func(c context.Context, tg *chromedp.Target) error {
				_, err := chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(50*time.Millisecond))(c, tg)
				return err
			}))
	}
	shot := func(name string) {
		t.Helper()
		c, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		png, err := chromedp.Run(c, chromedp.CaptureScreenshot())
		require.NoError(t, err, "screenshot")
		path := filepath.Join(out, name)
		require.NoError(t, os.WriteFile(path, png, 0o644))
		t.Logf("screenshot: %s (%d bytes)", path, len(png))
	}
	stateShown := func(name string) string {
		var s string
		eval(fmt.Sprintf(`(row("breaker", %s) || {dataset: {}}).dataset.state || ""`, js(name)), &s)
		return s
	}
	// agree waits until the page shows want for both breakers, and checks
	// the breakers themselves are in that state.
	agree := func(want breaker.State, timeout time.Duration) {
		t.Helper()
		for _, b := range []*breaker.Breaker{d.payments, d.hostile} {
			waitFor(fmt.Sprintf("breaker %q shown %s", b.Name(), want), timeout,
				fmt.Sprintf(`(row("breaker", %s) || {dataset: {}}).dataset.state === %s`, js(b.Name()), js(want.String())))
			assert.Equal(t, want, b.State(), "breaker %q: the page shows %s", b.Name(), want)
		}
	}

	run("loading the page", 20*time.Second, chromedp.Steps(
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.ID("rows")),
	))
	var ok bool
	eval(pageHelpers, &ok)
	agree(breaker.Closed, 15*time.Second)

	// The hostile name is text: the row's name cell reads it back as
	// typed, no element was made of it, and no alert ran.
	var text string
	eval(fmt.Sprintf(`row("breaker", %s).querySelector("td.c-name").textContent`, js(hostileName)), &text)
	assert.Equal(t, hostileName, text)
	var scripts int
	eval(`document.querySelectorAll("script").length`, &scripts)
	assert.Equal(t, 1, scripts, "the page has its one script element only")
	eval(`document.querySelectorAll("#rows script, #rows img, #rows iframe").length`, &scripts)
	assert.Zero(t, scripts, "a name became an element")

	// A live update arrives without reloading.
	var updates string
	eval(`document.body.dataset.updates`, &updates)
	waitFor("a live update", 10*time.Second, fmt.Sprintf(`Number(document.body.dataset.updates) >= %s + 2`, updates))

	// The filter asks the server: only the payments breaker (and its
	// retry, once it has retried) is left.
	var all int
	eval(`document.querySelectorAll("#rows tr").length`, &all)
	eval(`(() => { const q = document.getElementById("f-q"); q.value = "PAY"; q.dispatchEvent(new Event("input")); return true })()`, &ok)
	waitFor("the filtered rows", 10*time.Second,
		`!!row("breaker", "payments") && Array.from(document.querySelectorAll("#rows tr")).every((tr) => tr.dataset.name === "payments")`)
	var filtered int
	eval(`document.querySelectorAll("#rows tr").length`, &filtered)
	eval(`document.getElementById("range").textContent`, &text)
	assert.Equal(t, fmt.Sprintf("1–%d of %d", filtered, filtered), text)
	eval(`(() => { const q = document.getElementById("f-q"); q.value = ""; q.dispatchEvent(new Event("input")); return true })()`, &ok)
	waitFor("every row back", 10*time.Second, fmt.Sprintf(`document.querySelectorAll("#rows tr").length >= %d`, all))

	// An outage: the breakers open, and the page says so.
	d.down.Store(true)
	agree(breaker.Open, 15*time.Second)
	shot("outage.png")

	// The dependency comes back: after the open timeout a probe closes them.
	d.down.Store(false)
	agree(breaker.Closed, 30*time.Second)
	waitFor("the timeline's open segment", 5*time.Second,
		`!!row("breaker", "payments").querySelector(".timeline .seg-open")`)
	shot("recovered.png")

	// A control without authorization is refused, and changes nothing.
	eval(`row("breaker", "payments").querySelector('button[data-action="force_open"]').click(), true`, &ok)
	waitFor("the control's refusal", 10*time.Second, `document.getElementById("message").dataset.status === "403"`)
	eval(`document.getElementById("message").textContent`, &text)
	assert.Contains(t, text, "refused (403): not authorized")
	assert.Equal(t, breaker.Closed, d.payments.State(), "a refused control changed the breaker")
	assert.Equal(t, "closed", stateShown("payments"))
	shot("refused.png")

	var alerts []string
	eval(`window.__alerts`, &alerts)
	assert.Empty(t, alerts, "a script ran alert()")
	assert.Zero(t, dialogs.Load(), "a JavaScript dialog opened")
}

// rows describes the page's rows, for failure messages.
func rows(ctx context.Context) string {
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[string](`window.rowsText ? rowsText() : document.body.innerText.slice(0, 500)`))
	if err != nil {
		return "unreadable: " + err.Error()
	}
	return strings.TrimSpace(v)
}

var _ = errors.New
