package breaker_test

import (
	"context"
	"errors"
	"log"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/internal/fakeclock"
	"github.com/levee-go/levee/resilience"
)

// Faults in the telemetry (an exporter that fails, a meter that refuses its
// instruments or callback, a state-change listener that panics or blocks)
// must never reach a call: every call keeps its result and its error.
// levee hands such faults to the OpenTelemetry error handler (otel.Handle).

var (
	errFaultDependency = errors.New("fault test: dependency failed")
	errSpanExport      = errors.New("fault test: span export failed")
	errMetricExport    = errors.New("fault test: metric export failed")
	errMeterRefused    = errors.New("fault test: meter refused")
)

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

// otelErrors records what reaches the OpenTelemetry error handler.
type otelErrors struct {
	active atomic.Bool
	mu     sync.Mutex
	errs   []error
}

func (h *otelErrors) Handle(err error) {
	if !h.active.Load() {
		// After the test: behave as the default handler does. (The first
		// SetErrorHandler makes the default handler forward here for good.)
		log.Print(err)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.errs = append(h.errs, err)
}

// take returns the errors recorded since the last take.
func (h *otelErrors) take() []error {
	h.mu.Lock()
	defer h.mu.Unlock()
	errs := h.errs
	h.errs = nil
	return errs
}

// captureOTelErrors installs an error handler that records what reaches
// otel.Handle until the test ends, then puts the previous handler back. It
// changes an OpenTelemetry global: only a test that is not parallel may call
// it (parallel tests are paused while it runs).
func captureOTelErrors(t *testing.T) *otelErrors {
	h := &otelErrors{}
	h.active.Store(true)
	previous := otel.GetErrorHandler()
	otel.SetErrorHandler(h)
	t.Cleanup(func() {
		otel.SetErrorHandler(previous)
		h.active.Store(false)
	})
	return h
}

func containsError(errs []error, target error) bool {
	for _, err := range errs {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// failingSpanExporter fails every export.
type failingSpanExporter struct{ exports atomic.Int64 }

func (e *failingSpanExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error {
	e.exports.Add(1)
	return errSpanExport
}
func (e *failingSpanExporter) Shutdown(context.Context) error { return errSpanExport }

// failingMetricExporter fails every export.
type failingMetricExporter struct{ exports atomic.Int64 }

func (e *failingMetricExporter) Temporality(k sdkmetric.InstrumentKind) metricdata.Temporality {
	return sdkmetric.DefaultTemporalitySelector(k)
}
func (e *failingMetricExporter) Aggregation(k sdkmetric.InstrumentKind) sdkmetric.Aggregation {
	return sdkmetric.DefaultAggregationSelector(k)
}
func (e *failingMetricExporter) Export(context.Context, *metricdata.ResourceMetrics) error {
	e.exports.Add(1)
	return errMetricExport
}
func (e *failingMetricExporter) ForceFlush(context.Context) error { return errMetricExport }
func (e *failingMetricExporter) Shutdown(context.Context) error   { return errMetricExport }

// faultyMeterProvider hands out a meter that refuses what levee asks of it.
type faultyMeterProvider struct {
	noop.MeterProvider
	meter faultyMeter
}

func (p faultyMeterProvider) Meter(string, ...metric.MeterOption) metric.Meter { return p.meter }

// faultyMeter fails instrument creation (returning no instrument when
// nilInstruments, a working no-op one otherwise, as SDKs do for a bad name)
// and callback registration.
type faultyMeter struct {
	noop.Meter
	nilInstruments bool
}

func (m faultyMeter) Int64Counter(name string, opts ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	if m.nilInstruments {
		return nil, errMeterRefused
	}
	c, _ := m.Meter.Int64Counter(name, opts...)
	return c, errMeterRefused
}

func (m faultyMeter) Int64ObservableCounter(name string, opts ...metric.Int64ObservableCounterOption) (metric.Int64ObservableCounter, error) {
	if m.nilInstruments {
		return nil, errMeterRefused
	}
	c, _ := m.Meter.Int64ObservableCounter(name, opts...)
	return c, errMeterRefused
}

func (m faultyMeter) Int64ObservableUpDownCounter(name string, opts ...metric.Int64ObservableUpDownCounterOption) (metric.Int64ObservableUpDownCounter, error) {
	if m.nilInstruments {
		return nil, errMeterRefused
	}
	c, _ := m.Meter.Int64ObservableUpDownCounter(name, opts...)
	return c, errMeterRefused
}

func (m faultyMeter) RegisterCallback(metric.Callback, ...metric.Observable) (metric.Registration, error) {
	return nil, errMeterRefused
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
	reported := captureOTelErrors(t)

	t.Run("span exporter fails", func(t *testing.T) {
		exporter := &failingSpanExporter{}
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
		defer func() { _ = tp.Shutdown(context.Background()) }()
		b, clock := newFaultBreaker("span-export", breaker.WithTracerProvider(tp))
		ctx, span := tp.Tracer("test").Start(context.Background(), "caller")
		exerciseBreaker(t, ctx, b, clock)
		span.End()
		assert.Positive(t, exporter.exports.Load(), "transition spans were exported")
		assert.True(t, containsError(reported.take(), errSpanExport), "the export failure reached otel.Handle")
	})

	t.Run("metric exporter fails", func(t *testing.T) {
		exporter := &failingMetricExporter{}
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
		require.Eventually(t, func() bool { return exporter.exports.Load() >= 3 }, 5*time.Second, time.Millisecond,
			"the periodic reader keeps collecting (running the breaker's callback) and failing to export")
		exerciseBreaker(t, context.Background(), b, clock)
		shutDown = true
		require.ErrorIs(t, mp.Shutdown(context.Background()), errMetricExport)
		assert.True(t, containsError(reported.take(), errMetricExport), "the export failure reached otel.Handle")
	})

	for _, nilInstruments := range []bool{true, false} {
		name := "meter refuses instruments and callback"
		if !nilInstruments {
			name = "meter returns instruments with errors and refuses the callback"
		}
		t.Run(name, func(t *testing.T) {
			mp := faultyMeterProvider{meter: faultyMeter{nilInstruments: nilInstruments}}
			b, clock := newFaultBreaker("faulty-meter", breaker.WithMeterProvider(mp))
			exerciseBreaker(t, context.Background(), b, clock)
			errs := reported.take()
			refused := 0
			for _, err := range errs {
				if errors.Is(err, errMeterRefused) {
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
		for _, err := range reported.take() {
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
