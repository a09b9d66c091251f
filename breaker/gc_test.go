package breaker_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	"weak"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/telemetry"
	"github.com/levee-go/levee/telemetry/telemetrytest"
)

// A breaker nobody references any more is garbage: its open timer, its
// registration on the MeterProvider and its listeners included, so that
// dynamic per-host breakers do not leak (DESIGN.md, issue 9 point 6). These
// tests hold breakers through weak pointers only and let the garbage
// collector decide.

// gcCollect runs the garbage collector until every pointer in dropped is
// nil, or 10 times, and returns how many are still alive.
func gcCollect(dropped []weak.Pointer[breaker.Breaker]) (alive int) {
	for range 10 {
		runtime.GC()
		alive = 0
		for _, w := range dropped {
			if w.Value() != nil {
				alive++
			}
		}
		if alive == 0 {
			return 0
		}
	}
	return alive
}

// gcSeriesByName counts the data points of the int64 sum metric name, by
// levee.policy.name.
func gcSeriesByName(rm metricdata.ResourceMetrics, name string) map[string]int {
	series := map[string]int{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			for _, p := range m.Data.(metricdata.Sum[int64]).DataPoints {
				v, _ := p.Attributes.Value(telemetry.KeyPolicyName)
				series[v.AsString()]++
			}
		}
	}
	return series
}

// gcMakeDropped creates n breakers on h's providers, in every condition a
// dynamic per-host breaker may be dropped in: closed and used, open on a
// pending hour-long timer, forced open, guarding a pipeline (resilience.Wrap
// with breaker.Policy), and with a listener that has had changes delivered. It waits (bounded) until those
// listeners have run, so that no delivery goroutine holds a breaker.
func gcMakeDropped(t *testing.T, h *telemetrytest.Harness, n int) []*breaker.Breaker {
	t.Helper()
	ctx := context.Background()
	var delivered, wantDelivered atomic.Int64
	made := make([]*breaker.Breaker, n)
	for i := range made {
		opts := []breaker.Option{breaker.WithFailureThreshold(1), breaker.WithOpenTimeout(time.Hour)}
		if i%5 == 4 {
			opts = append(opts, breaker.WithStateChangeListener(func(breaker.StateChange) { delivered.Add(1) }))
		}
		b := telNewBreaker(h, fmt.Sprintf("dropped-%d", i), opts...)
		switch i % 5 {
		case 0:
			require.NoError(t, b.Call(ctx, telSucceed))
		case 1:
			require.ErrorIs(t, b.Call(ctx, telFail), telErrDown) // open, its timer pending for an hour
		case 2:
			b.ForceOpen(ctx)
		case 3:
			get := resilience.Wrap(func(context.Context) (int, error) { return 1, nil }, breaker.Policy[int](b))
			_, err := get(ctx)
			require.NoError(t, err)
		case 4:
			require.ErrorIs(t, b.Call(ctx, telFail), telErrDown) // open, and a change to deliver
			wantDelivered.Add(1)
		}
		made[i] = b
	}
	require.Eventually(t, func() bool { return delivered.Load() == wantDelivered.Load() }, 10*time.Second, time.Millisecond,
		"the listeners got their %d changes (got %d)", wantDelivered.Load(), delivered.Load())
	return made
}

// TestGC_DroppedBreakersAreCollectedAndStopBeingReported creates 500
// breakers on one SDK MeterProvider beside one that stays referenced, drops
// them (a fifth of them open, with their open timer pending), and requires
// the garbage collector to collect every one of them: neither their timers,
// nor the provider's registration, nor the live sibling keep them alive.
// A collection afterwards reports the live breaker's state and calls series
// and none of the dropped ones'. (levee.circuit_breaker.transitions is a
// synchronous counter: the SDK keeps the cumulative series it has counted,
// as for any counter, whoever counted them.)
func TestGC_DroppedBreakersAreCollectedAndStopBeingReported(t *testing.T) {
	h := telemetrytest.New(t)
	live := telBreaker(t, h, "live", breaker.WithFailureThreshold(1), breaker.WithOpenTimeout(time.Hour))
	require.ErrorIs(t, live.Call(context.Background(), telFail), telErrDown) // open, like some of the dropped
	liveWeak := weak.Make(live)

	const n = 500
	made := gcMakeDropped(t, h, n)
	require.Len(t, gcSeriesByName(h.Collect(), telemetry.MetricBreakerState), n+1, "every breaker is reported while referenced")
	dropped := make([]weak.Pointer[breaker.Breaker], n)
	for i := range made {
		dropped[i] = weak.Make(made[i])
	}
	clear(made) // the last references

	alive := gcCollect(dropped)
	assert.Zero(t, alive, "dropped breakers still alive after 10 collections: %d of %d", alive, n)
	require.NotNil(t, liveWeak.Value(), "the live breaker is still referenced")

	after := h.Collect()
	for _, metric := range []struct {
		name   string
		series int
	}{{telemetry.MetricBreakerState, 3}, {telemetry.MetricBreakerCalls, 4}} {
		assert.Equal(t, map[string]int{"live": metric.series}, gcSeriesByName(after, metric.name),
			"%s: the live breaker's series, and none of the collected ones'", metric.name)
	}
	h.AssertInt64(telemetry.MetricBreakerState, 1,
		telemetry.KeyPolicyName.String("live"), telemetry.KeyBreakerState.String(telemetry.StateOpen))
	assert.Equal(t, breaker.Open, live.State(), "the live breaker works on")
	runtime.KeepAlive(live)
}

