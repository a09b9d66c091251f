package bulkhead

import (
	"context"

	"github.com/levee-go/levee/resilience"
)

// Policy returns a resilience.Policy that guards calls with b. One bulkhead
// may back policies of many result types, so that every call to one
// dependency shares its slots whatever it returns:
//
//	users := resilience.Wrap(getUser, bulkhead.Policy[User](db))
//	orders := resilience.Wrap(listOrders, bulkhead.Policy[[]Order](db))
//
// A refused call returns T's zero value and an error matching ErrFull. The
// policy is a resilience.TelemetrySource: a pipeline built around it reports
// its other policies under the bulkhead's name and providers, unless a
// breaker comes first or resilience.WrapWith says otherwise. b must not be
// nil; Policy panics otherwise.
func Policy[T any](b *Bulkhead) resilience.Policy[T] {
	if b == nil {
		panic("levee: bulkhead.Policy: bulkhead must not be nil")
	}
	return policy[T]{b: b}
}

type policy[T any] struct{ b *Bulkhead }

// Apply is not inlined: inlined into the instantiation's wrapper
// (policy[int].Apply calling policy[go.shape.int].Apply), it would have the
// closure compiled there, where takeFast and release are not inlined into
// it (16 instructions more per call, by callgrind). It runs once per
// pipeline, when Wrap builds it.
//
//go:noinline
func (p policy[T]) Apply(next resilience.Func[T]) resilience.Func[T] {
	b := p.b
	return func(ctx context.Context) (T, error) {
		// acquire, with its fast path inlined here: one call fewer.
		if ctx.Err() != nil || !b.takeFast() {
			if err := b.acquireSlow(ctx); err != nil {
				var zero T
				return zero, err
			}
		}
		defer b.release()
		return next(ctx)
	}
}

// Telemetry returns the bulkhead's name and the providers it was given (nil
// for the globals).
func (p policy[T]) Telemetry() resilience.Telemetry {
	return resilience.Telemetry{Name: p.b.name, TracerProvider: p.b.tel.tracerProvider, MeterProvider: p.b.tel.meterProvider}
}
