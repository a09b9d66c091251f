package bench

import (
	"context"
	"errors"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// threshold is the consecutive failures that open every breaker here.
const threshold = 5

var errDep = errors.New("dependency failed")

// work is the guarded function of every workload: as cheap as a function
// can be, so that what is measured is the policy around it.
//
//go:noinline
func work(context.Context) (int, error) { return 1, nil }

//go:noinline
func fail(context.Context) (int, error) { return 0, errDep }

// workFn and failFn are called through a variable, as a guarded function is.
var (
	workFn = work
	failFn = fail
)

// sink keeps results alive so that the compiler cannot drop a call.
var sink int

// sdk is an OpenTelemetry SDK as an application installs it: a
// MeterProvider with a ManualReader, and a TracerProvider that samples
// every span and hands it to an exporter that drops it.
type sdk struct {
	mp     *sdkmetric.MeterProvider
	reader *sdkmetric.ManualReader
	tp     *sdktrace.TracerProvider
}

func newSDK(b *testing.B) *sdk {
	reader := sdkmetric.NewManualReader()
	s := &sdk{
		mp:     sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)),
		reader: reader,
		tp: sdktrace.NewTracerProvider(
			sdktrace.WithSampler(sdktrace.AlwaysSample()),
			sdktrace.WithSyncer(tracetest.NewNoopExporter())),
	}
	b.Cleanup(func() {
		_ = s.mp.Shutdown(context.Background())
		_ = s.tp.Shutdown(context.Background())
	})
	return s
}

// spanCtx returns a context carrying a sampled, recording span, as a
// request handler's context does under an instrumented server.
func (s *sdk) spanCtx(b *testing.B) context.Context {
	ctx, span := s.tp.Tracer("bench").Start(context.Background(), "request")
	if !span.IsRecording() {
		b.Fatal("the parent span is not recording")
	}
	b.Cleanup(func() { span.End() })
	return ctx
}

// recording reports whether ctx carries a recording span.
func recording(ctx context.Context) bool { return trace.SpanFromContext(ctx).IsRecording() }
