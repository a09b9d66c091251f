package fallback_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
	"go.opentelemetry.io/otel/trace"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/fallback"
	"github.com/levee-go/levee/internal/fakeclock"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/telemetry"
	"github.com/levee-go/levee/telemetry/telemetrytest"
)

// Tests of the fallback rows of docs/telemetry.md: the
// levee.fallback.executions metric and the levee.fallback.executed event.

// telQuotaError is a user's error type: error.type is its Go type name.
type telQuotaError struct{ tenant string }

func (e *telQuotaError) Error() string { return "quota exceeded for tenant " + e.tenant }

// telOptions makes a fallback named name report to h.
func telOptions(h *telemetrytest.Harness, name string, opts ...fallback.Option) []fallback.Option {
	return append([]fallback.Option{
		fallback.WithName(name),
		fallback.WithTracerProvider(h.TracerProvider),
		fallback.WithMeterProvider(h.MeterProvider),
	}, opts...)
}

func telFailWith(err error) resilience.Func[string] {
	return func(context.Context) (string, error) { return "", err }
}

func TestFallbackTelemetry_ExecutionsByErrorType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		err           error
		wantErrorType string
	}{
		{"breaker rejection", &breaker.OpenError{Name: "prices", State: breaker.Open}, "circuit_open"},
		{"levee timeout", fmt.Errorf("fetch: %w", resilience.ErrTimeout), "timeout"},
		{"context deadline", context.DeadlineExceeded, "timeout"},
		{"context canceled", context.Canceled, "canceled"},
		{"user error type through %w", fmt.Errorf("fetch: %w", &telQuotaError{tenant: "42"}), "*fallback_test.telQuotaError"},
		{"plain errors.New", errors.New("connection refused by 10.0.0.7"), "_OTHER"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := telemetrytest.New(t)
			for _, p := range []resilience.Policy[string]{
				fallback.Value("cached", telOptions(h, "prices-value")...),
				fallback.Func(func(context.Context, error) (string, error) { return "computed", nil }, telOptions(h, "prices-func")...),
			} {
				ctx, caller := h.StartSpan(context.Background(), "GET /price")
				v, err := resilience.Do(ctx, telFailWith(tt.err), p)
				caller.End()
				require.NoError(t, err)
				require.NotEmpty(t, v)
			}

			inst := h.Instrument(telemetry.MetricFallbackExecutions)
			assert.Equal(t, sdkmetric.InstrumentKindCounter, inst.Kind)
			assert.Equal(t, telemetry.ScopeName, inst.Scope.Name)
			got := h.Metric(telemetry.MetricFallbackExecutions)
			assert.NotEmpty(t, got.Description)
			point := func(name string) metricdata.DataPoint[int64] {
				return metricdata.DataPoint[int64]{Value: 1, Attributes: attribute.NewSet(
					telemetry.KeyPolicyName.String(name),
					telemetry.KeyErrorType.String(tt.wantErrorType),
				)}
			}
			metricdatatest.AssertEqual(t, metricdata.Metrics{
				Name:        telemetry.MetricFallbackExecutions,
				Description: got.Description,
				Unit:        "{call}",
				Data: metricdata.Sum[int64]{
					Temporality: metricdata.CumulativeTemporality,
					IsMonotonic: true,
					DataPoints:  []metricdata.DataPoint[int64]{point("prices-value"), point("prices-func")},
				},
			}, got, metricdatatest.IgnoreTimestamp(), metricdatatest.IgnoreExemplars())

			spans := h.Spans("GET /price")
			require.Len(t, spans, 2)
			for i, name := range []string{"prices-value", "prices-func"} {
				events := spans[i].Events()
				require.Len(t, events, 1, name)
				assert.Equal(t, telemetry.EventFallbackExecuted, events[0].Name)
				assert.ElementsMatch(t, []attribute.KeyValue{
					telemetry.KeyPolicyName.String(name),
					telemetry.KeyErrorType.String(tt.wantErrorType),
				}, events[0].Attributes)
			}
			assert.Len(t, h.Spans(""), 2, "a fallback starts no span of its own")
		})
	}
}

func TestFallbackTelemetry_NothingWhenTheFallbackDoesNotRun(t *testing.T) {
	t.Parallel()
	h := telemetrytest.New(t)
	errIgnored := errors.New("not for the fallback")
	p := fallback.Value("cached", telOptions(h, "prices", fallback.If(func(err error) bool { return !errors.Is(err, errIgnored) }))...)
	ctx, caller := h.StartSpan(context.Background(), "GET /price")

	v, err := resilience.Do(ctx, func(context.Context) (string, error) { return "fresh", nil }, p)
	require.NoError(t, err)
	require.Equal(t, "fresh", v)
	_, err = resilience.Do(ctx, telFailWith(errIgnored), p)
	require.ErrorIs(t, err, errIgnored)
	caller.End()

	h.AssertInt64(telemetry.MetricFallbackExecutions, 0)
	assert.Empty(t, h.Span("GET /price").Events())
}

