package dashboard_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/dashboard"
	"github.com/levee-go/levee/telemetry"
)

const hostile = `<script>alert(1)</script>`

func TestPage_IsServedWithAStrictPolicyAndEscapedValues(t *testing.T) {
	d := dashboard.New(dashboard.WithTitle(hostile))
	d.NewBreaker(hostile)
	for _, target := range []string{"", "static/app.js", "static/app.css", "api/snapshot"} {
		rec := get(d, target)
		require.Equal(t, http.StatusOK, rec.Code, target)
		h := rec.Header()
		csp := h.Get("Content-Security-Policy")
		assert.Contains(t, csp, "default-src 'none'", target)
		assert.Contains(t, csp, "script-src 'self'", target)
		assert.NotContains(t, csp, "unsafe-inline", target)
		assert.Equal(t, "nosniff", h.Get("X-Content-Type-Options"), target)
		assert.Equal(t, "DENY", h.Get("X-Frame-Options"), target)
		assert.NotContains(t, rec.Body.String(), hostile, target)
	}
	page := get(d, "").Body.String()
	assert.Contains(t, page, "&lt;script&gt;alert(1)&lt;/script&gt;", "the title is escaped by html/template")
	assert.NotContains(t, page, "<script>", "no inline script: only script elements with src")
	assert.Contains(t, page, `<script src="static/app.js" defer></script>`)
	assert.Equal(t, "text/javascript; charset=utf-8", get(d, "static/app.js").Header().Get("Content-Type"))
	// The JSON carries the name, escaped, and it decodes to the name.
	rec := get(d, "api/snapshot")
	assert.Contains(t, rec.Body.String(), `\u003cscript\u003ealert(1)\u003c/script\u003e`)
	var s dashboard.Snapshot
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &s))
	assert.Equal(t, hostile, s.Policies[0].Name)
	// The script writes values as text only.
	js := get(d, "static/app.js").Body.String()
	for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
		assert.NotContains(t, js, sink)
	}
}

func TestHandler_RefusesOtherMethodsAndUnknownPaths(t *testing.T) {
	d := dashboard.New()
	for _, target := range []string{"", "api/snapshot", "api/events"} {
		rec := httptest.NewRecorder()
		d.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/debug/levee/"+target, nil))
		assert.Equal(t, http.StatusMethodNotAllowed, rec.Code, target)
	}
	assert.Equal(t, http.StatusNotFound, get(d, "nope").Code)
	rec := httptest.NewRecorder()
	d.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/debug/levee/api/events", nil))
	assert.Equal(t, http.StatusOK, rec.Code, "HEAD of the stream answers at once")
	assert.Equal(t, "text/event-stream", rec.Header().Get("Content-Type"))
}

func TestEvents_StreamASnapshotAtOnceAndAnotherWhenABreakerChanges(t *testing.T) {
	// A long interval: the second event can only be the transition's push.
	d := dashboard.New(dashboard.WithInterval(time.Hour))
	b := d.NewBreaker("payments")
	srv := httptest.NewServer(d)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/debug/levee/api/events?kind=breaker", nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	events := readEvents(t, resp)

	first := <-events
	assert.Equal(t, "closed", find(t, first, "breaker", "payments").State)
	trip(t, b)
	select {
	case second := <-events:
		assert.Equal(t, "open", find(t, second, "breaker", "payments").State)
	case <-ctx.Done():
		t.Fatal("no event within 10s of the breaker opening")
	}
}

// readEvents decodes the stream's events on a goroutine that ends with the
// stream.
func readEvents(t *testing.T, resp *http.Response) <-chan dashboard.Snapshot {
	events := make(chan dashboard.Snapshot, 16)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var s dashboard.Snapshot
			if err := json.Unmarshal([]byte(data), &s); err != nil {
				t.Errorf("event: %v: %s", err, data)
				return
			}
			events <- s
		}
	}()
	return events
}

func TestEvents_RefusesClientsBeyondTheLimitAndEndsOnClose(t *testing.T) {
	d := dashboard.New(dashboard.WithMaxClients(1))
	srv := httptest.NewServer(d)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/events")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	events := readEvents(t, resp)
	<-events

	second, err := http.Get(srv.URL + "/api/events")
	require.NoError(t, err)
	second.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, second.StatusCode)

	d.Close()
	select {
	case _, open := <-events:
		for open {
			_, open = <-events
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end within 10s of Close")
	}
	after, err := http.Get(srv.URL + "/api/events")
	require.NoError(t, err)
	after.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, after.StatusCode)
}

