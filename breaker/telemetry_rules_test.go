package breaker_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/telemetry"
	"github.com/levee-go/levee/telemetry/telemetrytest"
)

// Tests of docs/telemetry.md's rows for issue 12: the trip rule and window
// counts on transitions, the rate gauges, the shadow_rejected outcome and
// event, the opt-in call duration histogram.

// telGauges returns the float64 gauge name's values by levee.policy.name,
// and how many points it has.
func telGauges(t *testing.T, h *telemetrytest.Harness, name string) map[string]float64 {
	t.Helper()
	values := map[string]float64{}
	for _, sm := range h.Collect().ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			gauge, ok := m.Data.(metricdata.Gauge[float64])
			require.True(t, ok, "%s is a float64 gauge, not %T", name, m.Data)
			for _, p := range gauge.DataPoints {
				v, _ := p.Attributes.Value(telemetry.KeyPolicyName)
				require.Equal(t, 1, p.Attributes.Len(), "%s: levee.policy.name only", name)
				values[v.AsString()] = p.Value
			}
		}
	}
	return values
}

func TestTelemetry_FailureRateGauge_ForEachBreakerWithAWindow(t *testing.T) {
	t.Parallel()
	boundedSyncTest(t, bubbleBound, func(t *testing.T) {
		h := telemetrytest.New(t)
		count := telBreaker(t, h, "count", breaker.WithCountWindow(4), breaker.WithFailureRate(0.75))
		timed := telBreaker(t, h, "time", breaker.WithTimeWindow(10*time.Second, 10), breaker.WithFailureRate(1))
		_ = telBreaker(t, h, "plain")

		telAssertInstrument(t, h, telemetry.MetricBreakerFailureRate, sdkmetric.InstrumentKindObservableGauge, "1")
		assert.Equal(t, map[string]float64{"count": 0, "time": 0}, telGauges(t, h, telemetry.MetricBreakerFailureRate),
			"0 for an empty window; no series for a breaker without one")

		outcomes(t, count, "SSFS")
		outcomes(t, timed, "SF")
		assert.Equal(t, map[string]float64{"count": 0.25, "time": 0.5}, telGauges(t, h, telemetry.MetricBreakerFailureRate))

		outcomes(t, count, "FF") // S F S F F: the last 4 hold 3 failures: opens
		require.Equal(t, breaker.Open, count.State())
		elapse(10 * time.Second) // the time window's calls leave it
		assert.Equal(t, map[string]float64{"count": 0.75, "time": 0}, telGauges(t, h, telemetry.MetricBreakerFailureRate),
			"an open breaker reports the rate that tripped it; an idle one's window slides")
	})
}

func TestTelemetry_SlowCallRateGauge_ForBreakersThatTimeTheirCalls(t *testing.T) {
	t.Parallel()
	boundedSyncTest(t, bubbleBound, func(t *testing.T) {
		h := telemetrytest.New(t)
		b := telBreaker(t, h, "slow", breaker.WithCountWindow(4), breaker.WithSlowCallDuration(time.Second))
		_ = telBreaker(t, h, "rate only", breaker.WithCountWindow(4), breaker.WithFailureRate(0.5))

		telAssertInstrument(t, h, telemetry.MetricBreakerSlowCallRate, sdkmetric.InstrumentKindObservableGauge, "1")
		require.NoError(t, b.Call(context.Background(), takes(2*time.Second, nil)))
		require.NoError(t, b.Call(context.Background(), takes(0, nil)))
		require.NoError(t, b.Call(context.Background(), takes(0, nil)))
		require.ErrorIs(t, b.Call(context.Background(), takes(3*time.Second, errDown)), errDown)
		assert.Equal(t, map[string]float64{"slow": 0.5}, telGauges(t, h, telemetry.MetricBreakerSlowCallRate),
			"2 slow of 4; no series for a breaker without a slow-call duration")
		assert.Equal(t, 0.25, telGauges(t, h, telemetry.MetricBreakerFailureRate)["slow"])
	})
}

// telTripAttrs is the attribute set of a trip's span and event for a
// breaker with a window.
func telTripAttrs(name, rule string, failures int, w breaker.WindowCounts) []attribute.KeyValue {
	return append(telTransitionAttrs(name, "closed", "open", failures, false)[:5],
		telemetry.KeyBreakerTripRule.String(rule),
		telemetry.KeyBreakerWindowCalls.Int64(w.Calls),
		telemetry.KeyBreakerWindowFailures.Int64(w.Failures),
		telemetry.KeyBreakerWindowSlowCalls.Int64(w.SlowCalls),
	)
}

