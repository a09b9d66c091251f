package bulkhead_test

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/levee-go/levee/bulkhead"
	"github.com/levee-go/levee/internal/emit"
	"github.com/levee-go/levee/internal/testkit"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/telemetry"
	"github.com/levee-go/levee/telemetry/telemetrytest"
)

// Tests of the bulkhead rows of docs/telemetry.md.

func telBulkhead(h *telemetrytest.Harness, name string, limit int, opts ...bulkhead.Option) *bulkhead.Bulkhead {
	return bulkhead.New(name, limit, append([]bulkhead.Option{
		bulkhead.WithTracerProvider(h.TracerProvider),
		bulkhead.WithMeterProvider(h.MeterProvider),
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
		b := telBulkhead(h, "db", 1, bulkhead.WithMaxWait(time.Second))
		assertInstrument(t, h, telemetry.MetricBulkheadCalls, sdkmetric.InstrumentKindObservableCounter, telemetry.UnitCall)
		every := []string{telemetry.OutcomeAdmitted, telemetry.OutcomeWaited, telemetry.OutcomeRejected, telemetry.OutcomeTimedOut, telemetry.OutcomeCanceled}
		sum := h.Metric(telemetry.MetricBulkheadCalls).Data.(metricdata.Sum[int64])
		assert.True(t, sum.IsMonotonic)
		assert.Len(t, sum.DataPoints, len(every), "every outcome reported from construction")
		for _, o := range every {
			h.AssertInt64(telemetry.MetricBulkheadCalls, 0, outcome("db", o)...)
		}

		require.NoError(t, b.Call(t.Context(), succeed)) // admitted
		require.NoError(t, b.Call(t.Context(), succeed)) // admitted
		held := hold(t, b)                               // admitted
		go func() {
			time.Sleep(10 * time.Millisecond)
			held.release(t)
		}()
		require.NoError(t, b.Call(t.Context(), succeed))                   // waited
		held = hold(t, b)                                                  // admitted
		require.ErrorIs(t, b.Call(t.Context(), succeed), bulkhead.ErrFull) // timed out
		ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
		require.ErrorIs(t, b.Call(ctx, succeed), context.DeadlineExceeded) // canceled while waiting
		cancel()
		require.ErrorIs(t, b.Call(ctx, succeed), context.DeadlineExceeded) // canceled on arrival
		held.release(t)

		noWait := telBulkhead(h, "cache", 1)
		held = hold(t, noWait)
		require.ErrorIs(t, noWait.Call(t.Context(), succeed), bulkhead.ErrFull) // rejected
		held.release(t)

		for o, want := range map[string]int64{
			telemetry.OutcomeAdmitted: 4,
			telemetry.OutcomeWaited:   1,
			telemetry.OutcomeRejected: 0,
			telemetry.OutcomeTimedOut: 1,
			telemetry.OutcomeCanceled: 2,
		} {
			h.AssertInt64(telemetry.MetricBulkheadCalls, want, outcome("db", o)...)
		}
		h.AssertInt64(telemetry.MetricBulkheadCalls, 1, outcome("cache", telemetry.OutcomeAdmitted)...)
		h.AssertInt64(telemetry.MetricBulkheadCalls, 1, outcome("cache", telemetry.OutcomeRejected)...)
		runtime.KeepAlive(b) // a bulkhead nobody references stops reporting
		runtime.KeepAlive(noWait)
	})
}

func TestTelemetry_InFlightAndQueuedGauges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		b := telBulkhead(h, "db", 2, bulkhead.WithMaxWait(time.Minute))
		assertInstrument(t, h, telemetry.MetricBulkheadInFlight, sdkmetric.InstrumentKindObservableUpDownCounter, telemetry.UnitCall)
		assertInstrument(t, h, telemetry.MetricBulkheadQueued, sdkmetric.InstrumentKindObservableUpDownCounter, telemetry.UnitCall)
		name := telemetry.KeyPolicyName.String("db")
		h.AssertInt64(telemetry.MetricBulkheadInFlight, 0, name)
		h.AssertInt64(telemetry.MetricBulkheadQueued, 0, name)

		first, second := hold(t, b), hold(t, b)
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() { assert.NoError(t, b.Call(t.Context(), succeed)) })
		}
		synctest.Wait()
		h.AssertInt64(telemetry.MetricBulkheadInFlight, 2, name)
		h.AssertInt64(telemetry.MetricBulkheadQueued, 3, name)

		first.release(t)
		second.release(t)
		wg.Wait()
		h.AssertInt64(telemetry.MetricBulkheadInFlight, 0, name)
		h.AssertInt64(telemetry.MetricBulkheadQueued, 0, name)
		runtime.KeepAlive(b)
	})
}

