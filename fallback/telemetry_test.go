package fallback_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
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
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/telemetry"
	"github.com/levee-go/levee/telemetry/telemetrytest"
)

// Tests of the fallback rows of docs/telemetry.md: the
// levee.fallback.executions metric and the levee.fallback.executed event.

// telQuotaError is a user's error type: error.type is its Go type name.
type telQuotaError struct{ tenant string }

func (e *telQuotaError) Error() string { return "quota exceeded for tenant " + e.tenant }

// telTelemetry is the Telemetry of a pipeline named name reporting to h.
func telTelemetry(h *telemetrytest.Harness, name string) resilience.Telemetry {
	return resilience.Telemetry{Name: name, TracerProvider: h.TracerProvider, MeterProvider: h.MeterProvider}
}

// telOpenError returns a real rejection, from an open breaker.
func telOpenError(t *testing.T) error {
	t.Helper()
	b := breaker.New("prices")
	b.ForceOpen(context.Background())
	err := b.Call(context.Background(), func(context.Context) error { return nil })
	require.ErrorIs(t, err, breaker.ErrOpen)
	return err
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
		{"breaker rejection", telOpenError(t), "circuit_open"},
		{"levee timeout", fmt.Errorf("fetch: %w", resilience.ErrTimeout), "timeout"},
		{"context deadline", context.DeadlineExceeded, "timeout"},
		{"context canceled", context.Canceled, "canceled"},
		{"user error type through %w", fmt.Errorf("fetch: %w", &telQuotaError{tenant: "42"}), "*fallback_test.telQuotaError"},
		{"plain errors.New", errors.New("connection refused by 10.0.0.7"), "*errors.errorString"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := telemetrytest.New(t)
			for _, pipeline := range []struct {
				name string
				p    resilience.Policy[string]
			}{
				{"prices-value", fallback.Value("cached")},
				{"prices-func", fallback.Func(func(context.Context, error) (string, error) { return "computed", nil })},
			} {
				ctx, caller := h.StartSpan(context.Background(), "GET /price")
				v, err := resilience.WrapWith(telTelemetry(h, pipeline.name), telFailWith(tt.err), pipeline.p)(ctx)
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
	p := fallback.Value("cached", fallback.If(func(err error) bool { return !errors.Is(err, errIgnored) }))
	ctx, caller := h.StartSpan(context.Background(), "GET /price")

	v, err := resilience.WrapWith(telTelemetry(h, "prices"), func(context.Context) (string, error) { return "fresh", nil }, p)(ctx)
	require.NoError(t, err)
	require.Equal(t, "fresh", v)
	_, err = resilience.WrapWith(telTelemetry(h, "prices"), telFailWith(errIgnored), p)(ctx)
	require.ErrorIs(t, err, errIgnored)
	caller.End()

	h.AssertInt64(telemetry.MetricFallbackExecutions, 0)
	assert.Empty(t, h.Span("GET /price").Events())
}

func TestFallbackTelemetry_NoEventWhenTheCallersSpanIsNotRecording(t *testing.T) {
	t.Parallel()
	h := telemetrytest.New(t)
	get := resilience.WrapWith(telTelemetry(h, "prices"), telFailWith(errors.New("down")), fallback.Value("cached"))
	remote := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled, Remote: true})

	for _, ctx := range []context.Context{context.Background(), trace.ContextWithRemoteSpanContext(context.Background(), remote)} {
		v, err := get(ctx)
		require.NoError(t, err)
		require.Equal(t, "cached", v)
	}

	h.AssertInt64(telemetry.MetricFallbackExecutions, 2, telemetry.KeyPolicyName.String("prices"), telemetry.KeyErrorType.String("*errors.errorString"))
	assert.Empty(t, h.Spans(""), "no span, so no event, anywhere")
}

// A fallback applied on its own (its Apply called directly, or ApplyWith
// given a Telemetry with no name) reports under DefaultName. In a pipeline
// it reports under the pipeline's name.
func TestFallbackTelemetry_DefaultName(t *testing.T) {
	t.Parallel()
	h := telemetrytest.New(t)
	p, ok := fallback.Value("cached").(resilience.TelemetryPolicy[string])
	require.True(t, ok, "a fallback is a TelemetryPolicy")
	_, err := p.ApplyWith(resilience.Telemetry{TracerProvider: h.TracerProvider, MeterProvider: h.MeterProvider}, telFailWith(errors.New("down")))(context.Background())
	require.NoError(t, err)

	h.AssertInt64(telemetry.MetricFallbackExecutions, 1, telemetry.KeyPolicyName.String(fallback.DefaultName))
	assert.Equal(t, "fallback", fallback.DefaultName)
}

