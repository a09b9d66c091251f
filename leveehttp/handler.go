package leveehttp

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/levee-go/levee/breaker"
)

// Handler returns h guarded by the circuit breaker b, for the server side:
// while b is open, a request is answered at once with 503 Service
// Unavailable and a Retry-After header (the seconds until b lets a probe
// through, rounded up, at least 1), and h is not called. This sheds load
// from a handler that is failing, so that it and what it depends on can
// recover.
//
// What counts as a failure of h: a 5xx status written (a *HandlerError to
// b, which b's WithIsFailure may exempt), and a panic, which b records and
// lets propagate unchanged to net/http. A request whose context has ended
// by the time h returns (the client went away), and a panic with
// http.ErrAbortHandler (what httputil.ReverseProxy raises when the client
// disconnects), are neither: they say nothing about h, and as the half-open
// probe they free the probe slot without closing or opening b; the
// ErrAbortHandler panic still reaches net/http, which aborts the response.
// A request whose context has ended before h is called gets 503 with no
// Retry-After (the client is gone; the server's logs see why h did not run).
// Anything else is a success: a 2xx, 3xx or 4xx status, a handler that
// writes nothing (an implicit 200), or one that hijacks the connection.
//
// The ResponseWriter h receives records the status; it passes Flush and
// ReadFrom through and has an Unwrap method, so http.ResponseController
// reaches the original writer's other features. b must not be nil; Handler
// panics otherwise. The handler is safe for concurrent use if h is.
func Handler(h http.Handler, b *breaker.Breaker) http.Handler {
	if h == nil {
		panic("levee: leveehttp.Handler: handler must not be nil")
	}
	if b == nil {
		panic("levee: leveehttp.Handler: breaker must not be nil")
	}
	return &guardedHandler{h: h, b: b}
}

type guardedHandler struct {
	h http.Handler
	b *breaker.Breaker
}

func (g *guardedHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w}
	aborted, ran := false, false
	err := g.b.Call(r.Context(), func(ctx context.Context) (err error) {
		ran = true
		defer func() {
			switch v := recover(); v {
			case nil:
			case http.ErrAbortHandler:
				// Neutral for b; re-raised below, once b has counted it.
				aborted = true
				err = breaker.Ignored(errAborted)
			default:
				panic(v) // the handler's own panic, unchanged: b counts a failure
			}
		}()
		g.h.ServeHTTP(sw, r)
		if err := ctx.Err(); err != nil {
			return breaker.Ignored(err) // the client went away
		}
		if sw.status >= 500 {
			return &HandlerError{StatusCode: sw.status}
		}
		return nil
	})
	if aborted {
		panic(http.ErrAbortHandler)
	}
	if ran {
		return // h answered
	}
	// h was not called: b rejected the request, or its context had ended
	// (the client went away), which deserves 503 in the server's logs, not
	// the empty 200 writing nothing would give. Only b's rejection knows
	// when to come back.
	var rejected *breaker.OpenError
	if errors.As(err, &rejected) {
		w.Header().Set("Retry-After", retryAfterSeconds(rejected.RetryAfter()))
	}
	http.Error(w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
}

// errAborted stands for a handler that panicked with http.ErrAbortHandler,
// while the breaker counts it.
var errAborted = errors.New("leveehttp: handler aborted the response (http.ErrAbortHandler)")

// retryAfterSeconds is the Retry-After value for a rejection that advises
// waiting d: whole seconds, rounded up, at least 1. Any Duration fits.
func retryAfterSeconds(d time.Duration) string {
	seconds := int64(d / time.Second)
	if d%time.Second > 0 {
		seconds++
	}
	return strconv.FormatInt(max(seconds, 1), 10)
}

// statusWriter records the status a handler writes.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	// 1xx are informational (103 Early Hints): the final status follows.
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// Flush sends buffered data to the client, for handlers that stream.
func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// ReadFrom keeps io.Copy to the writer as fast as without the wrapper.
func (w *statusWriter) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return io.Copy(w.ResponseWriter, src)
}

// Unwrap returns the original writer, for http.ResponseController.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
