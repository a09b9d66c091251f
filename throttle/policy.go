package throttle

import (
	"context"

	"github.com/levee-go/levee/resilience"
)

// Policy returns a resilience.Policy that throttles calls with t. One
// throttle may back policies of many result types, so that every call to one
// dependency counts toward one history whatever it returns:
//
//	users := resilience.Wrap(getUser, throttle.Policy[User](backend))
//	orders := resilience.Wrap(listOrders, throttle.Policy[[]Order](backend))
//
// A refused call returns T's zero value and an error matching ErrThrottled.
// The policy is a resilience.TelemetrySource: a pipeline built around it
// reports its other policies under the throttle's name and providers, unless
// a breaker comes first or resilience.WrapWith says otherwise. t must not be
// nil; Policy panics otherwise.
func Policy[T any](t *Throttle) resilience.Policy[T] {
	if t == nil {
		panic("levee: throttle.Policy: throttle must not be nil")
	}
	return policy[T]{t: t}
}

type policy[T any] struct{ t *Throttle }

func (p policy[T]) Apply(next resilience.Func[T]) resilience.Func[T] {
	t := p.t
	return func(ctx context.Context) (T, error) { return execute(t, ctx, next) }
}

// Telemetry returns the throttle's name and the providers it was given (nil
// for the globals).
func (p policy[T]) Telemetry() resilience.Telemetry {
	return resilience.Telemetry{Name: p.t.name, TracerProvider: p.t.tel.tracerProvider, MeterProvider: p.t.tel.meterProvider}
}
