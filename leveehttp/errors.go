package leveehttp

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/levee-go/levee/breaker"
)

// ResponseError is how a Transport's policies see a response that counts as
// a failure (see Transport.IsFailure): the response, whole, carried as an
// error so that a breaker counts it and a fallback can replace it. The
// caller of RoundTrip gets the response itself with a nil error, not the
// ResponseError, unless a policy released it (see Release) and still
// returned it: a closed response is never handed over.
//
// A fallback.Func that receives a ResponseError may read its Response; if
// it returns a response of its own, the Transport closes the failing one.
// A retry that tries again releases it first (see Release).
type ResponseError struct {
	// Response is the failing response; its body is unread and open
	// until the error is released.
	Response *http.Response

	retryAfter time.Duration
	released   atomic.Bool
}

func newResponseError(resp *http.Response, now time.Time) *ResponseError {
	return &ResponseError{Response: resp, retryAfter: retryAfter(resp, now)}
}

// Error names the request and the status: "leveehttp: GET api.example.com:
// 503 Service Unavailable". It never includes the URL's path or query.
func (e *ResponseError) Error() string {
	var b strings.Builder
	b.WriteString("leveehttp: ")
	if req := e.Response.Request; req != nil && req.URL != nil {
		b.WriteString(req.Method)
		b.WriteString(" ")
		b.WriteString(req.URL.Host)
		b.WriteString(": ")
	}
	if e.Response.Status != "" {
		b.WriteString(e.Response.Status)
	} else {
		b.WriteString(strconv.Itoa(e.Response.StatusCode))
	}
	return b.String()
}

// ErrorType names the error for telemetry (error.type) by its status code,
// "503" say, as the OpenTelemetry HTTP semantic conventions do.
func (e *ResponseError) ErrorType() string { return strconv.Itoa(e.Response.StatusCode) }

// RetryAfter returns the delay the server asked for in the Retry-After
// header of a 429 or 503 response, given in seconds or as an HTTP date
// (taken relative to the response's Date header, or to when the response
// arrived when it has none). It returns 0 for other statuses and when the
// header is missing, malformed or in the past. breaker.WithRetryAfter lets
// this delay lengthen a breaker's open period.
func (e *ResponseError) RetryAfter() time.Duration { return e.retryAfter }

// Release closes the response's body, once; calling it again does nothing.
// retry.Policy calls it when it has decided to try again, before it waits,
// so that the failing response does not hold its connection through the
// delay. A Transport never hands a released response to its caller, and
// never closes it twice.
func (e *ResponseError) Release() {
	if e.released.CompareAndSwap(false, true) && e.Response != nil && e.Response.Body != nil {
		e.Response.Body.Close()
	}
}

// retryAfter parses the Retry-After header of a 429 or 503 response.
func retryAfter(resp *http.Response, now time.Time) time.Duration {
	if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
		return 0
	}
	value := strings.TrimSpace(resp.Header.Get("Retry-After"))
	if value == "" {
		return 0
	}
	if isDigits(value) {
		// delay-seconds (RFC 9110, 10.2.3): a value too large for any
		// integer is "very long", the longest delay a Duration holds, not
		// malformed.
		const maxSeconds = int64(1<<63-1) / int64(time.Second)
		seconds, err := strconv.ParseInt(value, 10, 64)
		if err != nil || seconds > maxSeconds {
			seconds = maxSeconds
		}
		return time.Duration(seconds) * time.Second
	}
	at, err := http.ParseTime(value)
	if err != nil {
		return 0
	}
	if date, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
		now = date
	}
	return max(at.Sub(now), 0)
}

// isDigits reports whether s is a non-empty run of ASCII digits.
func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// HandlerError is the error a Handler's breaker sees when the handler
// answers with a 5xx status: a failure, unless the breaker's
// breaker.WithIsFailure says otherwise. Match it with errors.As to exempt
// some statuses:
//
//	breaker.WithIsFailure(func(err error) bool {
//		var he *leveehttp.HandlerError
//		return !errors.As(err, &he) || he.StatusCode != http.StatusNotImplemented
//	})
type HandlerError struct {
	// StatusCode is the status the handler wrote.
	StatusCode int
}

// Error names the status: "leveehttp: handler answered 500 Internal Server
// Error".
func (e *HandlerError) Error() string {
	return "leveehttp: handler answered " + strconv.Itoa(e.StatusCode) + " " + http.StatusText(e.StatusCode)
}

// ErrorType names the error for telemetry (error.type) by its status code,
// "500" say.
func (e *HandlerError) ErrorType() string { return strconv.Itoa(e.StatusCode) }

// ErrBodyNotReplayable is returned when a policy runs a request a second time
// (a retry, a hedge) and its body cannot be sent again: the request has a
// body but no GetBody. http.NewRequest sets GetBody for *bytes.Buffer,
// *bytes.Reader and *strings.Reader bodies; set it yourself for others.
//
// Nothing of the refused attempt is sent. The error is permanent for a
// retry (retry.IsPermanent), which returns it at once instead of trying
// again, and a breaker counts the attempt as neither success nor failure:
// it tells nothing about the server. Its error.type is
// "body_not_replayable".
var ErrBodyNotReplayable error = &bodyNotReplayableError{}

// bodyNotReplayableError is ErrBodyNotReplayable's type, for the methods
// that tell policies what it means.
type bodyNotReplayableError struct{ _ byte } // not zero-size: its one pointer is unique

func (*bodyNotReplayableError) Error() string {
	return "leveehttp: request body cannot be sent again: the request has no GetBody"
}

// Permanent tells a retry that trying again cannot help: no attempt of the
// request can send its body.
func (*bodyNotReplayableError) Permanent() bool { return true }

// ErrorType names the error for telemetry (error.type).
func (*bodyNotReplayableError) ErrorType() string { return "body_not_replayable" }

// errNotReplayed is what an attempt refused for want of GetBody returns: a
// breaker ignores it.
var errNotReplayed = breaker.Ignored(ErrBodyNotReplayable)

// errNoResponse is returned when the pipeline returned neither a response
// nor an error (a fallback that answered nil), which RoundTrip must not do.
var errNoResponse = errors.New("leveehttp: the policies returned no response and no error")

// errCallEnded is returned by an attempt started after its RoundTrip had
// returned (by a timeout that abandoned it, say): nothing is sent.
var errCallEnded = errors.New("leveehttp: the round trip already returned")
