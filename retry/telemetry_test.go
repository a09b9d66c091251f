package retry_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
	"go.opentelemetry.io/otel/trace"

	"github.com/levee-go/levee/internal/testkit"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/retry"
	"github.com/levee-go/levee/telemetry"
	"github.com/levee-go/levee/telemetry/telemetrytest"
)

// Tests of the retry rows of docs/telemetry.md: levee.retry.attempts,
// levee.retry.exhausted, levee.retry.budget_exhausted and the
// levee.retry.scheduled, levee.retry.exhausted and
// levee.retry.budget_exhausted span events.

// telPipeline is a pipeline named "pricing" reporting to h.
func telPipeline(h *telemetrytest.Harness, fn resilience.Func[int], opts ...retry.Option) resilience.Func[int] {
	tel := resilience.Telemetry{Name: "pricing", TracerProvider: h.TracerProvider, MeterProvider: h.MeterProvider}
	return resilience.WrapWith(tel, fn, retry.Policy[int](opts...))
}

var telName = telemetry.KeyPolicyName.String("pricing")

// telAssertCounter asserts an int64 counter whole: kind, unit, levee's
// scope, a description, and exactly the given data points.
func telAssertCounter(t *testing.T, h *telemetrytest.Harness, name, unit string, points ...metricdata.DataPoint[int64]) {
	t.Helper()
	inst := h.Instrument(name)
	assert.Equal(t, sdkmetric.InstrumentKindCounter, inst.Kind, "%s kind", name)
	assert.Equal(t, telemetry.ScopeName, inst.Scope.Name)
	got := h.Metric(name)
	assert.NotEmpty(t, got.Description)
	metricdatatest.AssertEqual(t, metricdata.Metrics{
		Name:        name,
		Description: got.Description,
		Unit:        unit,
		Data: metricdata.Sum[int64]{
			Temporality: metricdata.CumulativeTemporality,
			IsMonotonic: true,
			DataPoints:  points,
		},
	}, got, metricdatatest.IgnoreTimestamp(), metricdatatest.IgnoreExemplars())
}

func point(value int64, attrs ...attribute.KeyValue) metricdata.DataPoint[int64] {
	return metricdata.DataPoint[int64]{Value: value, Attributes: attribute.NewSet(attrs...)}
}

func TestRetryTelemetry_AttemptsAfterTheFirstCountedByOutcome(t *testing.T) {
	t.Parallel()
	h := telemetrytest.New(t)
	dep := newDependency(errDown, errDown, nil) // two retries: a failure, then a success
	_, err := telPipeline(h, dep.call, retry.WithDelay(0))(t.Context())
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(t.Context())
	calls := 0
	canceledDuringTheRetry := func(context.Context) (int, error) {
		calls++
		if calls == 2 {
			cancel()
		}
		return 0, errDown
	}
	_, err = telPipeline(h, canceledDuringTheRetry, retry.WithDelay(0))(ctx)
	require.ErrorIs(t, err, errDown)

	_, err = telPipeline(h, succeed, retry.WithDelay(0))(t.Context())
	require.NoError(t, err)

	telAssertCounter(t, h, telemetry.MetricRetryAttempts, "{attempt}",
		point(1, telName, telemetry.KeyOutcome.String("success")),
		point(1, telName, telemetry.KeyOutcome.String("failure")),
		point(1, telName, telemetry.KeyOutcome.String("ignored")),
	)
}

func TestRetryTelemetry_ExhaustedCountedByReasonWithAnEvent(t *testing.T) {
	tests := []struct {
		reason   string
		err      error
		opts     []retry.Option
		deadline time.Duration
		attempts int
	}{
		{"max_attempts", errDown, []retry.Option{retry.WithDelay(0), retry.WithMaxAttempts(2)}, 0, 2},
		{"max_duration", errDown, []retry.Option{retry.WithDelay(time.Second), retry.WithMaxDuration(1500 * time.Millisecond)}, 0, 2},
		{"deadline", errDown, []retry.Option{retry.WithDelay(time.Second)}, 1500 * time.Millisecond, 2},
		{"max_delay", &hinted{after: time.Hour}, nil, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.reason, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := telemetrytest.New(t)
				ctx, caller := h.StartSpan(t.Context(), "GET /price")
				if tt.deadline > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tt.deadline)
					defer cancel()
				}
				_, err := telPipeline(h, newDependency(tt.err).call, tt.opts...)(ctx)
				caller.End()
				require.ErrorIs(t, err, tt.err)

				telAssertCounter(t, h, telemetry.MetricRetryExhausted, "{call}",
					point(1, telName, telemetry.KeyRetryReason.String(tt.reason)))
				h.AssertInt64(telemetry.MetricRetryBudgetExhausted, 0)
				events := h.Events(telemetry.EventRetryExhausted)
				require.Len(t, events, 1)
				assert.ElementsMatch(t, []attribute.KeyValue{
					telName,
					telemetry.KeyRetryAttempt.Int(tt.attempts),
					telemetry.KeyRetryReason.String(tt.reason),
					telemetry.KeyErrorType.String(telemetry.ErrorType(tt.err)),
				}, events[0].Attributes)
			})
		})
	}
}