func TestTelemetry_TripCarriesItsRuleAndTheWindowsCounts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		rule     string
		opts     []breaker.Option
		calls    func(ctx context.Context, b *breaker.Breaker)
		failures int
		window   breaker.WindowCounts
	}{
		{
			rule: "consecutive_failures",
			opts: []breaker.Option{breaker.WithCountWindow(10)},
			calls: func(ctx context.Context, b *breaker.Breaker) {
				for _, fn := range []func(context.Context) error{succeed, fail, fail, fail} {
					_ = b.Call(ctx, fn)
				}
			},
			failures: 3, window: breaker.WindowCounts{Calls: 4, Failures: 3},
		},
		{
			rule: "failure_rate",
			opts: []breaker.Option{breaker.WithTimeWindow(time.Minute, 6), breaker.WithFailureRate(0.5), breaker.WithMinCalls(4)},
			calls: func(ctx context.Context, b *breaker.Breaker) {
				for _, fn := range []func(context.Context) error{fail, succeed, succeed, fail} {
					_ = b.Call(ctx, fn)
				}
			},
			failures: 1, window: breaker.WindowCounts{Calls: 4, Failures: 2},
		},
		{
			rule: "slow_call_rate",
			opts: []breaker.Option{breaker.WithCountWindow(2), breaker.WithSlowCallDuration(time.Second), breaker.WithSlowCallRate(1)},
			calls: func(ctx context.Context, b *breaker.Breaker) {
				_ = b.Call(ctx, takes(2*time.Second, nil))
				_ = b.Call(ctx, takes(2*time.Second, nil))
			},
			window: breaker.WindowCounts{Calls: 2, SlowCalls: 2},
		},
		{
			rule: "custom",
			opts: []breaker.Option{breaker.WithCountWindow(5), breaker.WithTripRule(func(c breaker.WindowCounts) bool { return c.Failures == 2 })},
			calls: func(ctx context.Context, b *breaker.Breaker) {
				for _, fn := range []func(context.Context) error{fail, succeed, fail} {
					_ = b.Call(ctx, fn)
				}
			},
			failures: 1, window: breaker.WindowCounts{Calls: 3, Failures: 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			t.Parallel()
			boundedSyncTest(t, bubbleBound, func(t *testing.T) {
				h := telemetrytest.New(t)
				b := telBreaker(t, h, "inventory", tt.opts...)
				ctx, caller := h.StartSpan(context.Background(), "GET /stock")
				tt.calls(ctx, b)
				caller.End()
				require.Equal(t, breaker.Open, b.State())

				want := telTripAttrs("inventory", tt.rule, tt.failures, tt.window)
				spans := telTransitionSpans(h, "closed", "open")
				require.Len(t, spans, 1)
				assert.ElementsMatch(t, want, spans[0].Attributes(), "the transition span")
				events := telemetrytest.EventsOn(h.Span("GET /stock"), telemetry.EventBreakerTransition)
				require.Len(t, events, 1)
				assert.ElementsMatch(t, want, events[0].Attributes, "the caller's event")
				h.AssertInt64(telemetry.MetricBreakerTransitions, 1, telemetry.KeyBreakerTripRule.String(tt.rule))
			})
		})
	}
}

func TestTelemetry_CallsMetric_ShadowRejectedOnceShadowModeHasBeenOn(t *testing.T) {
	t.Parallel()
	boundedSyncTest(t, bubbleBound, func(t *testing.T) {
		h := telemetrytest.New(t)
		b := telBreaker(t, h, "inventory", breaker.WithFailureThreshold(1))
		require.ErrorIs(t, b.Call(context.Background(), telFail), telErrDown)
		require.ErrorIs(t, b.Call(context.Background(), telSucceed), breaker.ErrOpen)
		calls := h.Metric(telemetry.MetricBreakerCalls).Data.(metricdata.Sum[int64])
		assert.Len(t, calls.DataPoints, 4, "no shadow_rejected series before shadow mode")

		b.SetShadowMode(true)
		require.NoError(t, b.Call(context.Background(), telSucceed))
		require.NoError(t, b.Call(context.Background(), telSucceed))
		b.SetShadowMode(false)
		require.ErrorIs(t, b.Call(context.Background(), telSucceed), breaker.ErrOpen)

		name := telemetry.KeyPolicyName.String("inventory")
		telAssertSum(t, h, telemetry.MetricBreakerCalls, "{call}", true,
			telPoint(0, name, telemetry.KeyOutcome.String("success")),
			telPoint(1, name, telemetry.KeyOutcome.String("failure")),
			telPoint(2, name, telemetry.KeyOutcome.String("rejected")),
			telPoint(0, name, telemetry.KeyOutcome.String("ignored")),
			telPoint(2, name, telemetry.KeyOutcome.String("shadow_rejected")),
		)
	})
}

