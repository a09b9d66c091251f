package dashboard

import (
	"bytes"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"html/template"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

var page = template.Must(template.ParseFS(static, "static/index.html"))

// Control actions, the action field of a control request.
const (
	actionForceOpen = "force_open"
	actionReset     = "reset"
)

// csrfHeader carries the page's CSRF token on control requests. A
// cross-site form cannot set it, and a cross-site script cannot read the
// token.
const csrfHeader = "X-Levee-Csrf"

// securityHeaders are set on every response: nothing but the dashboard's own
// script and style runs or loads, no inline script, no framing.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

// ServeHTTP serves the page and its endpoints, relative to where the
// dashboard is mounted (a path ending with a slash, such as /debug/levee/):
//
//	GET  .../                 the page
//	GET  .../static/app.js    its script and style (embedded)
//	GET  .../api/snapshot     one Snapshot as JSON
//	GET  .../api/events       a stream of Snapshots (text/event-stream)
//	POST .../api/control      an operator control (see WithControls)
//
// The snapshot and event endpoints take the query parameters q (part of a
// name), kind (breaker, bulkhead, rate_limit, throttle, retry, hedge),
// state (attention, closed, open, half-open, full, throttling), sort
// (attention, the default, or name), offset and limit (default 50, at most
// 500). Everything served is read-only but the control endpoint; put the
// whole handler behind your application's own authentication.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header())
	path := r.URL.Path
	switch {
	case strings.HasSuffix(path, "/api/control"):
		d.serveControl(w, r)
		return
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		w.Header().Set("Allow", "GET, HEAD")
		httpError(w, http.StatusMethodNotAllowed, "method not allowed")
	case strings.HasSuffix(path, "/api/snapshot"):
		d.serveSnapshot(w, r)
	case strings.HasSuffix(path, "/api/events"):
		if r.Method == http.MethodHead {
			w.Header().Set("Content-Type", "text/event-stream")
			return // a stream has no end for HEAD to wait for
		}
		d.serveEvents(w, r)
	case strings.HasSuffix(path, "/static/app.js"):
		serveStatic(w, "static/app.js", "text/javascript; charset=utf-8")
	case strings.HasSuffix(path, "/static/app.css"):
		serveStatic(w, "static/app.css", "text/css; charset=utf-8")
	case path == "" || strings.HasSuffix(path, "/"):
		d.servePage(w)
	default:
		httpError(w, http.StatusNotFound, "not found")
	}
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func serveStatic(w http.ResponseWriter, name, contentType string) {
	b, _ := static.ReadFile(name)
	w.Header().Set("Content-Type", contentType)
	_, _ = w.Write(b)
}

func (d *Dashboard) servePage(w http.ResponseWriter) {
	var buf bytes.Buffer
	err := page.Execute(&buf, struct {
		Title    string
		Token    string
		Controls bool
	}{d.title, d.token, d.authorize != nil})
	if err != nil {
		httpError(w, http.StatusInternalServerError, "page template: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

func (d *Dashboard) serveSnapshot(w http.ResponseWriter, r *http.Request) {
	q, problem := parseQuery(r.URL.Query())
	if problem != "" {
		httpError(w, http.StatusBadRequest, problem)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(d.snapshot(q))
}

// minPush is the least time between two events of one stream, so that a
// flapping breaker does not flood the page.
const minPush = 200 * time.Millisecond

// serveEvents streams snapshots: one at once, then one every interval and
// one soon after each breaker transition, until the client goes, the
// dashboard is closed, or the server's context ends. The stream runs on the
// request's own goroutine; nothing is left behind when it ends.
func (d *Dashboard) serveEvents(w http.ResponseWriter, r *http.Request) {
	q, problem := parseQuery(r.URL.Query())
	if problem != "" {
		httpError(w, http.StatusBadRequest, problem)
		return
	}
	select {
	case <-d.closed:
		httpError(w, http.StatusServiceUnavailable, "dashboard closed")
		return
	default:
	}
	if d.clients.Add(1) > d.maxClients {
		d.clients.Add(-1)
		w.Header().Set("Retry-After", "5")
		httpError(w, http.StatusServiceUnavailable, "too many dashboard clients (WithMaxClients)")
		return
	}
	defer d.clients.Add(-1)
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	tick := time.NewTicker(d.interval)
	defer tick.Stop()
	var hold *time.Timer
	defer func() {
		if hold != nil {
			hold.Stop()
		}
	}()
	ctx := r.Context()
	var buf bytes.Buffer
	for {
		changed := d.changes()
		buf.Reset()
		buf.WriteString("retry: 2000\ndata: ")
		_ = json.NewEncoder(&buf).Encode(d.snapshot(q)) // ends with a newline
		buf.WriteString("\n")
		// A write deadline per event: a client that stops reading ends
		// its stream instead of holding the goroutine.
		_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := w.Write(buf.Bytes()); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		pushed := time.Now()
		select {
		case <-ctx.Done():
			return
		case <-d.closed:
			return
		case <-tick.C:
			continue
		case <-changed:
		}
		// A change: push it, but not sooner than minPush after the last.
		if wait := minPush - time.Since(pushed); wait > 0 {
			if hold == nil {
				hold = time.NewTimer(wait)
			} else {
				hold.Reset(wait)
			}
			select {
			case <-ctx.Done():
				return
			case <-d.closed:
				return
			case <-hold.C:
			}
		}
	}
}

// controlRequest is the JSON body of a control request.
type controlRequest struct {
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Action string `json:"action"`
}

var crossOrigin = http.NewCrossOriginProtection()

// serveControl acts on a breaker. The checks, in order: POST only (405),
// controls on (403), same-origin (403, by Sec-Fetch-Site or Origin), the
// page's CSRF token (403), the application's authorization (403), a valid
// request (400) naming a registered breaker (404).
func (d *Dashboard) serveControl(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		httpError(w, http.StatusMethodNotAllowed, "controls take POST only")
		return
	}
	if d.authorize == nil {
		httpError(w, http.StatusForbidden, "controls are off (dashboard.WithControls)")
		return
	}
	if err := crossOrigin.Check(r); err != nil {
		httpError(w, http.StatusForbidden, "cross-origin request refused")
		return
	}
	if token := r.Header.Get(csrfHeader); subtle.ConstantTimeCompare([]byte(token), []byte(d.token)) != 1 {
		httpError(w, http.StatusForbidden, "missing or wrong CSRF token")
		return
	}
	if !d.authorize(r) {
		httpError(w, http.StatusForbidden, "not authorized")
		return
	}
	var req controlRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, 4096))
	if err != nil || json.Unmarshal(body, &req) != nil {
		httpError(w, http.StatusBadRequest, "body: a JSON object {kind, name, action}")
		return
	}
	if req.Kind != kindNames[kindBreaker] || (req.Action != actionForceOpen && req.Action != actionReset) {
		httpError(w, http.StatusBadRequest, "only breakers have controls: kind breaker, action force_open or reset")
		return
	}
	d.mu.RLock()
	e := d.entries[entryKey{kindBreaker, req.Name}]
	d.mu.RUnlock()
	if e == nil {
		httpError(w, http.StatusNotFound, "no breaker named "+strconv.Quote(req.Name))
		return
	}
	state, ok := e.control(r, req.Action)
	if !ok {
		httpError(w, http.StatusNotFound, "no breaker named "+strconv.Quote(req.Name))
		return
	}
	d.notify()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"state": state})
}
