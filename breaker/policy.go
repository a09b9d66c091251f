package breaker

import (
	"context"

	"github.com/levee-go/levee/resilience"
)

// Policy returns a resilience.Policy that guards calls with b. One breaker
// may back policies of many result types, so that every call to one
// dependency shares one state whatever it returns:
//
//	users := resilience.Wrap(getUser, breaker.Policy[User](db))
//	orders := resilience.Wrap(listOrders, breaker.Policy[[]Order](db))
//
// A rejected call returns T's zero value and an *OpenError. The policy is a
// resilience.TelemetrySource: a pipeline built around it reports its other
// policies (timeouts, fallbacks) under the breaker's name and providers,
// unless resilience.WrapWith says otherwise. b must not be nil; Policy
// panics otherwise.
func Policy[T any](b *Breaker) resilience.Policy[T] {
	if b == nil {
		panic("levee: breaker.Policy: breaker must not be nil")
	}
	return policy[T]{b: b}
}

type policy[T any] struct{ b *Breaker }

func (p policy[T]) Apply(next resilience.Func[T]) resilience.Func[T] {
	b := p.b
	return func(ctx context.Context) (T, error) { return execute(b, ctx, next) }
}

// Telemetry returns the breaker's name and the providers it was given (nil
// for the globals).
func (p policy[T]) Telemetry() resilience.Telemetry {
	return resilience.Telemetry{Name: p.b.name, TracerProvider: p.b.tel.tracerProvider, MeterProvider: p.b.tel.meterProvider}
}
