package emit_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/levee-go/levee/internal/emit"
	"github.com/levee-go/levee/telemetry/telemetrytest"
)

func TestAddEvent_OnRecordingSpanWithAttributes(t *testing.T) {
	t.Parallel()
	h := telemetrytest.New(t)
	ctx, span := h.StartSpan(context.Background(), "caller")
	emit.AddEvent(ctx, "something.happened", attribute.String("k", "v"))
	span.End()

	events := telemetrytest.EventsOn(h.Span("caller"), "something.happened")
	require.Len(t, events, 1)
	assert.Equal(t, []attribute.KeyValue{attribute.String("k", "v")}, events[0].Attributes)
}

func TestAddEvent_NothingWhenSpanIsNotRecording(t *testing.T) {
	t.Parallel()
	h := telemetrytest.New(t)
	remote := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{1},
		SpanID:     trace.SpanID{2},
		TraceFlags: trace.FlagsSampled,
		Remote:     true,
	})
	contexts := map[string]context.Context{
		"no span":            context.Background(),
		"non-recording span": trace.ContextWithSpanContext(context.Background(), remote),
	}
	for name, ctx := range contexts {
		require.False(t, trace.SpanFromContext(ctx).IsRecording(), name)
		assert.NotPanics(t, func() { emit.AddEvent(ctx, "something.happened") }, name)
	}
	_, ended := h.StartSpan(context.Background(), "ended")
	ended.End()
	require.False(t, ended.IsRecording())
	emit.AddEvent(trace.ContextWithSpan(context.Background(), ended), "something.happened")

	assert.Empty(t, h.Events("something.happened"), "no span got the event")
}

func TestTracerAndMeter_CarryLeveesScopeAndVersion(t *testing.T) {
	t.Parallel()
	h := telemetrytest.New(t)
	_, span := emit.Tracer(h.TracerProvider).Start(context.Background(), "s")
	span.End()
	counter, err := emit.Meter(h.MeterProvider).Int64Counter("c")
	require.NoError(t, err)
	counter.Add(context.Background(), 1)

	scope := h.Span("s").InstrumentationScope()
	assert.Equal(t, "github.com/levee-go/levee", scope.Name)
	assert.Equal(t, emit.Version(), scope.Version)
	inst := h.Instrument("c")
	assert.Equal(t, "github.com/levee-go/levee", inst.Scope.Name)
	assert.Equal(t, emit.Version(), inst.Scope.Version)
}

func TestRecording_TheSpanOnlyWhenItRecords(t *testing.T) {
	t.Parallel()
	h := telemetrytest.New(t)
	ctx, span := h.StartSpan(context.Background(), "caller")
	defer span.End()
	assert.Equal(t, span, emit.Recording(ctx), "a recording span is returned")
	remote := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled, Remote: true,
	}))
	assert.Nil(t, emit.Recording(remote), "a remote span context does not record")
	assert.Nil(t, emit.Recording(context.Background()), "no span")
}
