package breaker

import (
	"fmt"
	"time"

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
	now              func() time.Time
	clockSet         bool
	isFailure        func(error) bool
	listeners        []func(StateChange)
	tracerProvider   trace.TracerProvider
	meterProvider    metric.MeterProvider
	problems         []string
}

func (c *config) refuse(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// WithFailureThreshold sets how many consecutive failures open the breaker.
// Default 3. n must be at least 1; New panics otherwise.
func WithFailureThreshold(n int) Option {
	return func(c *config) {
		if n < 1 {
			c.refuse("WithFailureThreshold: must be at least 1, got %d", n)
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
			c.refuse("WithOpenTimeout: must be positive, got %v", d)
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
			c.refuse("WithRetryAfter: limit must be positive, got %v", limit)
		}
		c.retryAfterLimit = limit
	}
}

// WithClock sets the clock the breaker reads, for tests: pass a fake clock's
// Now and advance it instead of sleeping. Default time.Now.
//
// With the default clock an open breaker arms a timer for the moment it may
// half-open, so rejections read no clock and the half-open transition is
// reported when it happens. With an injected clock there is no timer: the
// breaker compares the clock with the open timeout when a call arrives or
// State is read, which keeps tests deterministic. now must not be nil; New
// panics otherwise.
func WithClock(now func() time.Time) Option {
	return func(c *config) {
		if now == nil {
			c.refuse("WithClock: now must not be nil")
		}
		c.now = now
		c.clockSet = true
	}
}

// WithIsFailure sets which errors count as failures. It is called with each
// non-nil error the guarded function returns; when it returns false the call
// counts as a success (a "not found", say, proves the dependency is up).
// Default: every non-nil error is a failure. Errors caused by the caller's
// own context ending are never counted, whatever isFailure says. isFailure
// must be safe for concurrent use and must not be nil; New panics otherwise.
func WithIsFailure(isFailure func(error) bool) Option {
	return func(c *config) {
		if isFailure == nil {
			c.refuse("WithIsFailure: isFailure must not be nil")
		}
		c.isFailure = isFailure
	}
}

// WithStateChangeListener adds a function called after each state change,
// with the breaker's name, the states left and entered and why. The option
// may be given several times; listeners are called in the order given.
//
// Listeners run after the change is made and never while the breaker holds a
// lock, so a listener may call the breaker. Changes reach listeners one at a
// time and in the order they happened. A listener that panics is recovered
// and reported to the OpenTelemetry error handler (otel.Handle); the call
// that caused the change keeps its own result. A listener that blocks holds
// up only the goroutine delivering changes, never the breaker's other calls;
// changes made meanwhile are queued and delivered when it returns. Default:
// none. listener must not be nil; New panics otherwise.
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
		if tp == nil {
			c.refuse("WithTracerProvider: provider must not be nil")
		}
		c.tracerProvider = tp
	}
}

// WithMeterProvider sets where the breaker's metrics go. Default:
// otel.GetMeterProvider() at construction.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) {
		if mp == nil {
			c.refuse("WithMeterProvider: provider must not be nil")
		}
		c.meterProvider = mp
	}
}
