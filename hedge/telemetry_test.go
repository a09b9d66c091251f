package hedge_test

import (
	"context"
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

	"github.com/levee-go/levee/hedge"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/retry"
	"github.com/levee-go/levee/telemetry"
	"github.com/levee-go/levee/telemetry/telemetrytest"
)

// Tests of the hedge rows of docs/telemetry.md: levee.hedge.started,
// levee.hedge.wins, levee.hedge.budget_exhausted and the levee.hedge.started
// span event.

func telPipeline(h *telemetrytest.Harness, fn resilience.Func[int], delay time.Duration, opts ...hedge.Option) resilience.Func[int] {
	tel := resilience.Telemetry{Name: "profiles", TracerProvider: h.TracerProvider, MeterProvider: h.MeterProvider}
	return resilience.WrapWith(tel, fn, hedge.Policy[int](delay, opts...))
}

var telName = telemetry.KeyPolicyName.String("profiles")

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

func TestHedgeTelemetry_HedgesStartedCountedWithAnEventEach(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		ctx, caller := h.StartSpan(t.Context(), "GET /profile")
		slow := attempt{latency: time.Second}
		r := newReplicas(slow, slow, attempt{latency: 5 * ms})
		_, err := telPipeline(h, r.call, 20*ms, hedge.WithMaxHedges(2))(ctx)
		caller.End()
		require.NoError(t, err)

		telAssertCounter(t, h, telemetry.MetricHedgeStarted, "{attempt}", point(2, telName))
		events := telemetrytest.EventsOn(h.Span("GET /profile"), telemetry.EventHedgeStarted)
		require.Len(t, events, 2)
		for i, e := range events {
			assert.ElementsMatch(t, []attribute.KeyValue{
				telName,
				telemetry.KeyHedgeAttempt.Int(i + 2),
				telemetry.KeyHedgeDelay.Float64(0.02),
			}, e.Attributes)
		}
		assert.Equal(t, 20*ms, events[1].Time.Sub(events[0].Time))
		assert.Len(t, h.Spans(""), 1, "a hedge starts no span of its own")
	})
}

func TestHedgeTelemetry_WinsCountedByTheAttemptThatAnswered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		calls := []*replicas{
			newReplicas(attempt{latency: time.Second}, attempt{latency: 5 * ms}),                   // the hedge wins
			newReplicas(attempt{latency: 30 * ms}, attempt{latency: time.Second}),                  // the first attempt wins after a hedge started
			newReplicas(attempt{latency: 30 * ms, err: errA}, attempt{latency: 5 * ms, err: errB}), // no one wins
			newReplicas(attempt{latency: 5 * ms}),                                                  // no hedge: not counted
		}
		for _, r := range calls {
			_, _ = telPipeline(h, r.call, 20*ms)(t.Context())
		}
		telAssertCounter(t, h, telemetry.MetricHedgeWins, "{call}",
			point(1, telName, telemetry.KeyHedgeAttempt.Int(1)),
			point(1, telName, telemetry.KeyHedgeAttempt.Int(2)),
		)
		h.AssertInt64(telemetry.MetricHedgeStarted, 3, telName)
	})
}

func TestHedgeTelemetry_HedgesTheBudgetRefusedCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		b := retry.NewBudget(0.1, 0)
		r := newReplicas(attempt{latency: 100 * ms}, attempt{latency: 5 * ms})
		v, err := telPipeline(h, r.call, 20*ms, hedge.WithBudget(b))(t.Context())
		require.NoError(t, err)
		require.Equal(t, 1, v)

		telAssertCounter(t, h, telemetry.MetricHedgeBudgetExhausted, "{attempt}", point(1, telName))
		h.AssertInt64(telemetry.MetricHedgeStarted, 0)
		h.AssertInt64(telemetry.MetricHedgeWins, 0) // a call that started no hedge is no win
	})
}

func TestHedgeTelemetry_AFirstAttemptWithinTheDelayReportsNothing(t *testing.T) {
	h := telemetrytest.New(t)
	ctx, caller := h.StartSpan(t.Context(), "GET /profile")
	get := telPipeline(h, func(context.Context) (int, error) { return 1, nil }, time.Hour, hedge.WithBudget(retry.NewBudget(0.2, 10)))
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := get(ctx); err != nil {
			t.Fatal(err)
		}
	})
	caller.End()

	assert.LessOrEqual(t, allocs, 1.0, "the attempts' context alone: the timer is reused")
	for _, name := range []string{telemetry.MetricHedgeStarted, telemetry.MetricHedgeWins, telemetry.MetricHedgeBudgetExhausted} {
		h.AssertInt64(name, 0)
	}
	assert.Empty(t, h.Span("GET /profile").Events())
}

func TestHedgeTelemetry_NoEventWhenTheCallersSpanIsNotRecording(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		remote := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled, Remote: true})
		for _, ctx := range []context.Context{t.Context(), trace.ContextWithRemoteSpanContext(t.Context(), remote)} {
			r := newReplicas(attempt{latency: time.Second}, attempt{latency: 5 * ms})
			_, err := telPipeline(h, r.call, 20*ms)(ctx)
			require.NoError(t, err)
		}
		h.AssertInt64(telemetry.MetricHedgeStarted, 2, telName)
		assert.Empty(t, h.Spans(""), "no span, so no event, anywhere")
	})
}
