package leveehttp

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/levee-go/levee/resilience"
)

// DefaultIsFailure is the Transport's default failure predicate: a 5xx
// (the server failed) or a 429 (the server is shedding load) counts as a
// failure; every other status, 4xx included, proves the server is up.
func DefaultIsFailure(resp *http.Response) bool {
	return resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests
}

// Transport is an http.RoundTripper that sends each request through a levee
// pipeline (a breaker, a timeout, a fallback...) around the next
// RoundTripper. Build one with NewTransport and use it as an http.Client's
// Transport.
//
// The policies see a call fail when the next RoundTripper returns an error
// or a response that IsFailure counts (5xx and 429 by default); such a
// response reaches them as a *ResponseError, and reaches the caller whole,
// as the response with a nil error, so the client sees exactly what the
// server said. A call the policies reject returns their error (an error
// matching breaker.ErrOpen, say); its request is not sent, and its body is
// closed unread, as RoundTrip's contract asks.
//
// Contexts: the pipeline runs under the request's context. A request whose
// context ends is neither a success nor a failure for a breaker. Note that
// http.Client.Timeout ends the request's own context, so a breaker ignores
// the calls it cuts short: to make slow answers count as failures, put a
// resilience.Timeout in the pipeline, inside the breaker. A context that a
// policy gives the call (a Timeout's) bounds the wait for the response
// headers only; the body stays readable for as long as the request's own
// context lives, so a Timeout does not cut off the body the caller reads.
//
// The same holds for the contexts a hedge gives its attempts: the winner's
// body stays readable after the hedge has cancelled them.
//
// Every response the next RoundTripper returns that does not reach the
// caller (one a fallback replaced, one a retry superseded, a hedge's loser,
// one a timeout abandoned) is closed by the Transport, once: when the
// RoundTrip returns, when it arrives after that, or, for a failure a retry
// moves past, when the retry releases it before its delay. A policy that
// sends a request again (a retry, a hedge) gets a fresh body from
// Request.GetBody, or ErrBodyNotReplayable and nothing is sent.
//
// A Transport is safe for concurrent use by multiple goroutines, as the
// policies are. Set IsFailure, if at all, before the first request.
type Transport struct {
	// IsFailure reports whether a response counts as a failure. It is
	// called with each response the next RoundTripper returns, must not
	// read or close its body, and must be safe for concurrent use.
	// Default (nil): DefaultIsFailure.
	IsFailure func(*http.Response) bool

	next     http.RoundTripper
	pipeline resilience.Func[*http.Response]
}

// DefaultTransportName is the levee.policy.name a Transport's policies
// (timeouts, fallbacks) report under when neither NewTransportWith nor a
// breaker among them names the pipeline. Every such Transport shares it:
// name each client's pipeline, or give it a breaker.
const DefaultTransportName = "leveehttp.Transport"

// NewTransport returns a Transport that sends requests to next through
// policies, listed outermost first as for resilience.Wrap. A nil next means
// http.DefaultTransport. With no policies the Transport only forwards. The
// pipeline is built here, once; a nil policy panics, naming its position.
//
// The policies report under the name and providers of the first breaker
// among them, as resilience.Wrap's do, and otherwise under
// DefaultTransportName and the global providers: use NewTransportWith to
// name a pipeline that has no breaker.
func NewTransport(next http.RoundTripper, policies ...resilience.Policy[*http.Response]) *Transport {
	return NewTransportWith(resilience.Telemetry{}, next, policies...)
}

// NewTransportWith is NewTransport with the pipeline's telemetry given once,
// as for resilience.WrapWith: every policy among policies that reports
// telemetry reports under tel. Fields of tel left zero come from the first
// breaker among the policies, else DefaultTransportName and the global
// providers. A provider that is a nil pointer panics, naming the field.
func NewTransportWith(tel resilience.Telemetry, next http.RoundTripper, policies ...resilience.Policy[*http.Response]) *Transport {
	if next == nil {
		next = http.DefaultTransport
	}
	if tel.Name == "" && !namedBySource(policies) {
		// The pipeline's function is the Transport's own: its name would
		// tell nothing about the client.
		tel.Name = DefaultTransportName
	}
	t := &Transport{next: next}
	t.pipeline = resilience.WrapWith(tel, resilience.Func[*http.Response](t.attempt), policies...)
	return t
}

