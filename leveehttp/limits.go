package leveehttp

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/levee-go/levee/bulkhead"
	"github.com/levee-go/levee/ratelimit"
	"github.com/levee-go/levee/throttle"
)

// BulkheadHandler returns h guarded by the bulkhead b, for the server side:
// at most b.MaxConcurrent() requests are in h at once. A request that finds
// every slot taken (and, with bulkhead.WithMaxWait, gets none in time) is
// answered at once with 503 Service Unavailable, a Retry-After header and a
// short plain-text body, and h is not called.
//
// 503, not 429: a full bulkhead is the server's state, not something this
// client did, and any client may be served a moment later. The Retry-After
// is 1 second by default (a slot is free as soon as any request in h
// returns, and 1 is the least the header can say); WithRetryAfter changes it,
// WithRejectionStatus the status and WithRejection the whole answer.
//
// An admitted request reaches h untouched: the same ResponseWriter and the
// same *http.Request, so the response is exactly h's. A request holds its
// slot until h returns, panics included (the panic propagates unchanged to
// net/http, http.ErrAbortHandler too). A request whose context ends while it
// waits for a slot (the client went away) leaves the queue and is answered
// 503 without a Retry-After, as is one whose context had ended before it
// came; h is not called.
//
// h and b must not be nil, and every option must apply to a bulkhead;
// BulkheadHandler panics otherwise, naming the problem. The handler is safe
// for concurrent use if h is; it allocates nothing of its own on the path of
// an admitted request.
func BulkheadHandler(h http.Handler, b *bulkhead.Bulkhead, opts ...HandlerOption) http.Handler {
	c := newLimitConfig("BulkheadHandler", h, b == nil, "bulkhead", opts)
	c.refuseServed()
	c.check()
	return &bulkheadHandler{h: h, b: b, limitConfig: c}
}

type bulkheadHandler struct {
	h http.Handler
	b *bulkhead.Bulkhead
	limitConfig
}

func (g *bulkheadHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	err := g.b.Call(r.Context(), func(context.Context) error {
		g.h.ServeHTTP(w, r)
		return nil
	})
	if err != nil {
		g.reject(w, r, err, errors.Is(err, bulkhead.ErrFull), g.retryAfter)
	}
}

// RateLimitHandler returns h guarded by the rate limit l, for the server
// side: a request the limiter refuses is answered at once with 429 Too Many
// Requests, a Retry-After header and a short plain-text body, and h is not
// called. The Retry-After is the limiter's own (ratelimit.LimitedError's
// RetryAfter, the time until the request's bucket has a token) in whole
// seconds, rounded up, at least 1: a client that waits that long finds a
// token, unless others of its key take it first. WithRejectionStatus
// changes the status and WithRejection the whole answer.
//
// To limit each client apart, key l by a function of the request with
// RequestKey; RateLimitHandler gives the limiter the request:
//
//	perClient := ratelimit.New("api-per-client", 100, time.Minute,
//		ratelimit.WithKey(leveehttp.RequestKey(leveehttp.ClientIP)))
//	mux.Handle("/api/", leveehttp.RateLimitHandler(api, perClient))
//
// A limiter keyed by a function of the context (a tenant an authentication
// middleware put there) works as it is: the limiter sees the request's
// context. 429 is the status for a client over its limit (RFC 6585);
// for a limit shared by every client, which is the server's capacity rather
// than any client's excess, WithRejectionStatus(http.StatusServiceUnavailable)
// says so.
//
// An admitted request reaches h untouched: the same ResponseWriter and the
// same *http.Request (the context that carries the request to the key
// function is the limiter's alone). A request whose context ends while it
// waits for its token (ratelimit.WithMaxWait) is answered 503 without a
// Retry-After, as is one whose context had ended before it came; h is not
// called.
//
// h and l must not be nil, and every option must apply to a rate limit;
// RateLimitHandler panics otherwise, naming the problem. The handler is safe
// for concurrent use if h is. An admitted request costs one small
// allocation of its own, the context that carries the request to the
// limiter.
func RateLimitHandler(h http.Handler, l *ratelimit.Limiter, opts ...HandlerOption) http.Handler {
	c := newLimitConfig("RateLimitHandler", h, l == nil, "limiter", opts)
	if c.retryAfterGiven {
		c.refuse("WithRetryAfter: a rate limit's Retry-After is the time until its next token")
	}
	c.refuseServed()
	if !c.statusGiven {
		c.status = http.StatusTooManyRequests
	}
	c.check()
	return &rateLimitHandler{h: h, l: l, limitConfig: c}
}

