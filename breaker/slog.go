package breaker

import (
	"context"
	"log/slog"

	"github.com/levee-go/levee/telemetry"
)

// LogStateChanges returns a state-change listener, for
// WithStateChangeListener, that logs each transition to logger:
//
//	b := breaker.New("payments", breaker.WithStateChangeListener(breaker.LogStateChanges(logger)))
//
// The level says how bad the news is: a transition to Open logs
// "levee: circuit breaker opened" at slog.LevelError, to HalfOpen
// "levee: circuit breaker half-open" at slog.LevelWarn, and to Closed
// "levee: circuit breaker closed" at slog.LevelInfo. Each record carries
// the attributes of the levee.circuit_breaker.transition span, under the
// same keys: levee.policy.name, levee.circuit_breaker.from and
// levee.circuit_breaker.to (spelled "closed", "open", "half_open"),
// levee.circuit_breaker.consecutive_failures and
// levee.circuit_breaker.forced, and on a trip
// levee.circuit_breaker.trip_rule.
//
// A nil logger logs to slog.Default() as it is when each change happens, so
// a program may set its default logger after building its breakers. The
// listener is safe for concurrent use; the breaker delivers changes to it one
// at a time, in order.
func LogStateChanges(logger *slog.Logger) func(StateChange) {
	return func(c StateChange) {
		l := logger
		if l == nil {
			l = slog.Default()
		}
		level, msg := slog.LevelInfo, "levee: circuit breaker closed"
		switch c.To {
		case Open:
			level, msg = slog.LevelError, "levee: circuit breaker opened"
		case HalfOpen:
			level, msg = slog.LevelWarn, "levee: circuit breaker half-open"
		}
		ctx := context.Background()
		if !l.Enabled(ctx, level) {
			return
		}
		attrs := []slog.Attr{
			slog.String(string(telemetry.KeyPolicyName), c.Name),
			slog.String(string(telemetry.KeyBreakerFrom), c.From.telemetryValue()),
			slog.String(string(telemetry.KeyBreakerTo), c.To.telemetryValue()),
			slog.Int(string(telemetry.KeyBreakerConsecutiveFailures), c.ConsecutiveFailures),
			slog.Bool(string(telemetry.KeyBreakerForced), c.Forced),
		}
		if c.TripRule != "" {
			attrs = append(attrs, slog.String(string(telemetry.KeyBreakerTripRule), c.TripRule))
		}
		l.LogAttrs(ctx, level, msg, attrs...)
	}
}
