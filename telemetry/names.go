package telemetry

import "go.opentelemetry.io/otel/attribute"

// ScopeName is the instrumentation scope of every tracer and meter levee
// creates: the module's import path.
const ScopeName = "github.com/levee-go/levee"

// Metric names. Each is documented with its kind, unit and attributes in
// docs/telemetry.md.
const (
	// MetricBreakerState is an Int64ObservableUpDownCounter, unit {state}:
	// 1 for a breaker's current state and 0 for its other states, reported
	// from the breaker's construction on.
	MetricBreakerState = "levee.circuit_breaker.state"
	// MetricBreakerCalls is an Int64ObservableCounter, unit {call}: the
	// calls a breaker has seen, by outcome.
	MetricBreakerCalls = "levee.circuit_breaker.calls"
	// MetricBreakerTransitions is an Int64Counter, unit {transition}: state
	// changes, by from and to state.
	MetricBreakerTransitions = "levee.circuit_breaker.transitions"
	// MetricTimeoutExceeded is an Int64Counter, unit {call}: calls whose
	// timeout fired before the function returned.
	MetricTimeoutExceeded = "levee.timeout.exceeded"
	// MetricTimeoutAbandoned is an Int64Counter, unit {call}: functions
	// left running by a ReturnAtDeadline timeout that returned at its
	// deadline or when its caller gave up, counted when they finally
	// return and their result is dropped.
	MetricTimeoutAbandoned = "levee.timeout.abandoned"
	// MetricFallbackExecutions is an Int64Counter, unit {call}: calls a
	// fallback answered, by the type of the error it replaced.
	MetricFallbackExecutions = "levee.fallback.executions"

	// MetricBulkheadCalls is an Int64ObservableCounter, unit {call}: the
	// calls a bulkhead has decided, by outcome (OutcomeAdmitted,
	// OutcomeWaited, OutcomeRejected, OutcomeTimedOut, OutcomeCanceled).
	MetricBulkheadCalls = "levee.bulkhead.calls"
	// MetricBulkheadInFlight is an Int64ObservableUpDownCounter, unit
	// {call}: the calls holding a slot of a bulkhead now.
	MetricBulkheadInFlight = "levee.bulkhead.in_flight"
	// MetricBulkheadQueued is an Int64ObservableUpDownCounter, unit {call}:
	// the calls waiting for a slot of a bulkhead now.
	MetricBulkheadQueued = "levee.bulkhead.queued"

	// MetricRateLimitCalls is an Int64ObservableCounter, unit {call}: the
	// calls a rate limit has decided, by outcome (OutcomeAdmitted,
	// OutcomeWaited, OutcomeRejected, OutcomeCanceled).
	MetricRateLimitCalls = "levee.rate_limit.calls"
	// MetricRateLimitQueued is an Int64ObservableUpDownCounter, unit
	// {call}: the calls waiting for their token now.
	MetricRateLimitQueued = "levee.rate_limit.queued"
	// MetricRateLimitKeys is an Int64ObservableUpDownCounter, unit {key}:
	// the keys a keyed rate limit tracks now.
	MetricRateLimitKeys = "levee.rate_limit.keys"
	// MetricRateLimitKeyOverflow is an Int64ObservableCounter, unit {call}:
	// calls of a keyed rate limit decided by its shared overflow limit,
	// because their key was not tracked and no room was left for it.
	MetricRateLimitKeyOverflow = "levee.rate_limit.key_overflow"

	// MetricThrottleCalls is an Int64ObservableCounter, unit {call}: the
	// calls an adaptive throttle has seen, by outcome (OutcomeSuccess: the
	// dependency accepted it; OutcomeFailure; OutcomeRejected: throttled
	// locally; OutcomeIgnored).
	MetricThrottleCalls = "levee.throttle.calls"
	// MetricThrottleProbability is a Float64ObservableGauge, unit 1: the
	// probability with which a throttle rejects the next call.
	MetricThrottleProbability = "levee.throttle.probability"
)

// Units, in UCUM annotation form as OpenTelemetry semantic conventions use.
const (
	UnitState      = "{state}"
	UnitCall       = "{call}"
	UnitTransition = "{transition}"
	UnitKey        = "{key}"
	// UnitRatio is the unit of a dimensionless value, such as a
	// probability.
	UnitRatio = "1"
)