type rateLimitHandler struct {
	h http.Handler
	l *ratelimit.Limiter
	limitConfig
}

// admitted is the function a rate limit runs for an admitted request: the
// request is served after Call returns, as a token is held by nobody.
func admitted(context.Context) error { return nil }

func (g *rateLimitHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	err := g.l.Call(context.WithValue(r.Context(), requestKey{}, r), admitted)
	if err == nil {
		g.h.ServeHTTP(w, r)
		return
	}
	if limited, ok := errors.AsType[*ratelimit.LimitedError](err); ok {
		g.reject(w, r, err, true, retryAfterSeconds(limited.RetryAfter()))
		return
	}
	g.reject(w, r, err, false, "")
}

// ThrottleHandler returns h guarded by the adaptive throttle t, for the
// server side: t learns from h's answers what share of requests h serves,
// and while h fails more than t lets pass (see package throttle), it refuses
// requests with the probability its rule gives. A refused request is
// answered at once with 503 Service Unavailable, a Retry-After header (1
// second by default, WithRetryAfter to change it) and a short plain-text
// body (WithRejection to write another), and h is not called. This sheds
// load from a handler whose own dependencies are refusing work, in
// proportion to how much they refuse, where a breaker would stop
// everything.
//
// What counts as served: by default, any status below 500 but 429 (a 429 is
// h refusing the work); WithServed says otherwise. A handler that writes
// nothing, or hijacks the connection, has served its request. A request
// whose context has ended by the time h returns (the client went away)
// counts neither way: it says nothing about h. A panic counts as a request
// h did not serve and propagates unchanged to net/http; a panic with
// http.ErrAbortHandler too, unless the client had gone. h's status reaches t
// as a *HandlerError, which t's throttle.WithIsFailure also sees: leave that
// at its default, and say what is served here.
//
// The ResponseWriter h receives records the status; it passes Flush and
// ReadFrom through and has an Unwrap method, so http.ResponseController
// reaches the original writer's other features. A request whose context had
// ended before it came is answered 503 without a Retry-After, and h is not
// called.
//
// h and t must not be nil, and every option must apply to a throttle;
// ThrottleHandler panics otherwise, naming the problem. The handler is safe
// for concurrent use if h is.
func ThrottleHandler(h http.Handler, t *throttle.Throttle, opts ...HandlerOption) http.Handler {
	c := newLimitConfig("ThrottleHandler", h, t == nil, "throttle", opts)
	c.check()
	served := c.served
	if served == nil {
		served = DefaultServed
	}
	return &throttleHandler{h: h, t: t, served: served, limitConfig: c}
}

// DefaultServed is what ThrottleHandler counts as a request its handler
// served unless WithServed says otherwise: a status below 500 other than
// 429 Too Many Requests.
func DefaultServed(status int) bool {
	return status < http.StatusInternalServerError && status != http.StatusTooManyRequests
}

type throttleHandler struct {
	h      http.Handler
	t      *throttle.Throttle
	served func(status int) bool
	limitConfig
}

func (g *throttleHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w}
	ran, aborted := false, false
	err := g.t.Call(r.Context(), func(ctx context.Context) (err error) {
		ran = true
		defer func() {
			switch v := recover(); v {
			case nil:
			case http.ErrAbortHandler:
				// Recovered so that the throttle sees whether the client
				// had gone; re-raised below, once it has counted it.
				aborted = true
				err = errAborted
			default:
				panic(v) // the handler's own panic, unchanged: not served
			}
		}()
		g.h.ServeHTTP(sw, r)
		if err := ctx.Err(); err != nil {
			return err // the client went away
		}
		status := sw.status
		if status == 0 {
			status = http.StatusOK // nothing written, or hijacked
		}
		if !g.served(status) {
			return &HandlerError{StatusCode: status}
		}
		return nil
	})
	if aborted {
		panic(http.ErrAbortHandler)
	}
	if !ran {
		g.reject(w, r, err, errors.Is(err, throttle.ErrThrottled), g.retryAfter)
	}
}

// HandlerOption configures BulkheadHandler, RateLimitHandler or
// ThrottleHandler. An option that does not apply to the handler it is given
// to makes the handler's constructor panic, naming it.
type HandlerOption func(*limitConfig)