func TestTelemetry_Events_AShadowedRejectionSaysSo(t *testing.T) {
	t.Parallel()
	boundedSyncTest(t, bubbleBound, func(t *testing.T) {
		h := telemetrytest.New(t)
		b := telBreaker(t, h, "inventory", breaker.WithFailureThreshold(1), breaker.WithShadowMode())
		require.ErrorIs(t, b.Call(context.Background(), telFail), telErrDown)
		ctx, span := h.StartSpan(context.Background(), "GET /stock")
		require.NoError(t, b.Call(ctx, telSucceed))
		span.End()

		events := telemetrytest.EventsOn(h.Span("GET /stock"), telemetry.EventBreakerRejected)
		require.Len(t, events, 1, "the rejection shadow mode let through is reported")
		assert.ElementsMatch(t, []attribute.KeyValue{
			telemetry.KeyPolicyName.String("inventory"),
			telemetry.KeyBreakerState.String("open"),
			telemetry.KeyErrorType.String("circuit_open"),
			telemetry.KeyBreakerShadow.Bool(true),
		}, events[0].Attributes)
	})
}

// telHistogram returns the call duration histogram's points by outcome.
func telHistogram(t *testing.T, h *telemetrytest.Harness) map[string]metricdata.HistogramDataPoint[float64] {
	t.Helper()
	m := h.Metric(telemetry.MetricBreakerCallDuration)
	hist, ok := m.Data.(metricdata.Histogram[float64])
	require.True(t, ok, "a float64 histogram, not %T", m.Data)
	points := map[string]metricdata.HistogramDataPoint[float64]{}
	for _, p := range hist.DataPoints {
		o, _ := p.Attributes.Value(telemetry.KeyOutcome)
		points[o.AsString()] = p
	}
	return points
}

func TestTelemetry_CallDurationHistogram_ByOutcomeWhenAskedFor(t *testing.T) {
	t.Parallel()
	boundedSyncTest(t, bubbleBound, func(t *testing.T) {
		h := telemetrytest.New(t)
		quiet := telBreaker(t, h, "quiet")
		require.NoError(t, quiet.Call(context.Background(), telSucceed))
		b := telBreaker(t, h, "inventory", breaker.WithFailureThreshold(1), breaker.WithCallDurationHistogram())
		telAssertInstrument(t, h, telemetry.MetricBreakerCallDuration, sdkmetric.InstrumentKindHistogram, "s")

		require.NoError(t, b.Call(context.Background(), takes(30*time.Millisecond, nil)))
		require.NoError(t, b.Call(context.Background(), takes(70*time.Millisecond, nil)))
		ctx, cancel := context.WithCancel(context.Background())
		require.ErrorIs(t, b.Call(ctx, func(ctx context.Context) error { time.Sleep(time.Second); cancel(); return ctx.Err() }), context.Canceled)
		require.ErrorIs(t, b.Call(context.Background(), takes(2*time.Second, telErrDown)), telErrDown) // opens
		require.ErrorIs(t, b.Call(context.Background(), telSucceed), breaker.ErrOpen)                  // runs nothing: not recorded
		b.SetShadowMode(true)
		require.NoError(t, b.Call(context.Background(), takes(5*time.Second, nil)))

		points := telHistogram(t, h)
		require.Len(t, points, 4, "success, failure, ignored, shadow_rejected; no rejected, no quiet breaker")
		for outcome, want := range map[string]struct {
			count uint64
			sum   float64
		}{"success": {2, 0.1}, "failure": {1, 2}, "ignored": {1, 1}, "shadow_rejected": {1, 5}} {
			p := points[outcome]
			assert.Equal(t, want.count, p.Count, outcome)
			assert.InDelta(t, want.sum, p.Sum, 1e-9, outcome)
			name, _ := p.Attributes.Value(telemetry.KeyPolicyName)
			assert.Equal(t, "inventory", name.AsString())
			assert.Equal(t, 2, p.Attributes.Len(), "levee.policy.name and levee.outcome only")
		}
		assert.Equal(t, []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}, points["success"].Bounds,
			"the semantic conventions' request-duration boundaries")
	})
}

// The hot-path rule for windowed breakers: with an SDK installed and a
// recording span, a successful call through a closed breaker with a count
// or a time window allocates nothing. Not parallel: AllocsPerRun counts
// the process's allocations.
func TestTelemetry_WindowedClosedSuccessAllocatesNothing(t *testing.T) {
	h := telemetrytest.New(t)
	ctx, caller := h.StartSpan(context.Background(), "GET /stock")
	defer caller.End()
	for name, opts := range map[string][]breaker.Option{
		"count window":           {breaker.WithCountWindow(100), breaker.WithFailureRate(0.5)},
		"time window":            {breaker.WithTimeWindow(time.Minute, 60), breaker.WithFailureRate(0.5)},
		"slow calls":             {breaker.WithCountWindow(100), breaker.WithSlowCallDuration(time.Second), breaker.WithSlowCallRate(0.5)},
		"call duration recorded": {breaker.WithCallDurationHistogram()},
	} {
		b := telBreaker(t, h, name, opts...)
		guarded := resilience.Wrap(func(context.Context) (int, error) { return 1, nil }, breaker.Policy[int](b))
		_, _ = guarded(ctx) // the first call of a time window arms its timer
		assert.Zero(t, testing.AllocsPerRun(1000, func() { _, _ = guarded(ctx) }), name)
		runtime.KeepAlive(b)
	}
}
