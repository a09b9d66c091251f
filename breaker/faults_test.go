package breaker_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/internal/fakeclock"
	"github.com/levee-go/levee/internal/testkit"
	"github.com/levee-go/levee/resilience"
)

// Faults in the telemetry (an exporter that fails, a meter that refuses its
// instruments or callback, a state-change listener that panics or blocks)
// must never reach a call: every call keeps its result and its error.
// levee hands such faults to the OpenTelemetry error handler (otel.Handle).

var errFaultDependency = errors.New("fault test: dependency failed")

// faultOpenTimeout is the open timeout of the breakers exercised here.
const faultOpenTimeout = time.Second

// exerciseBreaker takes b (threshold 2, closed at the start, open timeout faultOpenTimeout, on
// clock) through closed -> open -> half-open -> closed with every kind of
// call, through Call and through Policy, and requires each call's result to
// be exactly the function's, or the rejection's.
func exerciseBreaker(t *testing.T, ctx context.Context, b *breaker.Breaker, clock *fakeclock.Clock) {
	t.Helper()
	before := b.Counts()
	get := resilience.Wrap(func(context.Context) (string, error) { return "fresh", nil }, breaker.Policy[string](b))
	v, err := get(ctx)
	require.NoError(t, err)
	require.Equal(t, "fresh", v)

	require.Same(t, errFaultDependency, b.Call(ctx, func(context.Context) error { return errFaultDependency }))
	token := new(int)
	require.Equal(t, token, recoverFrom(func() { _ = b.Call(ctx, func(context.Context) error { panic(token) }) }),
		"the function's panic comes back unchanged")
	require.Equal(t, breaker.Open, b.State(), "two failures open it")

	ran := false
	v, err = resilience.Wrap(func(context.Context) (string, error) { ran = true; return "fresh", nil }, breaker.Policy[string](b))(ctx)
	require.ErrorIs(t, err, breaker.ErrOpen)
	require.False(t, ran, "a rejected call does not run")
	require.Empty(t, v)

	clock.Advance(faultOpenTimeout)
	require.Equal(t, breaker.HalfOpen, b.State())
	canceled, cancel := context.WithCancel(ctx)
	require.Same(t, context.Canceled, b.Call(canceled, func(ctx context.Context) error { cancel(); return ctx.Err() }))
	v, err = get(ctx)
	require.NoError(t, err, "the probe")
	require.Equal(t, "fresh", v)
	require.Equal(t, breaker.Closed, b.State())
	after := b.Counts()
	require.Equal(t, breaker.Counts{Success: 2, Failure: 2, Rejected: 1, Ignored: 1}, breaker.Counts{
		Success:  after.Success - before.Success,
		Failure:  after.Failure - before.Failure,
		Rejected: after.Rejected - before.Rejected,
		Ignored:  after.Ignored - before.Ignored,
	}, "the calls made are counted")
}

func recoverFrom(f func()) (r any) {
	defer func() { r = recover() }()
	f()
	return nil
}