// WithRejectionStatus sets the status of the answer to a request the policy
// refused. Default 503 Service Unavailable for BulkheadHandler and
// ThrottleHandler, 429 Too Many Requests for RateLimitHandler. code must be
// a 4xx or 5xx status that http.StatusText names; the constructor panics
// otherwise. A request refused because its own context ended is answered
// 503 whatever the option says.
func WithRejectionStatus(code int) HandlerOption {
	return func(c *limitConfig) {
		if code < 400 || code > 599 || http.StatusText(code) == "" {
			c.refuse("WithRejectionStatus: must be a known 4xx or 5xx status, got " + strconv.Itoa(code))
		}
		c.status, c.statusGiven = code, true
	}
}

// WithRetryAfter sets the Retry-After of BulkheadHandler's and
// ThrottleHandler's rejections: d in whole seconds, rounded up; 0 sends no
// Retry-After. Default 1 second. A rate limit computes its own from its
// tokens: RateLimitHandler panics when given this option, as the
// constructors do when d is negative.
func WithRetryAfter(d time.Duration) HandlerOption {
	return func(c *limitConfig) {
		if d < 0 {
			c.refuse("WithRetryAfter: must not be negative, got " + d.String())
		}
		c.retryAfter, c.retryAfterGiven = "", true
		if d > 0 {
			c.retryAfter = retryAfterSeconds(d)
		}
	}
}

// WithServed sets what ThrottleHandler counts as a request its handler
// served, by the status the handler answered with (200 when it wrote none).
// Default DefaultServed: below 500, and not 429. served is called once per
// request the handler ran and the client waited for; it must be fast, safe
// for concurrent use and not nil. Only ThrottleHandler takes this option;
// the others panic when given it.
func WithServed(served func(status int) bool) HandlerOption {
	return func(c *limitConfig) {
		if served == nil {
			c.refuse("WithServed: served must not be nil")
		}
		c.served, c.servedGiven = served, true
	}
}

// WithRejection writes the answer to a request the policy refused, in place
// of the short plain-text one: a JSON problem (RFC 9457), a page of the
// site's own. reject is called with the status to answer (the handler's
// default, or WithRejectionStatus's) and the policy's error, which matches
// bulkhead.ErrFull, ratelimit.ErrLimited (a *ratelimit.LimitedError, with
// its RetryAfter) or throttle.ErrThrottled; the Retry-After header is
// already set, and reject must write the status. For a request refused
// because its own context ended, the error is the context's and the status
// 503. The handler is never called for the request, whatever reject does.
// reject must be safe for concurrent use and not nil; the constructors panic
// otherwise.
func WithRejection(reject func(w http.ResponseWriter, r *http.Request, status int, err error)) HandlerOption {
	return func(c *limitConfig) {
		if reject == nil {
			c.refuse("WithRejection: reject must not be nil")
		}
		c.rejection = reject
	}
}

// limitConfig is the configuration of a load-shedding handler, and what it
// answers a rejection with.
type limitConfig struct {
	constructor     string
	status          int
	statusGiven     bool
	retryAfter      string // the Retry-After of a rejection; "" for none
	retryAfterGiven bool
	served          func(status int) bool
	servedGiven     bool
	rejection       func(w http.ResponseWriter, r *http.Request, status int, err error)
	problems        []string
}

func newLimitConfig(constructor string, h http.Handler, policyNil bool, policy string, opts []HandlerOption) limitConfig {
	c := limitConfig{constructor: constructor, status: http.StatusServiceUnavailable, retryAfter: "1"}
	if h == nil {
		c.refuse("handler must not be nil")
	}
	if policyNil {
		c.refuse(policy + " must not be nil")
	}
	for i, opt := range opts {
		if opt == nil {
			c.refuse("option " + strconv.Itoa(i) + " is nil")
			continue
		}
		opt(&c)
	}
	return c
}

func (c *limitConfig) refuse(problem string) { c.problems = append(c.problems, problem) }

func (c *limitConfig) refuseServed() {
	if c.servedGiven {
		c.refuse("WithServed: only ThrottleHandler counts what its handler served")
	}
}

func (c *limitConfig) check() {
	if len(c.problems) > 0 {
		msg := "levee: leveehttp." + c.constructor + ": " + c.problems[0]
		for _, p := range c.problems[1:] {
			msg += "; " + p
		}
		panic(msg)
	}
	c.problems = nil
}

// reject answers a request the handler was not called for: the policy's
// rejection err with its status and Retry-After, or, when the request's own
// context ended first, 503 and no Retry-After.
func (c *limitConfig) reject(w http.ResponseWriter, r *http.Request, err error, byPolicy bool, retryAfter string) {
	status := http.StatusServiceUnavailable
	if byPolicy {
		status = c.status
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
	}
	if c.rejection != nil {
		c.rejection(w, r, status, err)
		return
	}
	http.Error(w, http.StatusText(status), status)
}