// TestGC_ADroppedOpenBreakersTimerFiresAndDoesNothing: in a bubble, a
// breaker dropped while open is collected before its open timer fires; the
// timer then fires (the bubble's clock passes the open timeout) and does
// nothing: no transition, no listener call, no panic.
func TestGC_ADroppedOpenBreakersTimerFiresAndDoesNothing(t *testing.T) {
	t.Parallel()
	boundedSyncTest(t, bubbleBound, func(t *testing.T) {
		h := telemetrytest.New(t)
		var changes atomic.Int64
		dropped := func() weak.Pointer[breaker.Breaker] {
			b := telNewBreaker(h, "dropped", breaker.WithFailureThreshold(1),
				breaker.WithStateChangeListener(func(breaker.StateChange) { changes.Add(1) }))
			require.ErrorIs(t, b.Call(context.Background(), telFail), telErrDown)
			return weak.Make(b)
		}()
		synctest.Wait()
		require.Equal(t, int64(1), changes.Load(), "closed -> open delivered")
		require.Zero(t, gcCollect([]weak.Pointer[breaker.Breaker]{dropped}), "the open breaker is garbage though its timer is pending")

		time.Sleep(breaker.DefaultOpenTimeout)
		synctest.Wait()
		assert.Equal(t, int64(1), changes.Load(), "the timer of a collected breaker makes no change")
		h.AssertInt64(telemetry.MetricBreakerTransitions, 0, telemetry.KeyBreakerTo.String(telemetry.StateHalfOpen))
	})
}

// gcHeap returns the bytes of live heap objects after a full collection.
func gcHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestGC_HeapPerBreakerIsAtMostOneKiB creates 10 000 breakers on one SDK
// MeterProvider and TracerProvider and measures the heap they hold: at most
// 1 KiB each, their registration included (the names, the user's, are made
// beforehand). Dropped, they give it all back: once a collection has
// forgotten them, the heap is within 64 bytes a breaker of where it was.
// Not parallel: it reads the whole process's heap.
func TestGC_HeapPerBreakerIsAtMostOneKiB(t *testing.T) {
	const n = 10000
	h := telemetrytest.New(t)
	_ = telBreaker(t, h, "first") // the provider's instruments and callback, made for its first breaker
	opts := []breaker.Option{breaker.WithTracerProvider(h.TracerProvider), breaker.WithMeterProvider(h.MeterProvider)}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("host-%d", i)
	}
	keep := make([]*breaker.Breaker, n)

	before := gcHeap()
	for i := range keep {
		keep[i] = breaker.New(names[i], opts...)
	}
	held := gcHeap()
	perBreaker := float64(held-before) / n
	t.Logf("heap per breaker: %.0f bytes", perBreaker)
	assert.LessOrEqual(t, perBreaker, 1024.0, "heap per breaker")
	runtime.KeepAlive(keep)

	clear(keep)
	runtime.GC()
	_ = h.Collect() // the provider's callback forgets the collected breakers
	released := gcHeap()
	left := (float64(released) - float64(before)) / n
	t.Logf("heap left per dropped breaker: %.0f bytes", left)
	assert.LessOrEqual(t, left, 64.0, "heap left per dropped breaker once a collection has forgotten it")
	runtime.KeepAlive(names)
}

// TestGC_ADroppedBreakerWithATickingTimeWindowIsCollected: a time window's
// timer holds the window, not the breaker, so a breaker dropped while its
// window's timer is pending is garbage; the timer then finds no call and
// stops.
func TestGC_ADroppedBreakerWithATickingTimeWindowIsCollected(t *testing.T) {
	t.Parallel()
	boundedSyncTest(t, bubbleBound, func(t *testing.T) {
		dropped := func() weak.Pointer[breaker.Breaker] {
			b := breaker.New("ticking", breaker.WithTimeWindow(time.Minute, 60), breaker.WithFailureRate(0.5))
			require.NoError(t, b.Call(context.Background(), telSucceed)) // the window's timer is armed
			return weak.Make(b)
		}()
		assert.Zero(t, gcCollect([]weak.Pointer[breaker.Breaker]{dropped}), "the pending tick keeps the breaker alive")
		time.Sleep(time.Hour)
		synctest.Wait()
	})
}
