package telemetry_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/levee-go/levee/telemetry"
)

// The names are a contract with dashboards and alerts (DESIGN.md, "fixed
// names"): this test fails if one is renamed.
func TestNames_AreTheFixedContract(t *testing.T) {
	t.Parallel()
	fixed := [][2]string{
		{telemetry.ScopeName, "github.com/levee-go/levee"},
		{telemetry.MetricBreakerState, "levee.circuit_breaker.state"},
		{telemetry.MetricBreakerCalls, "levee.circuit_breaker.calls"},
		{telemetry.MetricBreakerTransitions, "levee.circuit_breaker.transitions"},
		{telemetry.MetricBreakerFailureRate, "levee.circuit_breaker.failure_rate"},
		{telemetry.MetricBreakerSlowCallRate, "levee.circuit_breaker.slow_call_rate"},
		{telemetry.MetricBreakerCallDuration, "levee.circuit_breaker.call.duration"},
		{telemetry.MetricTimeoutExceeded, "levee.timeout.exceeded"},
		{telemetry.MetricTimeoutAbandoned, "levee.timeout.abandoned"},
		{telemetry.MetricFallbackExecutions, "levee.fallback.executions"},
		{telemetry.MetricRetryAttempts, "levee.retry.attempts"},
		{telemetry.MetricRetryExhausted, "levee.retry.exhausted"},
		{telemetry.MetricRetryBudgetExhausted, "levee.retry.budget_exhausted"},
		{telemetry.MetricHedgeStarted, "levee.hedge.started"},
		{telemetry.MetricHedgeWins, "levee.hedge.wins"},
		{telemetry.MetricHedgeBudgetExhausted, "levee.hedge.budget_exhausted"},
		{telemetry.UnitState, "{state}"},
		{telemetry.UnitCall, "{call}"},
		{telemetry.UnitTransition, "{transition}"},
		{telemetry.UnitAttempt, "{attempt}"},
		{telemetry.MetricBulkheadCalls, "levee.bulkhead.calls"},
		{telemetry.MetricBulkheadInFlight, "levee.bulkhead.in_flight"},
		{telemetry.MetricBulkheadQueued, "levee.bulkhead.queued"},
		{telemetry.MetricRateLimitCalls, "levee.rate_limit.calls"},
		{telemetry.MetricRateLimitQueued, "levee.rate_limit.queued"},
		{telemetry.MetricRateLimitKeys, "levee.rate_limit.keys"},
		{telemetry.MetricRateLimitKeyOverflow, "levee.rate_limit.key_overflow"},
		{telemetry.MetricThrottleCalls, "levee.throttle.calls"},
		{telemetry.MetricThrottleProbability, "levee.throttle.probability"},
		{telemetry.UnitKey, "{key}"},
		{telemetry.UnitRatio, "1"},
		{telemetry.UnitSecond, "s"},
		{telemetry.SpanBreakerTransition, "levee.circuit_breaker.transition"},
		{telemetry.EventBreakerRejected, "levee.circuit_breaker.rejected"},
		{telemetry.EventTimeoutExceeded, "levee.timeout.exceeded"},
		{telemetry.EventFallbackExecuted, "levee.fallback.executed"},
		{telemetry.EventRetryScheduled, "levee.retry.scheduled"},
		{telemetry.EventRetryExhausted, "levee.retry.exhausted"},
		{telemetry.EventRetryBudgetExhausted, "levee.retry.budget_exhausted"},
		{telemetry.EventHedgeStarted, "levee.hedge.started"},
		{telemetry.EventBulkheadRejected, "levee.bulkhead.rejected"},
		{telemetry.EventBulkheadWaited, "levee.bulkhead.waited"},
		{telemetry.EventRateLimitRejected, "levee.rate_limit.rejected"},
		{telemetry.EventRateLimitWaited, "levee.rate_limit.waited"},
		{telemetry.EventThrottleRejected, "levee.throttle.rejected"},
		{string(telemetry.KeyPolicyName), "levee.policy.name"},
		{string(telemetry.KeyBreakerState), "levee.circuit_breaker.state"},
		{string(telemetry.KeyBreakerFrom), "levee.circuit_breaker.from"},
		{string(telemetry.KeyBreakerTo), "levee.circuit_breaker.to"},
		{string(telemetry.KeyBreakerConsecutiveFailures), "levee.circuit_breaker.consecutive_failures"},
		{string(telemetry.KeyBreakerForced), "levee.circuit_breaker.forced"},
		{string(telemetry.KeyBreakerTripRule), "levee.circuit_breaker.trip_rule"},
		{string(telemetry.KeyBreakerWindowCalls), "levee.circuit_breaker.window.calls"},
		{string(telemetry.KeyBreakerWindowFailures), "levee.circuit_breaker.window.failures"},
		{string(telemetry.KeyBreakerWindowSlowCalls), "levee.circuit_breaker.window.slow_calls"},
		{string(telemetry.KeyBreakerShadow), "levee.circuit_breaker.shadow"},
		{string(telemetry.KeyOutcome), "levee.outcome"},
		{string(telemetry.KeyTimeout), "levee.timeout.duration"},
		{string(telemetry.KeyRetryAttempt), "levee.retry.attempt"},
		{string(telemetry.KeyRetryDelay), "levee.retry.delay"},
		{string(telemetry.KeyRetryReason), "levee.retry.reason"},
		{string(telemetry.KeyHedgeAttempt), "levee.hedge.attempt"},
		{string(telemetry.KeyHedgeDelay), "levee.hedge.delay"},
		{string(telemetry.KeyBulkheadWait), "levee.bulkhead.wait"},
		{string(telemetry.KeyRateLimitWait), "levee.rate_limit.wait"},
		{string(telemetry.KeyRateLimitRetryAfter), "levee.rate_limit.retry_after"},
		{string(telemetry.KeyThrottleProbability), "levee.throttle.probability"},
		{string(telemetry.KeyErrorType), "error.type"},
		{telemetry.ErrorTypeTimeout, "timeout"},
		{telemetry.ErrorTypeCircuitOpen, "circuit_open"},
		{telemetry.ErrorTypeCanceled, "canceled"},
		{telemetry.ErrorTypeBulkheadFull, "bulkhead_full"},
		{telemetry.ErrorTypeRateLimited, "rate_limited"},
		{telemetry.ErrorTypeThrottled, "throttled"},
		{telemetry.ErrorTypeOther, "_OTHER"},
	}
	for _, name := range fixed {
		assert.Equal(t, name[1], name[0])
	}
	assert.Equal(t, telemetry.SpanBreakerTransition, telemetry.EventBreakerTransition,
		"the transition span and event share a name")
	assert.Equal(t, []string{"closed", "open", "half_open"},
		[]string{telemetry.StateClosed, telemetry.StateOpen, telemetry.StateHalfOpen})
	assert.Equal(t, []string{"max_attempts", "max_duration", "deadline", "max_delay"},
		[]string{telemetry.RetryReasonMaxAttempts, telemetry.RetryReasonMaxDuration, telemetry.RetryReasonDeadline, telemetry.RetryReasonMaxDelay})
	assert.Equal(t, []string{"success", "failure", "rejected", "ignored", "shadow_rejected"},
		[]string{telemetry.OutcomeSuccess, telemetry.OutcomeFailure, telemetry.OutcomeRejected, telemetry.OutcomeIgnored, telemetry.OutcomeShadowRejected})
	assert.Equal(t, []string{"consecutive_failures", "failure_rate", "slow_call_rate", "custom"},
		[]string{telemetry.TripRuleConsecutiveFailures, telemetry.TripRuleFailureRate, telemetry.TripRuleSlowCallRate, telemetry.TripRuleCustom})
	assert.Equal(t, []string{"admitted", "waited", "timed_out", "canceled"},
		[]string{telemetry.OutcomeAdmitted, telemetry.OutcomeWaited, telemetry.OutcomeTimedOut, telemetry.OutcomeCanceled})
}
