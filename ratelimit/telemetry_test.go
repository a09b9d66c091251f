package ratelimit_test

import (
	"context"
	"runtime"
	"strconv"
	"sync"
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
	"github.com/levee-go/levee/ratelimit"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/telemetry"
	"github.com/levee-go/levee/telemetry/telemetrytest"
)

// Tests of the rate limit rows of docs/telemetry.md. A limiter nobody
// references stops reporting, so each test keeps its limiters alive until
// its last assertion.

func telLimiter(h *telemetrytest.Harness, name string, n int, per time.Duration, opts ...ratelimit.Option) *ratelimit.Limiter {
	return ratelimit.New(name, n, per, append([]ratelimit.Option{
		ratelimit.WithTracerProvider(h.TracerProvider),
		ratelimit.WithMeterProvider(h.MeterProvider),
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

func TestTelemetry_CallsMetric_ByOutcome(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		l := telLimiter(h, "api", 10, time.Second, ratelimit.WithBurst(2), ratelimit.WithMaxWait(150*time.Millisecond))
		assertInstrument(t, h, telemetry.MetricRateLimitCalls, sdkmetric.InstrumentKindObservableCounter, telemetry.UnitCall)
		every := []string{telemetry.OutcomeAdmitted, telemetry.OutcomeWaited, telemetry.OutcomeRejected, telemetry.OutcomeCanceled}
		sum := h.Metric(telemetry.MetricRateLimitCalls).Data.(metricdata.Sum[int64])
		assert.True(t, sum.IsMonotonic)
		assert.Len(t, sum.DataPoints, len(every), "every outcome reported from construction")

		require.NoError(t, l.Call(t.Context(), succeed)) // admitted
		require.NoError(t, l.Call(t.Context(), succeed)) // admitted
		require.NoError(t, l.Call(t.Context(), succeed)) // waited 100ms
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(10*time.Millisecond, cancel)
		require.ErrorIs(t, l.Call(ctx, succeed), context.Canceled) // canceled while waiting
		require.ErrorIs(t, l.Call(ctx, succeed), context.Canceled) // canceled on arrival
		require.NoError(t, l.Call(t.Context(), succeed))           // waited 90ms for the token given back
		require.NoError(t, l.Call(t.Context(), succeed))           // waited 100ms
		soon, stop := context.WithTimeout(t.Context(), 50*time.Millisecond)
		require.ErrorIs(t, l.Call(soon, succeed), ratelimit.ErrLimited) // its token is 100ms away
		require.ErrorIs(t, l.Call(soon, succeed), ratelimit.ErrLimited)
		stop()

		for o, want := range map[string]int64{
			telemetry.OutcomeAdmitted: 2,
			telemetry.OutcomeWaited:   3,
			telemetry.OutcomeRejected: 2,
			telemetry.OutcomeCanceled: 2,
		} {
			h.AssertInt64(telemetry.MetricRateLimitCalls, want, outcome("api", o)...)
		}
		runtime.KeepAlive(l)
	})
}

func TestTelemetry_QueuedGauge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		l := telLimiter(h, "api", 10, time.Second, ratelimit.Smooth(), ratelimit.WithMaxWait(time.Second))
		assertInstrument(t, h, telemetry.MetricRateLimitQueued, sdkmetric.InstrumentKindObservableUpDownCounter, telemetry.UnitCall)
		name := telemetry.KeyPolicyName.String("api")
		h.AssertInt64(telemetry.MetricRateLimitQueued, 0, name)
		require.NoError(t, l.Call(t.Context(), succeed))
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() { assert.NoError(t, l.Call(t.Context(), succeed)) })
		}
		synctest.Wait()
		h.AssertInt64(telemetry.MetricRateLimitQueued, 4, name)
		wg.Wait()
		h.AssertInt64(telemetry.MetricRateLimitQueued, 0, name)
		runtime.KeepAlive(l)
	})
}

