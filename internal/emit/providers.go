package emit

import (
	"fmt"
	"reflect"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/levee-go/levee/telemetry"
)

// Tracer returns levee's tracer from tp, or from the global TracerProvider
// when tp is nil. The tracer carries levee's instrumentation scope and
// version.
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer(telemetry.ScopeName, trace.WithInstrumentationVersion(Version()))
}

// Meter returns levee's meter from mp, or from the global MeterProvider when
// mp is nil. The meter carries levee's instrumentation scope and version.
func Meter(mp metric.MeterProvider) metric.Meter {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	return mp.Meter(telemetry.ScopeName, metric.WithInstrumentationVersion(Version()))
}

// Handle reports an error that telemetry met (an instrument that could not
// be created, a listener or an exporter that panicked) to the OpenTelemetry
// error handler, otel.Handle. Such errors never reach a guarded call.
func Handle(err error) {
	if err != nil {
		otel.Handle(err)
	}
}

// Guard runs f, recovering a panic in it and reporting the panic to Handle
// as what it was doing. Telemetry runs under Guard where it runs inside a
// user's call or on a goroutine of levee's: a span exporter that panics must
// neither replace the caller's result nor crash the process.
func Guard(what string, f func()) {
	defer func() {
		if r := recover(); r != nil {
			Handle(fmt.Errorf("levee: %s panicked: %v", what, r))
		}
	}()
	f()
}

// CheckProvider returns a problem naming option when p is nil, or an
// interface holding a nil pointer (var tp *sdktrace.TracerProvider): such a
// provider fails inside the SDK at the first call, far from the mistake.
func CheckProvider(option string, p any) string {
	if p == nil {
		return option + ": provider must not be nil"
	}
	if v := reflect.ValueOf(p); v.Kind() == reflect.Pointer && v.IsNil() {
		return fmt.Sprintf("%s: provider is a nil %T", option, p)
	}
	return ""
}
