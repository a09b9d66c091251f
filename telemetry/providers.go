package telemetry

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Tracer returns levee's tracer from tp, or from the global TracerProvider
// when tp is nil. The tracer carries levee's instrumentation scope and
// version.
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer(ScopeName, trace.WithInstrumentationVersion(Version()))
}

// Meter returns levee's meter from mp, or from the global MeterProvider when
// mp is nil. The meter carries levee's instrumentation scope and version.
func Meter(mp metric.MeterProvider) metric.Meter {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	return mp.Meter(ScopeName, metric.WithInstrumentationVersion(Version()))
}

// Handle reports an error that telemetry met (an instrument that could not
// be created, a callback that could not be registered, a listener that
// panicked) to the OpenTelemetry error handler, otel.Handle. Such errors
// never reach a guarded call: its result and error stay the caller's.
func Handle(err error) {
	if err != nil {
		otel.Handle(err)
	}
}