func TestTelemetry_Events_RejectionsAndWaitsOnTheCallersSpan(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		b := telBulkhead(h, "db", 1, bulkhead.WithMaxWait(50*time.Millisecond))
		noWait := telBulkhead(h, "cache", 1)
		call := func(b *bulkhead.Bulkhead, span string, ctx context.Context) {
			ctx, caller := h.StartSpan(ctx, span)
			_ = b.Call(ctx, succeed)
			caller.End()
		}

		held := hold(t, noWait)
		call(noWait, "rejected", t.Context())
		held.release(t)

		held = hold(t, b)
		call(b, "timed out", t.Context())
		go func() {
			time.Sleep(20 * time.Millisecond)
			held.release(t)
		}()
		call(b, "waited", t.Context())
		held = hold(t, b)
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Millisecond)
		call(b, "canceled", ctx)
		cancel()
		held.release(t)
		call(b, "admitted", t.Context())

		rejected := telemetrytest.EventsOn(h.Span("rejected"), telemetry.EventBulkheadRejected)
		require.Len(t, rejected, 1)
		h.AssertAttributes(rejected[0].Attributes,
			telemetry.KeyPolicyName.String("cache"),
			telemetry.KeyOutcome.String(telemetry.OutcomeRejected),
			telemetry.KeyErrorType.String(telemetry.ErrorTypeBulkheadFull))
		assert.Len(t, rejected[0].Attributes, 3)

		timedOut := telemetrytest.EventsOn(h.Span("timed out"), telemetry.EventBulkheadRejected)
		require.Len(t, timedOut, 1)
		h.AssertAttributes(timedOut[0].Attributes,
			telemetry.KeyPolicyName.String("db"),
			telemetry.KeyOutcome.String(telemetry.OutcomeTimedOut),
			telemetry.KeyErrorType.String(telemetry.ErrorTypeBulkheadFull),
			telemetry.KeyBulkheadWait.Float64(0.05))

		waited := telemetrytest.EventsOn(h.Span("waited"), telemetry.EventBulkheadWaited)
		require.Len(t, waited, 1)
		h.AssertAttributes(waited[0].Attributes,
			telemetry.KeyPolicyName.String("db"),
			telemetry.KeyOutcome.String(telemetry.OutcomeWaited),
			telemetry.KeyBulkheadWait.Float64(0.02))

		canceled := telemetrytest.EventsOn(h.Span("canceled"), telemetry.EventBulkheadWaited)
		require.Len(t, canceled, 1)
		h.AssertAttributes(canceled[0].Attributes,
			telemetry.KeyPolicyName.String("db"),
			telemetry.KeyOutcome.String(telemetry.OutcomeCanceled),
			telemetry.KeyErrorType.String(telemetry.ErrorTypeTimeout),
			telemetry.KeyBulkheadWait.Float64(0.005))

		assert.Empty(t, h.Span("admitted").Events(), "a call admitted at once reports nothing")
		for _, span := range []string{"rejected", "timed out", "waited", "canceled"} {
			assert.Len(t, h.Span(span).Events(), 1, "one event for the call on span %q", span)
		}
	})
}

func TestTelemetry_Events_NoneWhenTheCallersSpanIsNotRecording(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		b := telBulkhead(h, "db", 1, bulkhead.WithMaxWait(10*time.Millisecond))
		held := hold(t, b)
		_, ended := h.StartSpan(t.Context(), "ended")
		ended.End()
		ctx := context.Background()
		require.ErrorIs(t, b.Call(ctx, succeed), bulkhead.ErrFull)
		held.release(t)
		assert.Empty(t, h.Events(telemetry.EventBulkheadRejected))
		assert.Empty(t, h.Events(telemetry.EventBulkheadWaited))
	})
}

