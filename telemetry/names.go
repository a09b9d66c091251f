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
	// MetricRetryAttempts is an Int64Counter, unit {attempt}: the attempts
	// a retry made after each call's first, counted when they end, by
	// outcome (success, failure, or ignored when the caller's context
	// ended during the attempt). A call whose first attempt succeeds adds
	// nothing.
	MetricRetryAttempts = "levee.retry.attempts"
	// MetricRetryExhausted is an Int64Counter, unit {call}: calls that
	// returned an error still worth retrying because a limit stopped the
	// retries, by reason (KeyRetryReason).
	MetricRetryExhausted = "levee.retry.exhausted"
	// MetricRetryBudgetExhausted is an Int64Counter, unit {call}: calls
	// whose retry the retry budget refused; they returned an error
	// matching retry.ErrBudgetExhausted.
	MetricRetryBudgetExhausted = "levee.retry.budget_exhausted"
	// MetricHedgeStarted is an Int64Counter, unit {attempt}: hedges
	// started, the attempts a hedge policy made beside each call's first
	// because no attempt had answered within the hedge delay.
	MetricHedgeStarted = "levee.hedge.started"
	// MetricHedgeWins is an Int64Counter, unit {call}: calls that started
	// at least one hedge and got a success, by the number of the attempt
	// that answered first (KeyHedgeAttempt: 1 for the first attempt).
	MetricHedgeWins = "levee.hedge.wins"
	// MetricHedgeBudgetExhausted is an Int64Counter, unit {attempt}: hedges
	// not started because the retry budget refused them.
	MetricHedgeBudgetExhausted = "levee.hedge.budget_exhausted"

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
	UnitAttempt    = "{attempt}"
	UnitKey        = "{key}"
	// UnitRatio is the unit of a dimensionless value, such as a
	// probability.
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
	// EventRetryScheduled is the span event for each retry, added when it
	// is decided, before its delay: the gap after it on the caller's span
	// is the wait.
	EventRetryScheduled = "levee.retry.scheduled"
	// EventRetryExhausted is the span event for a call that stopped
	// retrying because a limit said so.
	EventRetryExhausted = "levee.retry.exhausted"
	// EventRetryBudgetExhausted is the span event for a call whose retry
	// the retry budget refused.
	EventRetryBudgetExhausted = "levee.retry.budget_exhausted"
	// EventHedgeStarted is the span event for each hedge started.
	EventHedgeStarted = "levee.hedge.started"
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
	// tripped a breaker on a transition into the open state (1 for a failed
	// probe); 0 on every other transition.
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
	// KeyOutcome is the outcome of a call a breaker saw, or of an attempt
	// a retry made: one of the Outcome* values.
	KeyOutcome = attribute.Key("levee.outcome")
	// KeyTimeout is a timeout policy's duration, in seconds.
	KeyTimeout = attribute.Key("levee.timeout.duration")
	// KeyRetryAttempt is an attempt's number, the first attempt being 1:
	// on a retry's events, the attempt about to be made
	// (levee.retry.scheduled) or the attempts made (levee.retry.exhausted,
	// levee.retry.budget_exhausted). Events only, never a metric attribute.
	KeyRetryAttempt = attribute.Key("levee.retry.attempt")
	// KeyRetryDelay is how long a retry waits before its attempt, in
	// seconds. Events only.
	KeyRetryDelay = attribute.Key("levee.retry.delay")
	// KeyRetryReason is why a call stopped retrying an error still worth
	// retrying: one of the RetryReason* values.
	KeyRetryReason = attribute.Key("levee.retry.reason")
	// KeyHedgeAttempt is an attempt's number in a hedged call, the first
	// attempt being 1 and the first hedge 2. It is bounded by the policy's
	// WithMaxHedges.
	KeyHedgeAttempt = attribute.Key("levee.hedge.attempt")
	// KeyHedgeDelay is the hedge delay a hedge was started after, in
	// seconds. Events only.
	KeyHedgeDelay = attribute.Key("levee.hedge.delay")
	// KeyBulkheadWait is how long a call waited for a bulkhead's slot, in
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

// Values of KeyRetryReason.
const (
	// RetryReasonMaxAttempts: the call made every attempt WithMaxAttempts
	// allows.
	RetryReasonMaxAttempts = "max_attempts"
	// RetryReasonMaxDuration: the next retry would have started after the
	// call's WithMaxDuration.
	RetryReasonMaxDuration = "max_duration"
	// RetryReasonDeadline: the next retry would have started at or after
	// the caller's context's deadline.
	RetryReasonDeadline = "deadline"
	// RetryReasonMaxDelay: the error's RetryAfter hint asked for a longer
	// wait than the retry's maximum delay.
	RetryReasonMaxDelay = "max_delay"
)

// Values of KeyOutcome. A breaker's calls use all four; a retry's attempts
// success, failure and ignored.
const (
	// OutcomeSuccess: the guarded function returned no error, or an error
	// the breaker's failure predicate does not count.
	OutcomeSuccess = "success"
	// OutcomeFailure: the guarded function failed, or panicked.
	OutcomeFailure = "failure"
	// OutcomeRejected: the breaker refused the call without running it.
	OutcomeRejected = "rejected"
	// OutcomeIgnored: the call says nothing about the dependency: the
	// caller's own context ended (or was done on arrival), the error is one
	// the breaker was told to ignore (WithIsIgnored, breaker.Ignored), or
	// the call was a half-open probe that outlived its slot.
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
