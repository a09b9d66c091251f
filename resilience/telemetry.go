package resilience

import (
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/levee-go/levee/internal/emit"
)

// Telemetry says how the policies of one pipeline report themselves: under
// which name (the levee.policy.name attribute) and to which OpenTelemetry
// providers. Give it once, to WrapWith, and every policy the pipeline builds
// (a Timeout, a fallback, a retry, a hedge) reports under it.
//
// A field left zero is filled in by Wrap and WrapWith: from the first
// policy of the pipeline that has telemetry of its own (a breaker, which is
// named and given providers when it is created), and otherwise the name of
// the guarded function and the global providers (otel.GetTracerProvider,
// otel.GetMeterProvider). So a pipeline built around a breaker needs no
// Telemetry at all, and two pipelines never share series by accident.
//
// A Telemetry is a plain value, safe to copy and to share.
type Telemetry struct {
	// Name is the pipeline's name, reported as levee.policy.name by its
	// policies. Name one pipeline per dependency and operation: "pricing".
	Name string
	// TracerProvider gives the policies their tracer. Default (nil): the
	// global TracerProvider.
	TracerProvider trace.TracerProvider
	// MeterProvider gives the policies their meter. Default (nil): the
	// global MeterProvider.
	MeterProvider metric.MeterProvider
}

// Tracer returns levee's tracer from the TracerProvider (the global one when
// it is nil), with levee's instrumentation scope and version. It is for
// authors of policies of their own, in ApplyWith.
func (t Telemetry) Tracer() trace.Tracer { return emit.Tracer(t.TracerProvider) }

// Meter returns levee's meter from the MeterProvider (the global one when it
// is nil), with levee's instrumentation scope and version. It is for authors
// of policies of their own, in ApplyWith: create instruments there, once per
// pipeline, never per call.
func (t Telemetry) Meter() metric.Meter { return emit.Meter(t.MeterProvider) }

// TelemetryPolicy is a Policy that reports under its pipeline's Telemetry.
// Wrap and WrapWith call ApplyWith instead of Apply, with the pipeline's
// Telemetry, fields filled in. levee's Timeout, fallbacks, retries and hedges
// are TelemetryPolicies; a policy of your own can be one too.
type TelemetryPolicy[T any] interface {
	Policy[T]
	ApplyWith(tel Telemetry, next Func[T]) Func[T]
}

// TelemetrySource is a policy that has telemetry of its own, given when it
// was created: a breaker's Policy reports the breaker's name and providers.
// Wrap takes the pipeline's Telemetry from the first TelemetrySource among
// its policies, field by field, where WrapWith was not given one.
type TelemetrySource interface {
	Telemetry() Telemetry
}

// Named returns p reporting under name, whatever the pipeline's Telemetry
// says: for a pipeline that holds two policies of one kind, such as a
// Timeout around the whole call and one around each attempt of a retry:
//
//	resilience.Named("per-attempt", resilience.Timeout[Price](time.Second))
//
// It renames a TelemetryPolicy only; any other policy is returned as it is,
// so a breaker keeps the name it was created with and still gives the
// pipeline its telemetry. name must not be empty and p must not be nil;
// Named panics otherwise.
func Named[T any](name string, p Policy[T]) Policy[T] {
	if name == "" {
		panic("levee: resilience.Named: name must not be empty")
	}
	if p == nil {
		panic("levee: resilience.Named(" + quote(name) + "): policy must not be nil")
	}
	if _, ok := p.(TelemetryPolicy[T]); !ok {
		// Wrapping it would hide a TelemetrySource (a breaker) from Wrap.
		return p
	}
	return named[T]{name: name, p: p}
}

type named[T any] struct {
	name string
	p    Policy[T]
}

func (n named[T]) Apply(next Func[T]) Func[T] { return n.ApplyWith(Telemetry{}, next) }

func (n named[T]) ApplyWith(tel Telemetry, next Func[T]) Func[T] {
	tel.Name = n.name
	return apply(n.p, tel, next)
}

// apply applies p to next, with tel when p reports under its pipeline's
// Telemetry.
func apply[T any](p Policy[T], tel Telemetry, next Func[T]) Func[T] {
	if tp, ok := p.(TelemetryPolicy[T]); ok {
		return tp.ApplyWith(tel, next)
	}
	return p.Apply(next)
}