// The advised pipeline, fallback outside a breaker outside a timeout: the
// caller's span tells the whole story of a degraded answer, in order. The
// pipeline is built with Wrap around the breaker, so the fallback and the
// timeout report under the breaker's name and providers, given once. In a
// bubble, so that the open breaker stays open.
func TestFallbackTelemetry_PipelineStoryOnTheCallersSpan(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		b := breaker.New("prices", breaker.WithFailureThreshold(1),
			breaker.WithTracerProvider(h.TracerProvider), breaker.WithMeterProvider(h.MeterProvider))
		get := resilience.Wrap(func(ctx context.Context) (string, error) {
			<-ctx.Done() // too slow
			return "", ctx.Err()
		},
			fallback.Value("cached"),
			breaker.Policy[string](b),
			resilience.Timeout[string](time.Millisecond),
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
	})
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
	get := resilience.Wrap(telFailWith(errors.New("down")), fallback.Value("cached"), breaker.Policy[string](b))
	ctx := context.Background()

	allocs := testing.AllocsPerRun(1000, func() {
		if v, _ := get(ctx); v != "cached" {
			panic("the fallback did not answer")
		}
	})

	assert.Zero(t, allocs)
	h.AssertInt64(telemetry.MetricFallbackExecutions, 1001, telemetry.KeyPolicyName.String("prices"), telemetry.KeyErrorType.String("circuit_open"))
}

// A fallback answering an ordinary failure (errors.New, error.type
// *errors.errorString) or an error of the user's own type allocates nothing
// to report it, once that type has been seen: in an outage it answers every
// call. Not parallel: testing.AllocsPerRun counts the whole process's
// allocations.
func TestFallbackTelemetry_AnsweringAFailureAllocatesNothing(t *testing.T) {
	for name, err := range map[string]error{
		"errors.New":            errors.New("connection refused"),
		"fmt.Errorf without %w": fmt.Errorf("status %d", 503),
		"the user's error type": &telQuotaError{tenant: "42"},
	} {
		t.Run(name, func(t *testing.T) {
			h := telemetrytest.New(t)
			get := resilience.WrapWith(telTelemetry(h, "prices"), telFailWith(err), fallback.Value("cached"))
			ctx := context.Background()

			allocs := testing.AllocsPerRun(1000, func() {
				if v, _ := get(ctx); v != "cached" {
					panic("the fallback did not answer")
				}
			})

			assert.Zero(t, allocs)
			h.AssertInt64(telemetry.MetricFallbackExecutions, 1001, telemetry.KeyPolicyName.String("prices"),
				telemetry.KeyErrorType.String(telemetry.ErrorType(err)))
		})
	}
}

// typedError names its own error.type.
type typedError string

func (e typedError) Error() string     { return "typed: " + string(e) }
func (e typedError) ErrorType() string { return string(e) }

// More error.type values than a fallback keeps reports for (an ErrorTyper
// breaking its contract of a small fixed set): each execution is still
// reported under its own value.
func TestFallbackTelemetry_ManyErrorTypesAreEachReported(t *testing.T) {
	t.Parallel()
	h := telemetrytest.New(t)
	var failWith error
	get := resilience.WrapWith(telTelemetry(h, "prices"), func(context.Context) (string, error) { return "", failWith }, fallback.Value("cached"))
	const types = 100
	for round := range 2 {
		for i := range types {
			failWith = typedError(fmt.Sprintf("type-%03d", i))
			v, err := get(context.Background())
			require.NoError(t, err, "round %d, type %d", round, i)
			require.Equal(t, "cached", v)
		}
	}
	for i := range types {
		h.AssertInt64(telemetry.MetricFallbackExecutions, 2, telemetry.KeyErrorType.String(fmt.Sprintf("type-%03d", i)))
	}
}

// Applied alone, a fallback names itself DefaultName in its errors too.
func TestFallback_AppliedAloneNamesItselfByDefault(t *testing.T) {
	t.Parallel()
	p := fallback.Func(func(context.Context, error) (string, error) { return "", errors.New("cache down") })
	_, err := p.Apply(telFailWith(errors.New("db down")))(context.Background())
	var fbErr *fallback.Error
	require.ErrorAs(t, err, &fbErr)
	assert.Equal(t, fallback.DefaultName, fbErr.Name)
	assert.EqualError(t, err, `levee: fallback "fallback" failed: cache down (after: db down)`)
}