func TestTelemetry_AnAdmittedCallDoesNoSDKWork(t *testing.T) {
	h := telemetrytest.New(t)
	b := telBulkhead(h, "db", 4)
	ctx, caller := h.StartSpan(context.Background(), "request")
	get := resilience.Wrap(func(context.Context) (int, error) { return 1, nil }, bulkhead.Policy[int](b))
	allocs := testing.AllocsPerRun(1000, func() { _, _ = get(ctx) })
	caller.End()
	assert.Zero(t, allocs, "with an SDK installed and a recording span")
	assert.Empty(t, h.Span("request").Events())
	h.AssertInt64(telemetry.MetricBulkheadCalls, 1001, outcome("db", telemetry.OutcomeAdmitted)...)
	runtime.KeepAlive(b)
}

func TestTelemetry_OneSetOfInstrumentsPerProvider(t *testing.T) {
	t.Parallel()
	h := telemetrytest.New(t)
	a, b := telBulkhead(h, "a", 1), telBulkhead(h, "b", 1)
	require.NoError(t, a.Call(context.Background(), succeed))
	require.NoError(t, b.Call(context.Background(), succeed))
	require.NoError(t, b.Call(context.Background(), succeed))
	h.AssertInt64(telemetry.MetricBulkheadCalls, 1, outcome("a", telemetry.OutcomeAdmitted)...)
	h.AssertInt64(telemetry.MetricBulkheadCalls, 2, outcome("b", telemetry.OutcomeAdmitted)...)
	// Five outcome series per bulkhead: the callback reports each once.
	sum := h.Metric(telemetry.MetricBulkheadCalls).Data.(metricdata.Sum[int64])
	assert.Len(t, sum.DataPoints, 10)
	runtime.KeepAlive(a)
	runtime.KeepAlive(b)
}

func TestTelemetry_ADroppedBulkheadIsGarbageAndStopsReporting(t *testing.T) {
	t.Parallel()
	h := telemetrytest.New(t)
	keep := telBulkhead(h, "kept", 1)
	collected := make(chan struct{})
	func() {
		dropped := telBulkhead(h, "dropped", 1)
		require.NoError(t, dropped.Call(context.Background(), succeed))
		runtime.AddCleanup(dropped, func(ch chan struct{}) { close(ch) }, collected)
	}()
	h.AssertInt64(telemetry.MetricBulkheadInFlight, 0, telemetry.KeyPolicyName.String("dropped"))
	gone := false
	for range 20 {
		runtime.GC()
		select {
		case <-collected:
			gone = true
		case <-time.After(10 * time.Millisecond):
		}
		if gone {
			break
		}
	}
	require.True(t, gone, "the dropped bulkhead was not collected after 20 GCs")
	sum := h.Metric(telemetry.MetricBulkheadCalls).Data.(metricdata.Sum[int64])
	assert.Len(t, sum.DataPoints, 5, "only the kept bulkhead's series")
	h.AssertInt64(telemetry.MetricBulkheadCalls, 0, outcome("dropped", telemetry.OutcomeAdmitted)...)
	runtime.KeepAlive(keep)
}

// A meter that refuses levee's instruments costs the bulkhead its metrics,
// reported to otel.Handle, and nothing else.
func TestTelemetry_ARefusingMeterLeavesTheBulkheadWorking(t *testing.T) {
	for _, nilInstruments := range []bool{false, true} {
		errs := testkit.CaptureOTelErrors(t)
		b := bulkhead.New("db", 1, bulkhead.WithMeterProvider(testkit.FaultyMeterProvider{NilInstruments: nilInstruments}))
		require.NoError(t, b.Call(context.Background(), succeed))
		got := errs.Take()
		assert.NotEmpty(t, got)
		for _, err := range got {
			assert.ErrorIs(t, err, testkit.ErrMeterRefused)
		}
	}
}