func containsError(errs []error, target error) bool {
	for _, err := range errs {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

func newFaultBreaker(name string, opts ...breaker.Option) (*breaker.Breaker, *fakeclock.Clock) {
	clock := fakeclock.New()
	return breaker.New(name, append([]breaker.Option{
		breaker.WithFailureThreshold(2),
		breaker.WithOpenTimeout(faultOpenTimeout),
		breaker.WithClock(clock.Now),
	}, opts...)...), clock
}

// TestFaults_TelemetryFaultsNeverReachACall is deliberately not parallel: it
// installs an OpenTelemetry error handler (a global) for its duration, to
// check that each fault is reported there rather than lost or handed to a
// caller.
func TestFaults_TelemetryFaultsNeverReachACall(t *testing.T) {
	reported := testkit.CaptureOTelErrors(t)

	t.Run("span exporter fails", func(t *testing.T) {
		exporter := &testkit.FailingSpanExporter{}
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
		defer func() { _ = tp.Shutdown(context.Background()) }()
		b, clock := newFaultBreaker("span-export", breaker.WithTracerProvider(tp))
		ctx, span := tp.Tracer("test").Start(context.Background(), "caller")
		exerciseBreaker(t, ctx, b, clock)
		span.End()
		assert.Positive(t, exporter.Exports(), "transition spans were exported")
		assert.True(t, containsError(reported.Take(), testkit.ErrSpanExport), "the export failure reached otel.Handle")
	})

	t.Run("metric exporter fails", func(t *testing.T) {
		exporter := &testkit.FailingMetricExporter{}
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(
			sdkmetric.NewPeriodicReader(exporter, sdkmetric.WithInterval(time.Millisecond))))
		shutDown := false
		defer func() {
			if !shutDown {
				_ = mp.Shutdown(context.Background())
			}
		}()
		b, clock := newFaultBreaker("metric-export", breaker.WithMeterProvider(mp))
		exerciseBreaker(t, context.Background(), b, clock)
		require.Eventually(t, func() bool { return exporter.Exports() >= 3 }, 5*time.Second, time.Millisecond,
			"the periodic reader keeps collecting (running the breaker's callback) and failing to export")
		exerciseBreaker(t, context.Background(), b, clock)
		shutDown = true
		require.ErrorIs(t, mp.Shutdown(context.Background()), testkit.ErrMetricExport)
		assert.True(t, containsError(reported.Take(), testkit.ErrMetricExport), "the export failure reached otel.Handle")
	})

	for _, nilInstruments := range []bool{true, false} {
		name := "meter refuses instruments and callback"
		if !nilInstruments {
			name = "meter returns instruments with errors and refuses the callback"
		}
		t.Run(name, func(t *testing.T) {
			mp := testkit.FaultyMeterProvider{NilInstruments: nilInstruments}
			b, clock := newFaultBreaker("faulty-meter", breaker.WithMeterProvider(mp))
			exerciseBreaker(t, context.Background(), b, clock)
			errs := reported.Take()
			refused := 0
			for _, err := range errs {
				if errors.Is(err, testkit.ErrMeterRefused) {
					refused++
				}
			}
			want := 3 // three instruments
			if !nilInstruments {
				want = 4 // and the callback, registered once the instruments exist
			}
			assert.Equal(t, want, refused, "each refusal reached otel.Handle once: %v", errs)
		})
	}

	t.Run("state-change listener panics", func(t *testing.T) {
		var seen []string
		b, clock := newFaultBreaker("panicking-listener",
			breaker.WithStateChangeListener(func(c breaker.StateChange) { panic("listener bug on " + c.To.String()) }),
			breaker.WithStateChangeListener(func(c breaker.StateChange) { seen = append(seen, c.From.String()+">"+c.To.String()) }))
		exerciseBreaker(t, context.Background(), b, clock)
		assert.Equal(t, []string{"closed>open", "open>half-open", "half-open>closed"}, seen,
			"the listeners after the panicking one still get every change")
		var panics []string
		for _, err := range reported.Take() {
			if strings.Contains(err.Error(), "listener bug") {
				panics = append(panics, err.Error())
			}
		}
		assert.Len(t, panics, 3, "each panic reached otel.Handle")
	})
}

// TestFaults_BlockingListenerHoldsUpOnlyTheDeliveringGoroutine blocks a
// listener on the first change: the call that made that change waits for
// it, but every other goroutine's calls (and changes) go on, and the changes
// made meanwhile reach the listener in order once it returns.
func TestFaults_BlockingListenerHoldsUpOnlyTheDeliveringGoroutine(t *testing.T) {
	t.Parallel()
	var (
		mu      sync.Mutex
		seen    []string
		blocked = make(chan struct{})
		release = make(chan struct{})
		first   sync.Once
	)
	snapshot := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
	b, clock := newFaultBreaker("blocking-listener", breaker.WithStateChangeListener(func(c breaker.StateChange) {
		mu.Lock()
		seen = append(seen, c.From.String()+">"+c.To.String())
		mu.Unlock()
		first.Do(func() {
			close(blocked)
			<-release
		})
	}))
	ctx := context.Background()
	require.NoError(t, b.Call(ctx, func(context.Context) error { return nil }))
	require.Same(t, errFaultDependency, b.Call(ctx, func(context.Context) error { return errFaultDependency }))

	tripped := make(chan error, 1)
	go func() { tripped <- b.Call(ctx, func(context.Context) error { return errFaultDependency }) }()
	select {
	case <-blocked:
	case <-time.After(10 * time.Second):
		t.Fatal("the listener was never called")
	}

	// The listener now blocks the goroutine that tripped the breaker.
	others := make(chan struct{})
	go func() {
		defer close(others)
		assert.ErrorIs(t, b.Call(ctx, func(context.Context) error { return nil }), breaker.ErrOpen)
		clock.Advance(faultOpenTimeout)
		assert.Equal(t, breaker.HalfOpen, b.State())
		assert.NoError(t, b.Call(ctx, func(context.Context) error { return nil }), "the probe")
		assert.Equal(t, breaker.Closed, b.State())
		for range 2 {
			assert.Same(t, errFaultDependency, b.Call(ctx, func(context.Context) error { return errFaultDependency }))
		}
		assert.Equal(t, breaker.Open, b.State())
		b.Reset(ctx)
		b.ForceOpen(ctx)
	}()
	select {
	case <-others:
	case <-time.After(10 * time.Second):
		t.Fatal("calls of other goroutines did not complete while a listener blocked")
	}
	assert.Equal(t, []string{"closed>open"}, snapshot(), "changes wait while the listener blocks")
	select {
	case err := <-tripped:
		t.Fatalf("the call that made the change returned (%v) before its listener did", err)
	default:
	}

	close(release)
	select {
	case err := <-tripped:
		assert.Same(t, errFaultDependency, err, "the call keeps its own error")
	case <-time.After(10 * time.Second):
		t.Fatal("the tripping call did not return once the listener did")
	}
	assert.Equal(t, []string{
		"closed>open", "open>half-open", "half-open>closed", "closed>open", "open>closed", "closed>open",
	}, snapshot(), "every change, in order")
	assert.Equal(t, breaker.Counts{Success: 2, Failure: 4, Rejected: 1}, b.Counts())
}

// TestFaults_PanickingIsFailurePredicateNeverHoldsTheProbeSlot: a
// WithIsFailure predicate that panics is a bug in the caller's code, but it
// must not wedge the breaker: the call counts as a failure (as a panic in
// the function does), the panic reaches the caller, and the probe slot is
// free again.
func TestFaults_PanickingIsFailurePredicateNeverHoldsTheProbeSlot(t *testing.T) {
	t.Parallel()
	errOdd := errors.New("an error the predicate cannot handle")
	b, clock := newFaultBreaker("panicking-predicate", breaker.WithIsFailure(func(err error) bool {
		if errors.Is(err, errOdd) {
			panic("predicate bug")
		}
		return true
	}))
	ctx := context.Background()
	for range 2 {
		require.Same(t, errFaultDependency, b.Call(ctx, func(context.Context) error { return errFaultDependency }))
	}
	clock.Advance(faultOpenTimeout)
	require.Equal(t, breaker.HalfOpen, b.State())
	require.Equal(t, "predicate bug", recoverFrom(func() { _ = b.Call(ctx, func(context.Context) error { return errOdd }) }))
	assert.Equal(t, breaker.Open, b.State(), "the probe counts as failed: open again")
	assert.Equal(t, breaker.Counts{Failure: 3}, b.Counts(), "the call is counted")
	clock.Advance(faultOpenTimeout)
	assert.NoError(t, b.Call(ctx, func(context.Context) error { return nil }), "a new probe gets through")
	assert.Equal(t, breaker.Closed, b.State())
}
