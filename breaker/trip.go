package breaker

import (
	"fmt"
	"strconv"

	"github.com/levee-go/levee/internal/emit"
	"github.com/levee-go/levee/telemetry"
)

// tripRule is what opens a closed breaker. A breaker has exactly one.
type tripRule uint8

const (
	ruleNone         tripRule = iota // not a trip: the zero value of a cause
	ruleConsecutive                  // WithFailureThreshold, the default
	ruleFailureRate                  // WithFailureRate
	ruleSlowCallRate                 // WithSlowCallRate
	ruleCustom                       // WithTripRule
)

// telemetryValue is the rule as levee.circuit_breaker.trip_rule and
// StateChange.TripRule spell it; "" for no rule.
func (r tripRule) telemetryValue() string {
	switch r {
	case ruleConsecutive:
		return telemetry.TripRuleConsecutiveFailures
	case ruleFailureRate:
		return telemetry.TripRuleFailureRate
	case ruleSlowCallRate:
		return telemetry.TripRuleSlowCallRate
	case ruleCustom:
		return telemetry.TripRuleCustom
	}
	return ""
}

// WindowCounts are what a breaker's window holds (WithCountWindow,
// WithTimeWindow): the calls of the recent past that count, and the current
// streak of failures. They are what WithTripRule's function decides on, and
// what StateChange reports when the breaker trips.
type WindowCounts struct {
	// Calls are the calls in the window that counted: successes and
	// failures. Calls that counted neither way (the caller's context
	// ended, WithIsIgnored) are not in the window.
	Calls int64
	// Failures are the calls of the window that failed or panicked.
	Failures int64
	// SlowCalls are the calls of the window that took longer than
	// WithSlowCallDuration, whether they succeeded or failed; 0 without it.
	SlowCalls int64
	// ConsecutiveFailures is the current streak of failures, which a
	// success ends. It is counted with or without a window.
	ConsecutiveFailures int64
}

// FailureRate returns Failures / Calls, 0 for an empty window.
func (c WindowCounts) FailureRate() float64 { return rate(c.Failures, c.Calls) }

// SlowCallRate returns SlowCalls / Calls, 0 for an empty window.
func (c WindowCounts) SlowCallRate() float64 { return rate(c.SlowCalls, c.Calls) }

func rate(part, whole int64) float64 {
	if whole <= 0 {
		return 0
	}
	return float64(part) / float64(whole)
}

// atLeast reports whether part is at least ratio of whole.
func atLeast(part, whole int64, ratio float64) bool {
	return float64(part) >= ratio*float64(whole)
}

// trips reports whether the breaker's rule opens it after a call that
// failed (failed) or was slow (slow) left its window with counts c.
func (b *Breaker) trips(c WindowCounts, failed, slow bool) bool {
	switch b.rule {
	case ruleConsecutive:
		return failed && c.ConsecutiveFailures >= b.failureThreshold
	case ruleFailureRate:
		return failed && c.Calls >= b.rules.minCalls && atLeast(c.Failures, c.Calls, b.rules.failureRate)
	case ruleSlowCallRate:
		return slow && c.Calls >= b.rules.minCalls && atLeast(c.SlowCalls, c.Calls, b.rules.slowCallRate)
	case ruleCustom:
		return b.askTripFunc(c) // recordClosed asks after failures and slow calls only
	}
	return false
}

// askTripFunc calls the WithTripRule function. A panic in it is reported to
// otel.Handle and does not trip the breaker.
func (b *Breaker) askTripFunc(c WindowCounts) (tripped bool) {
	defer func() {
		if r := recover(); r != nil {
			emit.Handle(fmt.Errorf("levee: circuit breaker %s: the WithTripRule function panicked: %v", strconv.Quote(b.name), r))
			tripped = false
		}
	}()
	return b.rules.tripFunc(c)
}
