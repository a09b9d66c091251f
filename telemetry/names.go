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
	// changes, by from and to state (and, on trips, by trip rule).
	MetricBreakerTransitions = "levee.circuit_breaker.transitions"
	// MetricBreakerFailureRate is a Float64ObservableGauge, unit 1: the
	// share of failed calls in the window of a breaker that has one.
	MetricBreakerFailureRate = "levee.circuit_breaker.failure_rate"
	// MetricBreakerSlowCallRate is a Float64ObservableGauge, unit 1: the
	// share of slow calls in the window of a breaker that has one and a
	// slow-call duration.
	MetricBreakerSlowCallRate = "levee.circuit_breaker.slow_call_rate"
	// MetricBreakerCallDuration is a Float64Histogram, unit s: how long the
	// calls a breaker ran took, by outcome; only for breakers that ask for it.
	// The name follows the semantic conventions' rpc.client.call.duration.
	MetricBreakerCallDuration = "levee.circuit_breaker.call.duration"
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
)

// Units, in UCUM annotation form as OpenTelemetry semantic conventions use.
const (
	UnitState      = "{state}"
	UnitCall       = "{call}"
	UnitTransition = "{transition}"
	// UnitRatio is the unit of a share of a whole, between 0 and 1.
	UnitRatio = "1"
	// UnitSecond is the unit of durations.
	UnitSecond = "s"
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
	// KeyBreakerTripRule is the rule that tripped a breaker, on transitions
	// from the closed state to the open state that calls caused: one of the
	// TripRule* values.
	KeyBreakerTripRule = attribute.Key("levee.circuit_breaker.trip_rule")
	// KeyBreakerWindowCalls, KeyBreakerWindowFailures and
	// KeyBreakerWindowSlowCalls are the counts of a breaker's window when it
	// tripped (span and event attributes, never metric attributes).
	KeyBreakerWindowCalls     = attribute.Key("levee.circuit_breaker.window.calls")
	KeyBreakerWindowFailures  = attribute.Key("levee.circuit_breaker.window.failures")
	KeyBreakerWindowSlowCalls = attribute.Key("levee.circuit_breaker.window.slow_calls")
	// KeyBreakerShadow is true on the rejected event of a call that shadow
	// mode let through.
	KeyBreakerShadow = attribute.Key("levee.circuit_breaker.shadow")
	// KeyOutcome is the outcome of a call a breaker saw: one of the Outcome*
	// values.
	KeyOutcome = attribute.Key("levee.outcome")
	// KeyTimeout is a timeout policy's duration, in seconds.
	KeyTimeout = attribute.Key("levee.timeout.duration")
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
	// OutcomeShadowRejected: the breaker would have refused the call, and
	// ran it because it is in shadow mode.
	OutcomeShadowRejected = "shadow_rejected"
)

// Values of KeyBreakerTripRule.
const (
	// TripRuleConsecutiveFailures: consecutive failures reached the threshold.
	TripRuleConsecutiveFailures = "consecutive_failures"
	// TripRuleFailureRate: the failure rate of the window reached its threshold.
	TripRuleFailureRate = "failure_rate"
	// TripRuleSlowCallRate: the slow-call rate of the window reached its threshold.
	TripRuleSlowCallRate = "slow_call_rate"
	// TripRuleCustom: the breaker's own trip function said so.
	TripRuleCustom = "custom"
)