// Span and span event names.
const (
	// SpanBreakerTransition names the INTERNAL span started for each state
	// change, and the event added to the caller's span for it.
	SpanBreakerTransition = "levee.circuit_breaker.transition"
	// EventBreakerTransition is the span event for a state change.
	EventBreakerTransition = "levee.circuit_breaker.transition"
	// EventBreakerRejected is the span event for a call a breaker rejected.
	EventBreakerRejected = "levee.circuit_breaker.rejected"
	// EventTimeoutExceeded is the span event for a call whose timeout fired.
	EventTimeoutExceeded = "levee.timeout.exceeded"
	// EventFallbackExecuted is the span event for a call a fallback answered.
	EventFallbackExecuted = "levee.fallback.executed"
	// EventBulkheadRejected is the span event for a call a bulkhead refused
	// with ErrFull: at once, or when its wait for a slot ran out.
	EventBulkheadRejected = "levee.bulkhead.rejected"
	// EventBulkheadWaited is the span event for a call that waited for a
	// slot and got one, or whose context ended while it waited.
	EventBulkheadWaited = "levee.bulkhead.waited"
	// EventRateLimitRejected is the span event for a call a rate limit
	// refused with ErrLimited.
	EventRateLimitRejected = "levee.rate_limit.rejected"
	// EventRateLimitWaited is the span event for a call that waited for
	// its token, and got it or saw its context end first.
	EventRateLimitWaited = "levee.rate_limit.waited"
	// EventThrottleRejected is the span event for a call an adaptive
	// throttle rejected locally.
	EventThrottleRejected = "levee.throttle.rejected"
)

// Attribute keys.
const (
	// KeyPolicyName is the instance name given to a policy at construction.
	// It is never empty.
	KeyPolicyName = attribute.Key("levee.policy.name")
	// KeyBreakerState is a breaker state: one of the State* values.
	KeyBreakerState = attribute.Key("levee.circuit_breaker.state")
	// KeyBreakerFrom is the state a transition left: one of the State* values.
	KeyBreakerFrom = attribute.Key("levee.circuit_breaker.from")
	// KeyBreakerTo is the state a transition entered: one of the State* values.
	KeyBreakerTo = attribute.Key("levee.circuit_breaker.to")
	// KeyBreakerConsecutiveFailures is the consecutive-failure count that
	// tripped a breaker, on transitions into the open state.
	KeyBreakerConsecutiveFailures = attribute.Key("levee.circuit_breaker.consecutive_failures")
	// KeyBreakerForced is true on transitions an operator caused
	// (ForceOpen, Reset) rather than the calls.
	KeyBreakerForced = attribute.Key("levee.circuit_breaker.forced")
	// KeyOutcome is the outcome of a call a breaker saw: one of the Outcome*
	// values.
	KeyOutcome = attribute.Key("levee.outcome")
	// KeyTimeout is a timeout policy's duration, in seconds.
	KeyTimeout = attribute.Key("levee.timeout.duration")
	// KeyBulkheadWait is how long a call waited for a bulkhead's slot, in
	// seconds. Events only.
	KeyBulkheadWait = attribute.Key("levee.bulkhead.wait")
	// KeyRateLimitWait is how long a call waited for a rate limit's
	// token, in seconds. Events only.
	KeyRateLimitWait = attribute.Key("levee.rate_limit.wait")
	// KeyRateLimitRetryAfter is how long a rejected call should wait
	// before a token is there, in seconds. Events only.
	KeyRateLimitRetryAfter = attribute.Key("levee.rate_limit.retry_after")
	// KeyThrottleProbability is the rejection probability a throttle
	// applied to a call. Events only.
	KeyThrottleProbability = attribute.Key("levee.throttle.probability")
	// KeyErrorType is the OpenTelemetry semantic-convention key error.type.
	// Its values are bounded: see ErrorType.
	KeyErrorType = attribute.Key("error.type")
)

// Values of KeyBreakerState, KeyBreakerFrom and KeyBreakerTo.
const (
	StateClosed   = "closed"
	StateOpen     = "open"
	StateHalfOpen = "half_open"
)

// Values of KeyOutcome.
const (
	// OutcomeSuccess: the guarded function returned no error, or an error
	// the breaker's failure predicate does not count.
	OutcomeSuccess = "success"
	// OutcomeFailure: the guarded function failed, or panicked.
	OutcomeFailure = "failure"
	// OutcomeRejected: the breaker refused the call without running it.
	OutcomeRejected = "rejected"
	// OutcomeIgnored: the call ended because the caller's own context
	// ended; it says nothing about the dependency.
	OutcomeIgnored = "ignored"
	// OutcomeAdmitted: a bulkhead or rate limit let the call through at
	// once, without waiting.
	OutcomeAdmitted = "admitted"
	// OutcomeWaited: the call waited for a bulkhead's slot or a rate
	// limit's token, then ran.
	OutcomeWaited = "waited"
	// OutcomeTimedOut: the call waited for a bulkhead's slot until its
	// maximum wait passed, then was refused.
	OutcomeTimedOut = "timed_out"
	// OutcomeCanceled: the caller's own context ended before the call got
	// its slot or token (before it arrived, or while it waited).
	OutcomeCanceled = "canceled"
)