func TestTelemetry_KeyedLimitsReportNoSeriesPerKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		l := telLimiter(h, "api", 1, time.Minute, ratelimit.WithKey(tenantOf), ratelimit.WithMaxKeys(1000))
		assertInstrument(t, h, telemetry.MetricRateLimitKeys, sdkmetric.InstrumentKindObservableUpDownCounter, telemetry.UnitKey)
		assertInstrument(t, h, telemetry.MetricRateLimitKeyOverflow, sdkmetric.InstrumentKindObservableCounter, telemetry.UnitCall)
		for i := range 1500 {
			_ = l.Call(withTenant(t.Context(), "tenant-"+strconv.Itoa(i)), succeed)
		}
		name := telemetry.KeyPolicyName.String("api")
		h.AssertInt64(telemetry.MetricRateLimitKeys, 1000, name)
		h.AssertInt64(telemetry.MetricRateLimitKeyOverflow, 500, name)
		h.AssertInt64(telemetry.MetricRateLimitCalls, 1001, outcome("api", telemetry.OutcomeAdmitted)...) // 1000 keys, and the overflow limit's one token
		h.AssertInt64(telemetry.MetricRateLimitCalls, 499, outcome("api", telemetry.OutcomeRejected)...)
		for _, metric := range []string{telemetry.MetricRateLimitKeys, telemetry.MetricRateLimitKeyOverflow, telemetry.MetricRateLimitQueued} {
			assert.Len(t, h.Metric(metric).Data.(metricdata.Sum[int64]).DataPoints, 1, "%s: one series, whatever the keys", metric)
		}
		assert.Len(t, h.Metric(telemetry.MetricRateLimitCalls).Data.(metricdata.Sum[int64]).DataPoints, 4, "one series per outcome")
		runtime.KeepAlive(l)
	})
}

func TestTelemetry_UnkeyedLimitsReportNoKeys(t *testing.T) {
	t.Parallel()
	h := telemetrytest.New(t)
	l := telLimiter(h, "api", 1, time.Second)
	require.NoError(t, l.Call(context.Background(), succeed))
	h.AssertInt64(telemetry.MetricRateLimitCalls, 1, outcome("api", telemetry.OutcomeAdmitted)...)
	h.AssertInt64(telemetry.MetricRateLimitKeys, 0)
	h.AssertInt64(telemetry.MetricRateLimitKeyOverflow, 0)
	runtime.KeepAlive(l)
}

func TestTelemetry_Events_RejectionsAndWaitsOnTheCallersSpan(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		l := telLimiter(h, "api", 10, time.Second, ratelimit.Smooth(), ratelimit.WithMaxWait(150*time.Millisecond))
		call := func(span string, ctx context.Context) {
			ctx, caller := h.StartSpan(ctx, span)
			_ = l.Call(ctx, succeed)
			caller.End()
		}
		call("admitted", t.Context())
		call("waited", t.Context()) // 100ms
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(20*time.Millisecond, cancel)
		call("canceled", ctx)       // its token is 100ms away; its caller gives up at 20ms
		call("waited", t.Context()) // 80ms, for the token given back
		soon, stop := context.WithTimeout(t.Context(), 50*time.Millisecond)
		call("rejected", soon) // its token is 100ms away, after its deadline
		stop()

		assert.Empty(t, h.Span("admitted").Events(), "a call admitted at once reports nothing")
		waited := h.Events(telemetry.EventRateLimitWaited)
		require.Len(t, waited, 3)
		for i, want := range []struct {
			outcome string
			seconds float64
		}{{telemetry.OutcomeWaited, 0.1}, {telemetry.OutcomeCanceled, 0.02}, {telemetry.OutcomeWaited, 0.08}} {
			h.AssertAttributes(waited[i].Attributes,
				telemetry.KeyPolicyName.String("api"),
				telemetry.KeyOutcome.String(want.outcome),
				telemetry.KeyRateLimitWait.Float64(want.seconds))
		}
		h.AssertAttributes(waited[1].Attributes, telemetry.KeyErrorType.String(telemetry.ErrorTypeCanceled))

		rejected := telemetrytest.EventsOn(h.Span("rejected"), telemetry.EventRateLimitRejected)
		require.Len(t, rejected, 1)
		h.AssertAttributes(rejected[0].Attributes,
			telemetry.KeyPolicyName.String("api"),
			telemetry.KeyOutcome.String(telemetry.OutcomeRejected),
			telemetry.KeyErrorType.String(telemetry.ErrorTypeRateLimited),
			telemetry.KeyRateLimitRetryAfter.Float64(0.1))
		runtime.KeepAlive(l)
	})
}

