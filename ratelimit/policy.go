package ratelimit

import (
	"context"

	"github.com/levee-go/levee/resilience"
)

// Policy returns a resilience.Policy that limits calls with l. One limiter
// may back policies of many result types, so that every call to one
// dependency draws on one bucket whatever it returns:
//
//	users := resilience.Wrap(getUser, ratelimit.Policy[User](api))
//	orders := resilience.Wrap(listOrders, ratelimit.Policy[[]Order](api))
//
// A refused call returns T's zero value and a *LimitedError. The policy is a
// resilience.TelemetrySource: a pipeline built around it reports its other
// policies under the limiter's name and providers, unless a breaker comes
// first or resilience.WrapWith says otherwise. l must not be nil; Policy
// panics otherwise.
func Policy[T any](l *Limiter) resilience.Policy[T] {
	if l == nil {
		panic("levee: ratelimit.Policy: limiter must not be nil")
	}
	return policy[T]{l: l}
}

type policy[T any] struct{ l *Limiter }

func (p policy[T]) Apply(next resilience.Func[T]) resilience.Func[T] {
	l := p.l
	return func(ctx context.Context) (T, error) {
		if err := l.admit(ctx); err != nil {
			var zero T
			return zero, err
		}
		return next(ctx)
	}
}

// Telemetry returns the limiter's name and the providers it was given (nil
// for the globals).
func (p policy[T]) Telemetry() resilience.Telemetry {
	return resilience.Telemetry{Name: p.l.name, TracerProvider: p.l.tel.tracerProvider, MeterProvider: p.l.tel.meterProvider}
}