// namedBySource reports whether a policy (a breaker's) would give the
// pipeline its name.
func namedBySource(policies []resilience.Policy[*http.Response]) bool {
	for _, p := range policies {
		if src, ok := p.(resilience.TelemetrySource); ok && src.Telemetry().Name != "" {
			return true
		}
	}
	return false
}

// RoundTrip sends req through the Transport's policies. It returns a
// response with a nil error whenever the server answered, whatever the
// status, and otherwise the error of the next RoundTripper or of a policy.
// When the policies end with an error that carries a *ResponseError (a
// fallback that failed too, a timeout that fired once the headers were in,
// a retry that ran out of attempts), the caller gets that response, whole,
// and a nil error; unless the call ended because the request's own context
// did (its caller gave up while a retry waited to try again), which returns
// the policies' error, matching the context's.
func (t *Transport) RoundTrip(req *http.Request) (resp *http.Response, err error) {
	c := &call{req: req}
	c.ctx = context.WithValue(req.Context(), callKey{}, c)
	defer func() {
		// Also on a panic in a policy: the call's responses and
		// request body are never left open.
		c.finish(resp)
	}()
	resp, err = t.pipeline(c.ctx)
	var failed *ResponseError
	switch {
	case err != nil && callerGaveUp(req, err):
		// A policy (a retry waiting to try again, a hedge waiting for its
		// attempts) ended the call because the caller's context ended: the
		// caller gets that context's error, even if the error also carries
		// a response, which is then closed.
		return nil, err
	case err != nil && errors.As(err, &failed) && failed.Response != nil && !failed.released.Load():
		return failed.Response, nil
	case err != nil:
		return nil, err
	case resp == nil:
		return nil, errNoResponse
	}
	return resp, nil
}

// callerGaveUp reports whether err says that the call ended because req's
// own context did.
func callerGaveUp(req *http.Request, err error) bool {
	ctxErr := req.Context().Err()
	return ctxErr != nil && errors.Is(err, ctxErr)
}

// CloseIdleConnections closes the idle connections of the next
// RoundTripper, when it has a CloseIdleConnections method, as
// http.Client.CloseIdleConnections expects of a Transport.
func (t *Transport) CloseIdleConnections() {
	if closer, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		closer.CloseIdleConnections()
	}
}

