package breaker

import (
	"fmt"
	"math"
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
	// DefaultMinCalls is how many calls a window must hold before a rate
	// rule may trip the breaker (fewer for a smaller count window).
	DefaultMinCalls = 100
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

	// rules are the trip-rule options given, by name, in order: a breaker
	// has one rule, and New refuses a second naming both.
	rules         []string
	rule          tripRule
	failureRate   float64
	slowCallRate  float64
	tripFunc      func(WindowCounts) bool
	minCalls      int // 0: the default
	minCallsGiven bool

	// windows are the window options given, by name, in order.
	windows      []string
	countWindow  int
	timeWindow   time.Duration
	timeBuckets  int
	slowDuration time.Duration
	callDuration bool

	halfOpenProbes    int
	halfOpenSuccesses int
	backoff           openBackoff
	backoffGiven      bool
	jitterSeed        *uint64
	shadow            bool
	halfOpenGate      func() time.Duration

	problems []string
}

func (c *config) refuse(problem string) { c.problems = append(c.problems, problem) }

// WithFailureThreshold sets how many consecutive failures open the breaker:
// the consecutive-failures trip rule, the default one. Default 3. n must be
// at least 1, and the option cannot be given with another trip rule
// (WithFailureRate, WithSlowCallRate, WithTripRule); New panics otherwise.
func WithFailureThreshold(n int) Option {
	return func(c *config) {
		if n < 1 {
			c.refuse(fmt.Sprintf("WithFailureThreshold: must be at least 1, got %d", n))
		}
		c.failureThreshold = n
		c.useRule("WithFailureThreshold", ruleConsecutive)
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

// useRule notes that the option named name sets the trip rule.
func (c *config) useRule(name string, rule tripRule) {
	c.rules = append(c.rules, name)
	c.rule = rule
}

// checkRatio refuses a ratio outside (0, 1], NaN included.
func (c *config) checkRatio(option string, ratio float64) {
	if !(ratio > 0 && ratio <= 1) {
		c.refuse(fmt.Sprintf("%s: ratio must be in (0, 1], got %v", option, ratio))
	}
}

// WithFailureRate trips the breaker on a failure rate rather than a streak:
// it opens when, after a failure, at least ratio of the calls in its window
// failed (failures >= ratio × calls), provided the window holds at least
// the minimum number of calls (WithMinCalls, default 100 or the count
// window's size if smaller). A success never opens it, not even one that
// brings the window to its minimum: the next failure does. The window is
// WithCountWindow or WithTimeWindow, and one of them must be given.
//
// ratio must be in (0, 1], and the option cannot be given with another
// trip rule (WithFailureThreshold, WithSlowCallRate, WithTripRule); New
// panics otherwise.
func WithFailureRate(ratio float64) Option {
	return func(c *config) {
		c.checkRatio("WithFailureRate", ratio)
		c.failureRate = ratio
		c.useRule("WithFailureRate", ruleFailureRate)
	}
}

// WithSlowCallRate trips the breaker on slow calls, even when they
// succeed: it opens when, after a slow call (one that took longer than
// WithSlowCallDuration), at least ratio of the calls in its window were
// slow, provided the window holds at least the minimum number of calls
// (WithMinCalls). A half-open probe that is slow counts as a failed probe
// under this rule. It needs WithSlowCallDuration and a window
// (WithCountWindow or WithTimeWindow).
//
// ratio must be in (0, 1], and the option cannot be given with another
// trip rule; New panics otherwise. To trip on failures or slow calls,
// whichever comes first, write the rule with WithTripRule.
func WithSlowCallRate(ratio float64) Option {
	return func(c *config) {
		c.checkRatio("WithSlowCallRate", ratio)
		c.slowCallRate = ratio
		c.useRule("WithSlowCallRate", ruleSlowCallRate)
	}
}

// WithTripRule trips the breaker when shouldTrip says so: after each
// failure and each slow call recorded while the breaker is closed, it is
// called with the counts of the window (WithCountWindow or WithTimeWindow,
// one of which must be given) and the current streak of consecutive
// failures, and the breaker opens when it returns true. It is never called
// after a fast success. It runs on the goroutine of the call that was
// recorded, holding no lock of the breaker's, possibly on several
// goroutines at once: it must be safe for concurrent use, and quick. A
// panic in it is recovered and reported to otel.Handle, and does not open
// the breaker. This is gobreaker's ReadyToTrip:
//
//	breaker.WithTripRule(func(c breaker.WindowCounts) bool {
//		return c.Calls >= 20 && (c.FailureRate() >= 0.5 || c.SlowCallRate() >= 0.8)
//	})
//
// shouldTrip must not be nil, and the option cannot be given with another
// trip rule; New panics otherwise. WithMinCalls does not apply: the
// function sees Calls and decides.
func WithTripRule(shouldTrip func(WindowCounts) bool) Option {
	return func(c *config) {
		if shouldTrip == nil {
			c.refuse("WithTripRule: shouldTrip must not be nil")
		}
		c.tripFunc = shouldTrip
		c.useRule("WithTripRule", ruleCustom)
	}
}

// WithMinCalls sets how many calls the window must hold before
// WithFailureRate or WithSlowCallRate may trip the breaker, so that a
// handful of calls to a quiet dependency cannot open it. Default: 100, or
// the size of a count window smaller than that. n must be at least 1 and,
// with a count window, at most its size; it needs WithFailureRate or
// WithSlowCallRate. New panics otherwise.
func WithMinCalls(n int) Option {
	return func(c *config) {
		if n < 1 {
			c.refuse(fmt.Sprintf("WithMinCalls: must be at least 1, got %d", n))
		}
		c.minCalls = n
		c.minCallsGiven = true
	}
}

// WithCountWindow makes the breaker count the outcomes of its last n calls
// while closed, for WithFailureRate, WithSlowCallRate and WithTripRule to
// read, and for the levee.circuit_breaker.failure_rate gauge. Successes and
// failures are counted; calls that count neither way (the caller's context
// ended, WithIsIgnored) are not. The window starts empty each time the
// breaker closes and when Reset is called.
//
// It costs a successful call one more atomic add, to a counter striped
// across cores like the breaker's other counts, and 8 bytes a call of the
// window (16 with WithSlowCallDuration), allocated each time the breaker
// closes. n must be at least 1, and the option cannot be given with
// WithTimeWindow; New panics otherwise.
func WithCountWindow(n int) Option {
	return func(c *config) {
		if n < 1 {
			c.refuse(fmt.Sprintf("WithCountWindow: the window must hold at least 1 call, got %d", n))
		}
		c.countWindow = n
		c.windows = append(c.windows, "WithCountWindow")
	}
}

// maxTimeBuckets bounds the buckets of a time window: each costs 80 bytes
// (with its stripes) and a read of the window visits them all.
const maxTimeBuckets = 1024

// minBucketWidth bounds how often a time window's timer ticks.
const minBucketWidth = time.Millisecond

// WithTimeWindow makes the breaker count the outcomes of its calls of the
// last d while closed, in buckets of d/buckets: the window slides one bucket
// at a time, and a bucket's calls leave it all at once, d after the
// bucket's start. Like WithCountWindow, it is what WithFailureRate,
// WithSlowCallRate and WithTripRule read, and it starts empty each time the
// breaker closes and when Reset is called.
//
// No call reads the clock for it: a timer moves the window to its next
// bucket, and it runs only while calls arrive (after a bucket with no call
// it stops, and the next call restarts it), so an idle breaker has no timer
// and no goroutine. A call that ends just as a bucket ends may be counted in
// the bucket before (in a testing/synctest bubble, call synctest.Wait after
// time.Sleep so that the timer has run). It costs a successful call a load
// of the window's clock word, which only the timer writes, and a
// compare-and-swap on a counter its core mostly has to itself; 80 bytes a
// bucket, allocated each time the breaker closes.
//
// d must be positive, buckets between 1 and 1024, and each bucket at least
// a millisecond long; the option cannot be given with WithCountWindow. New
// panics otherwise. Ten buckets (a 10% step) suit most windows.
func WithTimeWindow(d time.Duration, buckets int) Option {
	return func(c *config) {
		switch {
		case d <= 0:
			c.refuse(fmt.Sprintf("WithTimeWindow: the window must be positive, got %v", d))
		case buckets < 1 || buckets > maxTimeBuckets:
			c.refuse(fmt.Sprintf("WithTimeWindow: buckets must be between 1 and %d, got %d", maxTimeBuckets, buckets))
		case d/time.Duration(buckets) < minBucketWidth:
			c.refuse(fmt.Sprintf("WithTimeWindow: each of %d buckets of %v would last %v, under %v", buckets, d, d/time.Duration(buckets), minBucketWidth))
		}
		c.timeWindow = d
		c.timeBuckets = buckets
		c.windows = append(c.windows, "WithTimeWindow")
	}
}

// WithSlowCallDuration makes the breaker time each call it runs: a call
// that takes longer than d is slow, whether it succeeds or fails. Slow calls
// are counted in the window (WindowCounts.SlowCalls, the
// levee.circuit_breaker.slow_call_rate gauge), for WithSlowCallRate or
// WithTripRule to trip on. It costs every call two clock reads; a breaker
// without it (or WithCallDurationHistogram) reads none. d must be positive
// and the breaker needs a window (WithCountWindow or WithTimeWindow); New
// panics otherwise.
func WithSlowCallDuration(d time.Duration) Option {
	return func(c *config) {
		if d <= 0 {
			c.refuse(fmt.Sprintf("WithSlowCallDuration: must be positive, got %v", d))
		}
		c.slowDuration = d
	}
}

// WithCallDurationHistogram makes the breaker report how long each call it
// ran took, to the levee.circuit_breaker.call.duration histogram (seconds,
// by levee.outcome). Rejected calls, which run nothing, are not recorded.
// Off by default: it costs every call two clock reads and a record into the
// meter provider (docs/telemetry.md gives the measured cost).
func WithCallDurationHistogram() Option {
	return func(c *config) { c.callDuration = true }
}

// WithHalfOpen sets how the breaker probes once half-open: at most probes
// calls are let through at a time, and successes of them must succeed to
// close it; a failed probe opens it again at once. A probe that ends frees
// its place for the next call. Default: one probe, one success. A probe in
// flight longer than the open timeout stops counting once every place is
// taken: the half-open period starts afresh, the next call probes, and the
// results of the earlier probes (their successes included) are ignored.
//
// probes and successes must be at least 1, and successes at most probes;
// New panics otherwise.
func WithHalfOpen(probes, successes int) Option {
	return func(c *config) {
		switch {
		case probes < 1:
			c.refuse(fmt.Sprintf("WithHalfOpen: probes must be at least 1, got %d", probes))
		case successes < 1:
			c.refuse(fmt.Sprintf("WithHalfOpen: successes must be at least 1, got %d", successes))
		case successes > probes:
			c.refuse(fmt.Sprintf("WithHalfOpen: successes (%d) above probes (%d): the breaker could never close", successes, probes))
		}
		c.halfOpenProbes = probes
		c.halfOpenSuccesses = successes
	}
}

// WithOpenBackoff makes the open period grow each time the breaker opens
// again without having closed in between (its half-open probe failed): the
// k-th open period in a row lasts the open timeout × factor^(k-1), at most
// max, less a random share of up to jitter of that (so that clients of one
// dependency do not all probe at once). The first open period lasts the
// open timeout exactly; the breaker closing resets the count. With
// WithRetryAfter, a longer hint of the failure still wins.
// OpenError.RetryAfter, and so leveehttp.Handler's Retry-After header, say
// how long the current period lasts.
//
//	breaker.WithOpenBackoff(2, 5*time.Minute, 0.2) // 30s, 48-60s, 1m36s-2m, ... up to 4-5m
//
// factor must be at least 1, max at least the open timeout, and jitter in
// [0, 1); New panics otherwise. WithJitterSeed makes the jitter
// reproducible.
func WithOpenBackoff(factor float64, max time.Duration, jitter float64) Option {
	return func(c *config) {
		switch {
		case !(factor >= 1) || math.IsInf(factor, 1):
			c.refuse(fmt.Sprintf("WithOpenBackoff: factor must be at least 1, got %v", factor))
		case max <= 0:
			c.refuse(fmt.Sprintf("WithOpenBackoff: max must be positive, got %v", max))
		case !(jitter >= 0 && jitter < 1):
			c.refuse(fmt.Sprintf("WithOpenBackoff: jitter must be in [0, 1), got %v", jitter))
		}
		c.backoff = openBackoff{factor: factor, max: max, jitter: jitter}
		c.backoffGiven = true
	}
}

// WithJitterSeed makes WithOpenBackoff's jitter reproducible: its draws come
// from a PCG generator (math/rand/v2) seeded with seed, one draw for each
// open period after the first, so a test sees the same open periods on
// every run. Without it the draws come from the runtime's random source. It
// needs WithOpenBackoff; New panics otherwise.
func WithJitterSeed(seed uint64) Option {
	return func(c *config) { c.jitterSeed = &seed }
}

// WithShadowMode starts the breaker in shadow mode: see SetShadowMode.
func WithShadowMode() Option {
	return func(c *config) { c.shadow = true }
}

// WithHalfOpenGate makes the breaker ask gate, each time its open period
// ends, whether it may half-open now: gate returns 0 (or less) to let it,
// or how long to stay open before asking again. While gate says wait, the
// breaker stays Open and rejects every call as it did; ForceOpen, Reset and
// Follow still move it at any time. It is the hook a coordinator of many
// breakers uses to let one of them probe for all (leveeredis's fleet
// breaker); a breaker without it half-opens when its timer says so.
//
// gate runs on the open timer's goroutine, never on a call's and never
// while the breaker holds a lock, so it may read the breaker; it must be
// quick and must not block. A gate that panics lets the breaker half-open,
// and the panic is reported to otel.Handle. The call paths are unchanged:
// only the timer reads the gate. Default: none. gate must not be nil; New
// panics otherwise.
func WithHalfOpenGate(gate func() time.Duration) Option {
	return func(c *config) {
		if gate == nil {
			c.refuse("WithHalfOpenGate: gate must not be nil")
		}
		c.halfOpenGate = gate
	}
}

// check refuses the combinations no single option can see, once every
// option has been applied.
func (c *config) check() {
	if len(c.rules) > 1 {
		c.refuse(fmt.Sprintf("two trip rules, %s and %s: a breaker uses one (write a combination with WithTripRule)", c.rules[0], c.rules[1]))
	}
	if len(c.windows) > 1 {
		c.refuse(fmt.Sprintf("two windows, %s and %s: a breaker has one", c.windows[0], c.windows[1]))
	}
	windowed := len(c.windows) > 0
	switch c.rule {
	case ruleFailureRate, ruleSlowCallRate, ruleCustom:
		if !windowed {
			c.refuse(c.rules[len(c.rules)-1] + " needs a window: add WithCountWindow or WithTimeWindow")
		}
	}
	if c.rule == ruleSlowCallRate && c.slowDuration <= 0 {
		c.refuse("WithSlowCallRate needs WithSlowCallDuration: it says which calls are slow")
	}
	if c.slowDuration > 0 && !windowed {
		c.refuse("WithSlowCallDuration needs a window: add WithCountWindow or WithTimeWindow")
	}
	if c.minCallsGiven {
		switch {
		case c.rule != ruleFailureRate && c.rule != ruleSlowCallRate:
			c.refuse("WithMinCalls applies to WithFailureRate and WithSlowCallRate only")
		case c.countWindow > 0 && c.minCalls > c.countWindow:
			c.refuse(fmt.Sprintf("WithMinCalls(%d) above WithCountWindow(%d): the rate would never count", c.minCalls, c.countWindow))
		}
	}
	if c.backoffGiven && c.backoff.max > 0 && c.openTimeout > 0 && c.backoff.max < c.openTimeout {
		c.refuse(fmt.Sprintf("WithOpenBackoff: max (%v) below the open timeout (%v)", c.backoff.max, c.openTimeout))
	}
	if c.jitterSeed != nil && !c.backoffGiven {
		c.refuse("WithJitterSeed needs WithOpenBackoff: there is no jitter without it")
	}
}