// control POSTs a control as the page does, with edit changing the request.
func control(d *dashboard.Dashboard, name, action string, edit func(*http.Request)) *httptest.ResponseRecorder {
	body, _ := json.Marshal(map[string]string{"kind": "breaker", "name": name, "action": action})
	r := httptest.NewRequest(http.MethodPost, "http://example.com/debug/levee/api/control", strings.NewReader(string(body)))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	r.Header.Set("Origin", "http://example.com")
	r.Header.Set("X-Levee-Csrf", pageToken(d))
	r.Header.Set("Authorization", "Bearer operator")
	if edit != nil {
		edit(r)
	}
	rec := httptest.NewRecorder()
	d.ServeHTTP(rec, r)
	return rec
}

// pageToken reads the CSRF token from the page.
func pageToken(d *dashboard.Dashboard) string {
	page := get(d, "").Body.String()
	_, rest, _ := strings.Cut(page, `<meta name="levee-csrf" content="`)
	token, _, _ := strings.Cut(rest, `"`)
	return token
}

func operator(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer operator" }

func TestControl_ForceOpenAndResetReachTheBreakerAndItsTelemetry(t *testing.T) {
	h := newHarness(t)
	d := dashboard.New(dashboard.WithControls(operator))
	b := d.NewBreaker("payments", breaker.WithTracerProvider(h.TracerProvider), breaker.WithMeterProvider(h.MeterProvider))

	rec := control(d, "payments", "force_open", nil)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.JSONEq(t, `{"state":"open"}`, rec.Body.String())
	assert.Equal(t, breaker.Open, b.State())
	span := h.Span(telemetry.SpanBreakerTransition)
	assert.Contains(t, span.Attributes(), telemetry.KeyBreakerForced.Bool(true))

	rec = control(d, "payments", "reset", nil)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, breaker.Closed, b.State())
	h.AssertInt64(telemetry.MetricBreakerTransitions, 2)
	assert.True(t, find(t, snapshot(t, d, ""), "breaker", "payments").Controllable)
}

func TestControl_RefusesWhatItMust(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  []dashboard.Option
		edit  func(*http.Request)
		code  int
		error string
	}{
		{"controls off", nil, nil, 403, "controls are off"},
		{"GET", []dashboard.Option{dashboard.WithControls(operator)}, func(r *http.Request) { r.Method = http.MethodGet }, 405, "POST only"},
		{"cross-site fetch", []dashboard.Option{dashboard.WithControls(operator)}, func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "cross-site") }, 403, "cross-origin"},
		{"same-site, other origin", []dashboard.Option{dashboard.WithControls(operator)}, func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "same-site") }, 403, "cross-origin"},
		{"foreign Origin, no Sec-Fetch-Site", []dashboard.Option{dashboard.WithControls(operator)}, func(r *http.Request) {
			r.Header.Del("Sec-Fetch-Site")
			r.Header.Set("Origin", "http://evil.example")
		}, 403, "cross-origin"},
		{"no CSRF token", []dashboard.Option{dashboard.WithControls(operator)}, func(r *http.Request) { r.Header.Del("X-Levee-Csrf") }, 403, "CSRF"},
		{"wrong CSRF token", []dashboard.Option{dashboard.WithControls(operator)}, func(r *http.Request) { r.Header.Set("X-Levee-Csrf", "0123") }, 403, "CSRF"},
		{"not authorized", []dashboard.Option{dashboard.WithControls(operator)}, func(r *http.Request) { r.Header.Del("Authorization") }, 403, "not authorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := dashboard.New(tc.opts...)
			b := d.NewBreaker("payments")
			rec := control(d, "payments", "force_open", tc.edit)
			assert.Equal(t, tc.code, rec.Code)
			assert.Contains(t, rec.Body.String(), tc.error)
			assert.Equal(t, breaker.Closed, b.State(), "a refused control changed the breaker")
			if tc.code == 405 {
				assert.Equal(t, "POST", rec.Header().Get("Allow"))
			}
			controls := len(tc.opts) > 0
			assert.Equal(t, controls, find(t, snapshot(t, d, ""), "breaker", "payments").Controllable)
			assert.Contains(t, get(d, "").Body.String(), map[bool]string{true: `content="on"`, false: `content="off"`}[controls])
		})
	}
}

func TestControl_RefusesBadRequestsAndUnknownBreakers(t *testing.T) {
	d := dashboard.New(dashboard.WithControls(operator))
	d.NewBreaker("payments")
	assert.Equal(t, http.StatusNotFound, control(d, "nope", "reset", nil).Code)
	assert.Equal(t, http.StatusBadRequest, control(d, "payments", "explode", nil).Code)
	rec := control(d, "payments", "reset", func(r *http.Request) {
		r.Body = http.NoBody
	})
	assert.Equal(t, http.StatusBadRequest, rec.Code)
}
