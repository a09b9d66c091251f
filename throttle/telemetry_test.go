package throttle_test

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/levee-go/levee/internal/emit"
	"github.com/levee-go/levee/internal/testkit"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/telemetry"
	"github.com/levee-go/levee/telemetry/telemetrytest"
	"github.com/levee-go/levee/throttle"
)

// Tests of the throttle rows of docs/telemetry.md. A throttle nobody
// references stops reporting, so each test keeps its throttles alive until
// its last assertion.

func telThrottle(h *telemetrytest.Harness, name string, opts ...throttle.Option) *throttle.Throttle {
	return throttle.New(name, append([]throttle.Option{
		throttle.WithTracerProvider(h.TracerProvider),
		throttle.WithMeterProvider(h.MeterProvider),
	}, opts...)...)
}

func outcome(name, o string) []attribute.KeyValue {
	return []attribute.KeyValue{telemetry.KeyPolicyName.String(name), telemetry.KeyOutcome.String(o)}
}

func assertInstrument(t *testing.T, h *telemetrytest.Harness, name string, kind sdkmetric.InstrumentKind, unit string) {
	t.Helper()
	inst := h.Instrument(name)
	assert.Equal(t, kind, inst.Kind, "%s kind", name)
	assert.Equal(t, unit, inst.Unit, "%s unit", name)
	assert.NotEmpty(t, inst.Description, "%s description", name)
	assert.Equal(t, telemetry.ScopeName, inst.Scope.Name, "%s scope", name)
	assert.Equal(t, emit.Version(), inst.Scope.Version, "%s scope version", name)
}

// probabilityGauge returns the gauge's value for the throttle named name.
func probabilityGauge(t *testing.T, h *telemetrytest.Harness, name string) float64 {
	t.Helper()
	gauge, ok := h.Metric(telemetry.MetricThrottleProbability).Data.(metricdata.Gauge[float64])
	require.True(t, ok, "a float64 gauge")
	for _, p := range gauge.DataPoints {
		if v, _ := p.Attributes.Value(telemetry.KeyPolicyName); v.AsString() == name {
			assert.Equal(t, 1, p.Attributes.Len(), "only levee.policy.name")
			return p.Value
		}
	}
	require.FailNow(t, "no probability reported", "for %q", name)
	return 0
}

func TestTelemetry_CallsMetric_ByOutcome(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		th := telThrottle(h, "db", throttle.WithK(1), throttle.WithSeed(5),
			throttle.WithIsFailure(func(err error) bool { return !errors.Is(err, errNotFound) }))
		assertInstrument(t, h, telemetry.MetricThrottleCalls, sdkmetric.InstrumentKindObservableCounter, telemetry.UnitCall)
		sum := h.Metric(telemetry.MetricThrottleCalls).Data.(metricdata.Sum[int64])
		assert.True(t, sum.IsMonotonic)
		assert.Len(t, sum.DataPoints, 4, "every outcome reported from construction")

		require.NoError(t, th.Call(t.Context(), up))                                                              // success
		require.ErrorIs(t, th.Call(t.Context(), func(context.Context) error { return errNotFound }), errNotFound) // success: served
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		require.ErrorIs(t, th.Call(ctx, up), context.Canceled)                                                // ignored
		require.Panics(t, func() { _ = th.Call(t.Context(), func(context.Context) error { panic("boom") }) }) // failure
		results := map[bool]int{}
		for range 100 {
			results[errors.Is(th.Call(t.Context(), down), throttle.ErrThrottled)]++
		}
		require.Positive(t, results[true])

		for o, want := range map[string]int64{
			telemetry.OutcomeSuccess:  2,
			telemetry.OutcomeFailure:  int64(results[false]) + 1,
			telemetry.OutcomeRejected: int64(results[true]),
			telemetry.OutcomeIgnored:  1,
		} {
			h.AssertInt64(telemetry.MetricThrottleCalls, want, outcome("db", o)...)
		}
		runtime.KeepAlive(th)
	})
}

func TestTelemetry_ProbabilityGauge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		th := telThrottle(h, "db", throttle.WithK(1))
		assertInstrument(t, h, telemetry.MetricThrottleProbability, sdkmetric.InstrumentKindObservableGauge, telemetry.UnitRatio)
		assert.Zero(t, probabilityGauge(t, h, "db"), "reported from construction")
		_ = th.Call(t.Context(), down)
		assert.Equal(t, 0.5, probabilityGauge(t, h, "db"))
		_ = th.Call(t.Context(), down)
		assert.InDelta(t, 2.0/3, probabilityGauge(t, h, "db"), 1e-12)
		time.Sleep(throttle.DefaultWindow)
		synctest.Wait()
		assert.Zero(t, probabilityGauge(t, h, "db"), "the window forgot")
		runtime.KeepAlive(th)
	})
}

