package emit_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/levee-go/levee/internal/emit"
	"github.com/levee-go/levee/internal/testkit"
	"github.com/levee-go/levee/telemetry/telemetrytest"
)

func TestCheckProvider_RefusesNilAndNilPointersNamingTheOption(t *testing.T) {
	t.Parallel()
	var tp *sdktrace.TracerProvider
	var mp *sdkmetric.MeterProvider
	tests := []struct {
		name     string
		provider any
		want     string
	}{
		{"nil", nil, "WithMeterProvider: provider must not be nil"},
		{"typed-nil tracer provider", trace.TracerProvider(tp), "WithMeterProvider: provider is a nil *trace.TracerProvider"},
		{"typed-nil meter provider", metric.MeterProvider(mp), "WithMeterProvider: provider is a nil *metric.MeterProvider"},
		{"a provider", sdkmetric.NewMeterProvider(), ""},
		{"a value provider", metricnoop.NewMeterProvider(), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, emit.CheckProvider("WithMeterProvider", tt.provider))
		})
	}
}

// Not parallel: it installs global providers and an error handler.
func TestTracerAndMeter_NilMeansTheGlobalProviders(t *testing.T) {
	h := telemetrytest.New(t)
	previousTP, previousMP := otel.GetTracerProvider(), otel.GetMeterProvider()
	otel.SetTracerProvider(h.TracerProvider)
	otel.SetMeterProvider(h.MeterProvider)
	t.Cleanup(func() {
		otel.SetTracerProvider(previousTP)
		otel.SetMeterProvider(previousMP)
	})

	_, span := emit.Tracer(nil).Start(context.Background(), "global")
	span.End()
	counter, err := emit.Meter(nil).Int64Counter("global.counter")
	require.NoError(t, err)
	counter.Add(context.Background(), 3)

	assert.Equal(t, "github.com/levee-go/levee", h.Span("global").InstrumentationScope().Name)
	assert.Equal(t, int64(3), h.Int64("global.counter"))
	_, noop := emit.Tracer(tracenoop.NewTracerProvider()).Start(context.Background(), "given")
	assert.False(t, noop.IsRecording(), "a provider given is used, not the global one")
}

// Not parallel: it captures what reaches the global error handler.
func TestHandleAndGuard_ReportToTheErrorHandlerAndNeverReachTheCaller(t *testing.T) {
	reported := testkit.CaptureOTelErrors(t)
	errExport := errors.New("export failed")

	emit.Handle(nil)
	assert.Empty(t, reported.Take(), "Handle(nil) reports nothing")
	emit.Handle(errExport)
	assert.Equal(t, []error{errExport}, reported.Take())

	ran := false
	assert.NotPanics(t, func() { emit.Guard("breaker telemetry", func() { ran = true }) })
	assert.True(t, ran)
	assert.Empty(t, reported.Take(), "nothing to report")

	assert.NotPanics(t, func() { emit.Guard("breaker telemetry", func() { panic("exporter exploded") }) })
	errs := reported.Take()
	require.Len(t, errs, 1)
	assert.EqualError(t, errs[0], "levee: breaker telemetry panicked: exporter exploded")
}