// attempt is the function the policies guard: one exchange with the next
// RoundTripper.
func (t *Transport) attempt(ctx context.Context) (*http.Response, error) {
	c, _ := ctx.Value(callKey{}).(*call)
	if c == nil {
		return nil, errors.New("leveehttp: a policy called the pipeline with a context not derived from the request's")
	}
	req, err := c.begin(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := t.exchange(ctx, c, req)
	if err != nil {
		return nil, err
	}
	if resp == nil {
		return nil, errors.New("leveehttp: the next RoundTripper returned neither a response nor an error")
	}
	if resp.Body == nil {
		resp.Body = http.NoBody // as http.Client does for such RoundTrippers
	}
	failure := t.failure(resp)
	if !c.produced(resp, failure) {
		return nil, errCallEnded
	}
	if failure != nil {
		return nil, failure
	}
	return resp, nil
}

// failure returns the error a failing response reaches the policies as,
// nil for a success. When IsFailure panics, the panic goes on up, and the
// response, which nobody will get, is closed.
func (t *Transport) failure(resp *http.Response) *ResponseError {
	isFailure := t.IsFailure
	if isFailure == nil {
		isFailure = DefaultIsFailure
	}
	panicked := true
	defer func() {
		if panicked {
			resp.Body.Close()
		}
	}()
	failed := isFailure(resp)
	panicked = false
	if failed {
		return newResponseError(resp, time.Now())
	}
	return nil
}

// exchange sends req to the next RoundTripper. When a policy gave the call a
// context of its own (a Timeout's, which is cancelled as soon as the call
// returns, that is, at the response headers), that context bounds the
// exchange until the headers arrive only; from then on only the request's
// own context does, until the body is closed.
func (t *Transport) exchange(ctx context.Context, c *call, req *http.Request) (*http.Response, error) {
	if ctx == c.ctx {
		return t.next.RoundTrip(req)
	}
	callerCtx := c.req.Context()
	exchangeCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	stopPolicy := context.AfterFunc(ctx, func() { cancel(context.Cause(ctx)) })
	stopCaller := context.AfterFunc(callerCtx, func() { cancel(context.Cause(callerCtx)) })
	release := func() {
		stopCaller()
		cancel(nil)
	}
	resp, err := t.next.RoundTrip(req.WithContext(exchangeCtx))
	stopPolicy()
	if err != nil || resp == nil || resp.Body == nil {
		release()
		return resp, err
	}
	resp.Body = releasingBody(resp.Body, release)
	return resp, nil
}

// callKey is the context key under which RoundTrip passes its call to the
// attempt at the core of the pipeline.
type callKey struct{}

// call is one RoundTrip: its request, and the responses its attempts got,
// so that those the caller does not get are closed.
type call struct {
	req *http.Request
	ctx context.Context

	mu        sync.Mutex
	attempts  int
	responses []response
	ended     bool
}

// response is a response an attempt got, and the error it reached the
// policies as when it failed.
type response struct {
	resp    *http.Response
	failure *ResponseError // nil for a success
}

// close closes r's body, once: a failure's may have been released.
func (r response) close() {
	if r.failure != nil {
		r.failure.Release()
		return
	}
	r.resp.Body.Close()
}

// begin starts an attempt and returns the request to send: req itself the
// first time, a copy with a fresh body from GetBody after that.
func (c *call) begin(ctx context.Context) (*http.Request, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return nil, errCallEnded
	}
	c.attempts++
	req := c.req
	if c.attempts == 1 || req.Body == nil || req.Body == http.NoBody {
		return req, nil
	}
	if req.GetBody == nil {
		return nil, errNotReplayed
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, err
	}
	again := req.WithContext(req.Context())
	again.Body = body
	return again, nil
}

// produced records a response an attempt got, and the error it reaches
// the policies as if it failed. It reports false, and closes the response,
// when the RoundTrip has already returned without it.
func (c *call) produced(resp *http.Response, failure *ResponseError) bool {
	r := response{resp: resp, failure: failure}
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		r.close()
		return false
	}
	c.responses = append(c.responses, r)
	c.mu.Unlock()
	return true
}

// finish ends the call: it closes the responses other than kept, and the
// request's body when no attempt sent it (the next RoundTripper closes the
// bodies it is given).
func (c *call) finish(kept *http.Response) {
	c.mu.Lock()
	c.ended = true
	responses, attempts := c.responses, c.attempts
	c.responses = nil
	c.mu.Unlock()
	for _, r := range responses {
		if r.resp != kept {
			r.close()
		}
	}
	if attempts == 0 && c.req.Body != nil {
		c.req.Body.Close()
	}
}

// releasingBody wraps a response body so that closing it releases the
// exchange's context. Closing it again does nothing: a hedge's WithRelease
// and the Transport may both close a response that lost. A 101 Switching
// Protocols body stays writable.
func releasingBody(body io.ReadCloser, release func()) io.ReadCloser {
	rb := &releaser{ReadCloser: body, release: release}
	if w, ok := body.(io.Writer); ok {
		return &readWriteReleaser{releaser: rb, Writer: w}
	}
	return rb
}

type releaser struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (r *releaser) Close() (err error) {
	r.once.Do(func() {
		err = r.ReadCloser.Close()
		r.release()
	})
	return err
}

type readWriteReleaser struct {
	*releaser
	io.Writer
}