func TestTelemetry_Events_NoneWhenTheCallersSpanIsNotRecording(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		l := telLimiter(h, "api", 1, time.Second, ratelimit.WithMaxWait(500*time.Millisecond))
		require.NoError(t, l.Call(t.Context(), succeed))
		require.ErrorIs(t, l.Call(t.Context(), succeed), ratelimit.ErrLimited) // a second away
		time.Sleep(600 * time.Millisecond)
		start := time.Now()
		require.NoError(t, l.Call(t.Context(), succeed))
		require.Equal(t, 400*time.Millisecond, time.Since(start), "waited")
		assert.Empty(t, h.Events(telemetry.EventRateLimitRejected))
		assert.Empty(t, h.Events(telemetry.EventRateLimitWaited))
		runtime.KeepAlive(l)
	})
}

func TestTelemetry_AnAdmittedCallDoesNoSDKWork(t *testing.T) {
	h := telemetrytest.New(t)
	l := telLimiter(h, "api", 1_000_000_000, time.Second)
	ctx, caller := h.StartSpan(context.Background(), "request")
	get := resilience.Wrap(func(context.Context) (int, error) { return 1, nil }, ratelimit.Policy[int](l))
	allocs := testing.AllocsPerRun(1000, func() { _, _ = get(ctx) })
	caller.End()
	assert.Zero(t, allocs, "with an SDK installed and a recording span")
	assert.Empty(t, h.Span("request").Events())
	h.AssertInt64(telemetry.MetricRateLimitCalls, 1001, outcome("api", telemetry.OutcomeAdmitted)...)
	runtime.KeepAlive(l)
}

func TestTelemetry_ADroppedLimiterIsGarbageAndStopsReporting(t *testing.T) {
	t.Parallel()
	h := telemetrytest.New(t)
	kept := telLimiter(h, "kept", 1, time.Second)
	collected := make(chan struct{})
	func() {
		dropped := telLimiter(h, "dropped", 1, time.Second, ratelimit.WithKey(tenantOf))
		require.NoError(t, dropped.Call(context.Background(), succeed))
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
	require.True(t, gone, "the dropped limiter was not collected after 20 GCs")
	h.AssertInt64(telemetry.MetricRateLimitCalls, 0, outcome("dropped", telemetry.OutcomeAdmitted)...)
	assert.Len(t, h.Metric(telemetry.MetricRateLimitCalls).Data.(metricdata.Sum[int64]).DataPoints, 4, "only the kept limiter's series")
	runtime.KeepAlive(kept)
}

func TestTelemetry_ARefusingMeterLeavesTheLimiterWorking(t *testing.T) {
	for _, nilInstruments := range []bool{false, true} {
		errs := testkit.CaptureOTelErrors(t)
		l := ratelimit.New("api", 1, time.Second, ratelimit.WithMeterProvider(testkit.FaultyMeterProvider{NilInstruments: nilInstruments}))
		require.NoError(t, l.Call(context.Background(), succeed))
		require.ErrorIs(t, l.Call(context.Background(), succeed), ratelimit.ErrLimited)
		got := errs.Take()
		assert.NotEmpty(t, got)
		for _, err := range got {
			assert.ErrorIs(t, err, testkit.ErrMeterRefused)
		}
	}
}