func TestTelemetry_Events_ARefusalOnTheCallersSpan(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		th := telThrottle(h, "db", throttle.WithK(1), throttle.WithSeed(1))
		for range 9 {
			_ = th.Call(t.Context(), down)
		}
		refused := false
		for i := 0; !refused; i++ {
			require.Less(t, i, 50, "no call was refused")
			p := th.Probability()
			ctx, caller := h.StartSpan(t.Context(), "call")
			refused = errors.Is(th.Call(ctx, down), throttle.ErrThrottled)
			caller.End()
			span := h.Spans("call")[i]
			if !refused {
				assert.Empty(t, span.Events(), "a call that ran reports nothing")
				continue
			}
			events := telemetrytest.EventsOn(span, telemetry.EventThrottleRejected)
			require.Len(t, events, 1)
			h.AssertAttributes(events[0].Attributes,
				telemetry.KeyPolicyName.String("db"),
				telemetry.KeyOutcome.String(telemetry.OutcomeRejected),
				telemetry.KeyErrorType.String(telemetry.ErrorTypeThrottled),
				telemetry.KeyThrottleProbability.Float64(p))
		}
		runtime.KeepAlive(th)
	})
}

func TestTelemetry_Events_NoneWhenTheCallersSpanIsNotRecording(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		th := telThrottle(h, "db", throttle.WithK(1))
		refused := 0
		for range 100 {
			if errors.Is(th.Call(t.Context(), down), throttle.ErrThrottled) {
				refused++
			}
		}
		require.Positive(t, refused)
		assert.Empty(t, h.Events(telemetry.EventThrottleRejected))
		runtime.KeepAlive(th)
	})
}

func TestTelemetry_AHealthyCallDoesNoSDKWork(t *testing.T) {
	h := telemetrytest.New(t)
	th := telThrottle(h, "db")
	ctx, caller := h.StartSpan(context.Background(), "request")
	get := resilience.Wrap(func(context.Context) (int, error) { return 1, nil }, throttle.Policy[int](th))
	allocs := testing.AllocsPerRun(1000, func() { _, _ = get(ctx) })
	caller.End()
	assert.Zero(t, allocs, "with an SDK installed and a recording span")
	assert.Empty(t, h.Span("request").Events())
	h.AssertInt64(telemetry.MetricThrottleCalls, 1001, outcome("db", telemetry.OutcomeSuccess)...)
	runtime.KeepAlive(th)
}

// A throttle whose window timer is armed is garbage all the same once
// nobody references it: the timer holds it weakly.
func TestTelemetry_ADroppedThrottleIsGarbageAndStopsReporting(t *testing.T) {
	t.Parallel()
	h := telemetrytest.New(t)
	kept := telThrottle(h, "kept")
	collected := make(chan struct{})
	func() {
		dropped := telThrottle(h, "dropped", throttle.WithWindow(time.Hour))
		require.NoError(t, dropped.Call(context.Background(), up)) // arms its timer
		runtime.AddCleanup(dropped, func(ch chan struct{}) { close(ch) }, collected)
	}()
	gone := false
	for i := 0; i < 20 && !gone; i++ {
		runtime.GC()
		select {
		case <-collected:
			gone = true
		case <-time.After(10 * time.Millisecond):
		}
	}
	require.True(t, gone, "the dropped throttle was not collected after 20 GCs")
	h.AssertInt64(telemetry.MetricThrottleCalls, 0, outcome("dropped", telemetry.OutcomeSuccess)...)
	assert.Len(t, h.Metric(telemetry.MetricThrottleCalls).Data.(metricdata.Sum[int64]).DataPoints, 4, "only the kept throttle's series")
	runtime.KeepAlive(kept)
}

func TestTelemetry_ARefusingMeterLeavesTheThrottleWorking(t *testing.T) {
	for _, nilInstruments := range []bool{false, true} {
		errs := testkit.CaptureOTelErrors(t)
		th := throttle.New("db", throttle.WithMeterProvider(testkit.FaultyMeterProvider{NilInstruments: nilInstruments}))
		require.NoError(t, th.Call(context.Background(), up))
		got := errs.Take()
		assert.NotEmpty(t, got)
		for _, err := range got {
			assert.ErrorIs(t, err, testkit.ErrMeterRefused)
		}
	}
}
