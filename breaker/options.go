package breaker

import (
	"fmt"
	"time"

	"github.com/levee-go/levee/internal/emit"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Defaults of a Breaker's settings.
const (
	// DefaultFailureThreshold is the number of consecutive failures that
	// opens a breaker.
	DefaultFailureThreshold = 3
	// DefaultOpenTimeout is how long a breaker stays open before it lets a
	// probe through.
	DefaultOpenTimeout = 30 * time.Second
)

// Option configures a Breaker at construction.
type Option func(*config)

type config struct {
	failureThreshold int
	openTimeout      time.Duration
	retryAfterLimit  time.Duration
	isFailure        func(error) bool
	isIgnored        func(error) bool
	listeners        []func(StateChange)
	tracerProvider   trace.TracerProvider
	meterProvider    metric.MeterProvider
	problems         []string
}

func (c *config) refuse(problem string) { c.problems = append(c.problems, problem) }

// WithFailureThreshold sets how many consecutive failures open the breaker.
// Default 3. n must be at least 1; New panics otherwise.
func WithFailureThreshold(n int) Option {
	return func(c *config) {
		if n < 1 {
			c.refuse(fmt.Sprintf("WithFailureThreshold: must be at least 1, got %d", n))
		}
		c.failureThreshold = n
	}
}

// WithOpenTimeout sets how long the breaker stays open before it becomes
// half-open and lets one probe through. Default 30s. d must be positive;
// New panics otherwise.
func WithOpenTimeout(d time.Duration) Option {
	return func(c *config) {
		if d <= 0 {
			c.refuse(fmt.Sprintf("WithOpenTimeout: must be positive, got %v", d))
		}
		c.openTimeout = d
	}
}

// WithRetryAfter lets the failure that opens the breaker ask for a longer
// open period, as a server does with an HTTP Retry-After header. When the
// error of that failure (the one that reaches the threshold, or a failed
// probe) has, in its tree, an error with a RetryAfter() time.Duration method
// (leveehttp's ResponseError for a 429 or 503 with Retry-After, a downstream
// breaker's OpenError), the breaker stays open for that long instead of the
// open timeout, but never for less than the open timeout and never for more
// than limit, so a server can neither make the breaker probe sooner nor hold
// it open indefinitely.
//
// Default: off, every open period lasts the open timeout. limit must be
// positive; New panics otherwise.
func WithRetryAfter(limit time.Duration) Option {
	return func(c *config) {
		if limit <= 0 {
			c.refuse(fmt.Sprintf("WithRetryAfter: limit must be positive, got %v", limit))
		}
		c.retryAfterLimit = limit
	}
}

// WithIsFailure sets which errors count as failures. It is called with each
// non-nil error the guarded function returns; when it returns false the call
// counts as a success (a "not found", say, proves the dependency is up).
// Default: every non-nil error is a failure. Errors caused by the caller's
// own context ending are never counted, whatever isFailure says, nor are the
// errors WithIsIgnored names. isFailure must be safe for concurrent use and
// must not be nil; New panics otherwise.
func WithIsFailure(isFailure func(error) bool) Option {
	return func(c *config) {
		if isFailure == nil {
			c.refuse("WithIsFailure: isFailure must not be nil")
		}
		c.isFailure = isFailure
	}
}

// WithIsIgnored sets which errors count as neither success nor failure,
// like the errors of a caller whose context ended: they say nothing about
// the dependency (a request the caller got wrong, a validation error). An
// ignored call leaves the consecutive-failure count as it was, and as a
// half-open probe it frees the probe slot without closing or opening the
// breaker; levee.circuit_breaker.calls counts it as "ignored". It is
// called with each non-nil error before WithIsFailure's predicate.
// Default: none. isIgnored must be safe for concurrent use and must not be
// nil; New panics otherwise.
func WithIsIgnored(isIgnored func(error) bool) Option {
	return func(c *config) {
		if isIgnored == nil {
			c.refuse("WithIsIgnored: isIgnored must not be nil")
		}
		c.isIgnored = isIgnored
	}
}

// WithStateChangeListener adds a function called after each state change,
// with the breaker's name, the states left and entered and why. The option
// may be given several times; listeners are called in the order given.
//
// Listeners run after the change is made, on a goroutine of the breaker's
// that lives only while changes are waiting, never while the breaker holds a
// lock, so a listener may call the breaker; no call waits for a listener,
// not even the call that caused the change. Changes reach listeners one at a
// time and in the order they happened. A listener that panics is recovered
// and reported to the OpenTelemetry error handler (otel.Handle). A listener
// that blocks delays only the changes after it, which wait in a queue of at
// most 1024 (later ones are dropped and reported to otel.Handle); one that
// calls runtime.Goexit misses the rest of that change's listeners, and
// delivery goes on. Default: none. listener must not be nil; New panics
// otherwise.
func WithStateChangeListener(listener func(StateChange)) Option {
	return func(c *config) {
		if listener == nil {
			c.refuse("WithStateChangeListener: listener must not be nil")
		}
		c.listeners = append(c.listeners, listener)
	}
}

// WithTracerProvider sets where the breaker's transition spans come from.
// Default: otel.GetTracerProvider() at construction.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) {
		if problem := emit.CheckProvider("WithTracerProvider", tp); problem != "" {
			c.refuse(problem)
		}
		c.tracerProvider = tp
	}
}

// WithMeterProvider sets where the breaker's metrics go. Default:
// otel.GetMeterProvider() at construction.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) {
		if problem := emit.CheckProvider("WithMeterProvider", mp); problem != "" {
			c.refuse(problem)
		}
		c.meterProvider = mp
	}
}