func TestRetryTelemetry_BudgetRefusalCountedWithAnEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		b := retry.NewBudget(0.5, 0)
		ctx, caller := h.StartSpan(t.Context(), "GET /price")
		_, err := telPipeline(h, newDependency(errDown).call, retry.WithBudget(b))(ctx)
		caller.End()
		require.ErrorIs(t, err, retry.ErrBudgetExhausted)

		telAssertCounter(t, h, telemetry.MetricRetryBudgetExhausted, "{call}", point(1, telName))
		h.AssertInt64(telemetry.MetricRetryExhausted, 0)
		events := h.Events(telemetry.EventRetryBudgetExhausted)
		require.Len(t, events, 1)
		assert.ElementsMatch(t, []attribute.KeyValue{
			telName,
			telemetry.KeyRetryAttempt.Int(1),
			telemetry.KeyErrorType.String("*errors.errorString"),
		}, events[0].Attributes)
	})
}

func TestRetryTelemetry_AnEventOnTheCallersSpanForEachRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		ctx, caller := h.StartSpan(t.Context(), "GET /price")
		dep := newDependency(errDown, &hinted{after: 3 * time.Second}, nil)
		_, err := telPipeline(h, dep.call, retry.WithDelay(time.Second))(ctx)
		caller.End()
		require.NoError(t, err)

		events := telemetrytest.EventsOn(h.Span("GET /price"), telemetry.EventRetryScheduled)
		require.Len(t, events, 2)
		assert.ElementsMatch(t, []attribute.KeyValue{
			telName,
			telemetry.KeyRetryAttempt.Int(2),
			telemetry.KeyRetryDelay.Float64(1),
			telemetry.KeyErrorType.String("*errors.errorString"),
		}, events[0].Attributes)
		assert.ElementsMatch(t, []attribute.KeyValue{
			telName,
			telemetry.KeyRetryAttempt.Int(3),
			telemetry.KeyRetryDelay.Float64(3),
			telemetry.KeyErrorType.String("*retry_test.hinted"),
		}, events[1].Attributes)
		assert.Equal(t, 1*time.Second, events[1].Time.Sub(events[0].Time), "added before each delay")
		assert.Len(t, h.Spans(""), 1, "a retry starts no span of its own")
	})
}

func TestRetryTelemetry_AFirstAttemptThatSucceedsReportsNothingAndAllocatesNothing(t *testing.T) {
	h := telemetrytest.New(t)
	ctx, caller := h.StartSpan(t.Context(), "GET /price")
	get := telPipeline(h, succeed, retry.WithBudget(retry.NewBudget(0.2, 10)))
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := get(ctx); err != nil {
			t.Fatal(err)
		}
	})
	caller.End()

	assert.Zero(t, allocs)
	for _, name := range []string{telemetry.MetricRetryAttempts, telemetry.MetricRetryExhausted, telemetry.MetricRetryBudgetExhausted} {
		h.AssertInt64(name, 0)
	}
	assert.Empty(t, h.Span("GET /price").Events())
}

func TestRetryTelemetry_NoEventWhenTheCallersSpanIsNotRecording(t *testing.T) {
	t.Parallel()
	h := telemetrytest.New(t)
	remote := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled, Remote: true})
	for _, ctx := range []context.Context{t.Context(), trace.ContextWithRemoteSpanContext(t.Context(), remote)} {
		_, err := telPipeline(h, newDependency(errDown).call, retry.WithDelay(0))(ctx)
		require.ErrorIs(t, err, errDown)
	}
	h.AssertInt64(telemetry.MetricRetryAttempts, 4, telName)
	h.AssertInt64(telemetry.MetricRetryExhausted, 2, telName)
	assert.Empty(t, h.Spans(""), "no span, so no event, anywhere")
}

// panickingMeterProvider hands out counters whose Add panics, as a broken
// exporter's instrument might.
type panickingMeterProvider struct{ noop.MeterProvider }

func (panickingMeterProvider) Meter(string, ...metric.MeterOption) metric.Meter {
	return panickingMeter{}
}

type panickingMeter struct{ noop.Meter }

func (panickingMeter) Int64Counter(string, ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	return panickingCounter{}, nil
}

type panickingCounter struct{ noop.Int64Counter }

func (panickingCounter) Add(context.Context, int64, ...metric.AddOption) { panic("exporter exploded") }

func TestRetryTelemetry_AFaultInTheTelemetryNeverReachesTheCaller(t *testing.T) {
	otelErrs := testkit.CaptureOTelErrors(t)
	for name, mp := range map[string]metric.MeterProvider{
		"instruments refused":       testkit.FaultyMeterProvider{},
		"no instruments at all":     testkit.FaultyMeterProvider{NilInstruments: true},
		"instruments that panic":    panickingMeterProvider{},
		"the global no-op provider": nil,
	} {
		get := resilience.WrapWith(resilience.Telemetry{Name: "pricing", MeterProvider: mp},
			newDependency(errDown, nil).call, retry.Policy[int](retry.WithDelay(0)))
		v, err := get(t.Context())
		assert.NoError(t, err, name)
		assert.Equal(t, 2, v, name)
	}
	reported := errors.Join(otelErrs.Take()...)
	assert.ErrorIs(t, reported, testkit.ErrMeterRefused)
	assert.ErrorContains(t, reported, "exporter exploded")
}