func TestFallbackTelemetry_NoEventWhenTheCallersSpanIsNotRecording(t *testing.T) {
	t.Parallel()
	h := telemetrytest.New(t)
	p := fallback.Value("cached", telOptions(h, "prices")...)
	remote := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled, Remote: true})

	for _, ctx := range []context.Context{context.Background(), trace.ContextWithRemoteSpanContext(context.Background(), remote)} {
		v, err := resilience.Do(ctx, telFailWith(errors.New("down")), p)
		require.NoError(t, err)
		require.Equal(t, "cached", v)
	}

	h.AssertInt64(telemetry.MetricFallbackExecutions, 2, telemetry.KeyPolicyName.String("prices"), telemetry.KeyErrorType.String("_OTHER"))
	assert.Empty(t, h.Spans(""), "no span, so no event, anywhere")
}

func TestFallbackTelemetry_DefaultName(t *testing.T) {
	t.Parallel()
	h := telemetrytest.New(t)
	p := fallback.Value("cached", fallback.WithTracerProvider(h.TracerProvider), fallback.WithMeterProvider(h.MeterProvider))
	_, err := resilience.Do(context.Background(), telFailWith(errors.New("down")), p)
	require.NoError(t, err)

	h.AssertInt64(telemetry.MetricFallbackExecutions, 1, telemetry.KeyPolicyName.String(fallback.DefaultName))
	assert.Equal(t, "fallback", fallback.DefaultName)
}

// The advised pipeline, fallback outside a breaker outside a timeout: the
// caller's span tells the whole story of a degraded answer, in order.
func TestFallbackTelemetry_PipelineStoryOnTheCallersSpan(t *testing.T) {
	t.Parallel()
	h := telemetrytest.New(t)
	clock := fakeclock.New()
	b := breaker.New("prices", breaker.WithFailureThreshold(1), breaker.WithClock(clock.Now),
		breaker.WithTracerProvider(h.TracerProvider), breaker.WithMeterProvider(h.MeterProvider))
	get := resilience.Wrap(func(ctx context.Context) (string, error) {
		<-ctx.Done() // too slow
		return "", ctx.Err()
	},
		fallback.Value("cached", telOptions(h, "prices")...),
		breaker.Policy[string](b),
		resilience.Timeout[string](time.Millisecond, resilience.WithName("prices"),
			resilience.WithTracerProvider(h.TracerProvider), resilience.WithMeterProvider(h.MeterProvider)),
	)

	for _, span := range []string{"slow", "rejected"} {
		ctx, caller := h.StartSpan(context.Background(), span)
		v, err := get(ctx)
		caller.End()
		require.NoError(t, err)
		require.Equal(t, "cached", v)
	}

	names := func(span string) []string {
		var names []string
		for _, e := range h.Span(span).Events() {
			names = append(names, e.Name)
		}
		return names
	}
	assert.Equal(t, []string{"levee.timeout.exceeded", "levee.circuit_breaker.transition", "levee.fallback.executed"}, names("slow"))
	assert.Equal(t, []string{"levee.circuit_breaker.rejected", "levee.fallback.executed"}, names("rejected"))
	h.AssertAttributes(h.Span("slow").Events()[2].Attributes, telemetry.KeyErrorType.String("timeout"))
	h.AssertAttributes(h.Span("rejected").Events()[1].Attributes, telemetry.KeyErrorType.String("circuit_open"))
	h.AssertInt64(telemetry.MetricFallbackExecutions, 2, telemetry.KeyPolicyName.String("prices"))
	h.AssertInt64(telemetry.MetricTimeoutExceeded, 1, telemetry.KeyPolicyName.String("prices"))
	h.AssertInt64(telemetry.MetricBreakerTransitions, 1, telemetry.KeyBreakerTo.String("open"))

	transition := h.Span(telemetry.SpanBreakerTransition)
	assert.Equal(t, h.Span("slow").SpanContext().SpanID(), transition.Parent().SpanID())
}

// In an outage a fallback in front of an open breaker answers every call:
// reporting it (the counter, with the SDK installed) allocates nothing for
// levee's own error types. Not parallel: testing.AllocsPerRun counts the
// whole process's allocations.
func TestFallbackTelemetry_AnsweringAnOpenBreakerAllocatesNothing(t *testing.T) {
	h := telemetrytest.New(t)
	b := breaker.New("prices", breaker.WithFailureThreshold(1),
		breaker.WithTracerProvider(h.TracerProvider), breaker.WithMeterProvider(h.MeterProvider))
	b.ForceOpen(context.Background())
	get := resilience.Wrap(telFailWith(errors.New("down")), fallback.Value("cached", telOptions(h, "prices")...), breaker.Policy[string](b))
	ctx := context.Background()

	allocs := testing.AllocsPerRun(1000, func() {
		if v, _ := get(ctx); v != "cached" {
			panic("the fallback did not answer")
		}
	})

	assert.Zero(t, allocs)
	h.AssertInt64(telemetry.MetricFallbackExecutions, 1001, telemetry.KeyErrorType.String("circuit_open"))
}
