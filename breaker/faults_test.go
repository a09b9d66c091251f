package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/internal/testkit"
	"github.com/levee-go/levee/resilience"
)

// Faults in the telemetry (an exporter that fails or panics, a meter that
// refuses its instruments or callback), in a state-change listener (one
// that panics or blocks) or in the user's error values (a RetryAfter method
// that panics) must never reach a call: every call keeps its result and its
// error, no probe slot stays taken, and nothing crashes a goroutine of
// levee's. levee hands such faults to the OpenTelemetry error handler
// (otel.Handle). Every test here runs in a synctest bubble: the open timer
// fires when the test sleeps past the open timeout.

var errFaultDependency = errors.New("fault test: dependency failed")

// faultOpenTimeout is the open timeout of the breakers exercised here.
const faultOpenTimeout = time.Second

// exerciseBreaker takes b (threshold 2, closed at the start, open timeout
// faultOpenTimeout) through closed -> open -> half-open -> closed with every
// kind of call, through Call and through Policy, and requires each call's
// result to be exactly the function's, or the rejection's. It runs in a
// bubble: the open timer makes the half-open transition.
func exerciseBreaker(t *testing.T, ctx context.Context, b *breaker.Breaker) {
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

	time.Sleep(faultOpenTimeout)
	synctest.Wait()
	require.Equal(t, breaker.HalfOpen, b.State(), "the open timer made it half-open")
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
	synctest.Wait() // the listeners have had every change
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

// reportsContaining returns the messages of errs that contain every one of
// parts.
func reportsContaining(errs []error, parts ...string) []string {
	var found []string
next:
	for _, err := range errs {
		msg := err.Error()
		for _, part := range parts {
			if !strings.Contains(msg, part) {
				continue next
			}
		}
		found = append(found, msg)
	}
	return found
}

func newFaultBreaker(name string, opts ...breaker.Option) *breaker.Breaker {
	return breaker.New(name, append([]breaker.Option{
		breaker.WithFailureThreshold(2),
		breaker.WithOpenTimeout(faultOpenTimeout),
	}, opts...)...)
}

// faultChanges records the changes a listener sees, as "from>to".
type faultChanges struct {
	mu   sync.Mutex
	seen []string
}

func (r *faultChanges) listener() breaker.Option {
	return breaker.WithStateChangeListener(func(c breaker.StateChange) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.seen = append(r.seen, c.From.String()+">"+c.To.String())
	})
}

func (r *faultChanges) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

// TestFaults_TelemetryFaultsNeverReachACall is deliberately not parallel: it
// installs an OpenTelemetry error handler (a global) for its duration, to
// check that each fault is reported there rather than lost or handed to a
// caller.
func TestFaults_TelemetryFaultsNeverReachACall(t *testing.T) {
	reported := testkit.CaptureOTelErrors(t)

	t.Run("span exporter fails", func(t *testing.T) {
		boundedSyncTest(t, bubbleBound, func(t *testing.T) {
			exporter := &testkit.FailingSpanExporter{}
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
			defer func() { _ = tp.Shutdown(context.Background()) }()
			b := newFaultBreaker("span-export", breaker.WithTracerProvider(tp))
			ctx, span := tp.Tracer("test").Start(context.Background(), "caller")
			exerciseBreaker(t, ctx, b)
			span.End()
			assert.Positive(t, exporter.Exports(), "transition spans were exported")
			assert.True(t, containsError(reported.Take(), testkit.ErrSpanExport), "the export failure reached otel.Handle")
		})
	})

	t.Run("metric exporter fails", func(t *testing.T) {
		boundedSyncTest(t, bubbleBound, func(t *testing.T) {
			exporter := &testkit.FailingMetricExporter{}
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(
				sdkmetric.NewPeriodicReader(exporter, sdkmetric.WithInterval(100*time.Millisecond))))
			shutDown := false
			defer func() {
				if !shutDown {
					_ = mp.Shutdown(context.Background())
				}
			}()
			b := newFaultBreaker("metric-export", breaker.WithMeterProvider(mp))
			exerciseBreaker(t, context.Background(), b)
			time.Sleep(350 * time.Millisecond)
			synctest.Wait()
			require.GreaterOrEqual(t, exporter.Exports(), int64(3),
				"the periodic reader keeps collecting (running the breaker's callback) and failing to export")
			exerciseBreaker(t, context.Background(), b)
			shutDown = true
			require.ErrorIs(t, mp.Shutdown(context.Background()), testkit.ErrMetricExport)
			assert.True(t, containsError(reported.Take(), testkit.ErrMetricExport), "the export failure reached otel.Handle")
		})
	})

	for _, nilInstruments := range []bool{true, false} {
		name := "meter refuses instruments and callback"
		if !nilInstruments {
			name = "meter returns instruments with errors and refuses the callback"
		}
		t.Run(name, func(t *testing.T) {
			boundedSyncTest(t, bubbleBound, func(t *testing.T) {
				mp := testkit.FaultyMeterProvider{NilInstruments: nilInstruments}
				b := newFaultBreaker("faulty-meter", breaker.WithMeterProvider(mp))
				exerciseBreaker(t, context.Background(), b)
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
		})
	}

	// Issue 12's instruments: the rate gauges and the duration histogram of
	// a breaker that has a window, times its calls and records them.
	for _, nilInstruments := range []bool{true, false} {
		t.Run(fmt.Sprintf("meter refuses the gauges and the histogram too (nil instruments: %v)", nilInstruments), func(t *testing.T) {
			boundedSyncTest(t, bubbleBound, func(t *testing.T) {
				mp := faultFloatMeterProvider{testkit.FaultyMeterProvider{NilInstruments: nilInstruments}}
				b := newFaultBreaker("faulty-float-meter", breaker.WithMeterProvider(mp), breaker.WithCountWindow(10),
					breaker.WithSlowCallDuration(time.Second), breaker.WithCallDurationHistogram())
				exerciseBreaker(t, context.Background(), b)
				refused := 0
				for _, err := range reported.Take() {
					if errors.Is(err, testkit.ErrMeterRefused) {
						refused++
					}
				}
				want := 6 // six instruments
				if !nilInstruments {
					want = 7 // and the callback
				}
				assert.Equal(t, want, refused, "each refusal reached otel.Handle once")
			})
		})
	}

	t.Run("duration histogram panics", func(t *testing.T) {
		boundedSyncTest(t, bubbleBound, func(t *testing.T) {
			b := newFaultBreaker("panicking-histogram", breaker.WithMeterProvider(faultPanickingHistogramProvider{}), breaker.WithCallDurationHistogram())
			exerciseBreaker(t, context.Background(), b)
			panics := reportsContaining(reported.Take(), "histogram bug")
			assert.NotEmpty(t, panics, "each panic reached otel.Handle")
		})
	})

	t.Run("state-change listener panics", func(t *testing.T) {
		boundedSyncTest(t, bubbleBound, func(t *testing.T) {
			var changes faultChanges
			b := newFaultBreaker("panicking-listener",
				breaker.WithStateChangeListener(func(c breaker.StateChange) { panic("listener bug on " + c.To.String()) }),
				changes.listener())
			exerciseBreaker(t, context.Background(), b)
			assert.Equal(t, []string{"closed>open", "open>half-open", "half-open>closed"}, changes.get(),
				"the listeners after the panicking one still get every change")
			panics := reportsContaining(reported.Take(), "listener bug", `"panicking-listener"`)
			assert.Len(t, panics, 3, "each panic reached otel.Handle, naming the breaker")
		})
	})
}

// faultPanickingSpanExporter panics in every export: a bug in an exporter
// used as a syncer, which runs on the goroutine that ends the span.
type faultPanickingSpanExporter struct{ exports atomic.Int64 }

func (e *faultPanickingSpanExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error {
	e.exports.Add(1)
	panic("span exporter bug")
}

func (e *faultPanickingSpanExporter) Shutdown(context.Context) error { return nil }

var _ sdktrace.SpanExporter = (*faultPanickingSpanExporter)(nil)

// TestFaults_PanickingSpanExporterNeverReachesACallNorStopsDeliveries: a
// span exporter that panics at every transition span. The call that trips
// the breaker returns its own error, the probe's call its own result, the
// open timer's goroutine survives its own transition's panic (a crash there
// would end the test binary), each panic reaches otel.Handle, and the
// listener still gets every change, the later ones included. Not parallel:
// it captures otel.Handle.
func TestFaults_PanickingSpanExporterNeverReachesACallNorStopsDeliveries(t *testing.T) {
	reported := testkit.CaptureOTelErrors(t)
	boundedSyncTest(t, bubbleBound, func(t *testing.T) {
		exporter := &faultPanickingSpanExporter{}
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
		defer func() { _ = tp.Shutdown(context.Background()) }()
		// The callers' spans come from a provider of their own, so that
		// only the breaker's spans meet the panicking exporter.
		callers := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder()))
		defer func() { _ = callers.Shutdown(context.Background()) }()
		var changes faultChanges
		b := newFaultBreaker("panicking-exporter", breaker.WithTracerProvider(tp), changes.listener())
		ctx, span := callers.Tracer("test").Start(context.Background(), "caller")
		defer span.End()
		failing := func(context.Context) error { return errFaultDependency }

		require.Same(t, errFaultDependency, b.Call(ctx, failing))
		require.NotPanics(t, func() {
			require.Same(t, errFaultDependency, b.Call(ctx, failing), "the tripping call returns its own error")
		})
		require.Equal(t, breaker.Open, b.State())
		require.Equal(t, int64(1), exporter.exports.Load(), "the closed -> open span met the exporter")
		assert.Len(t, reportsContaining(reported.Take(), "span exporter bug"), 1, "the panic on the caller's goroutine reached otel.Handle")

		time.Sleep(faultOpenTimeout) // the timer's goroutine makes the transition and ends its span
		synctest.Wait()
		require.Equal(t, breaker.HalfOpen, b.State(), "the timer's transition was made despite its span's panic")
		require.Equal(t, int64(2), exporter.exports.Load(), "the open -> half-open span met the exporter")
		assert.Len(t, reportsContaining(reported.Take(), "span exporter bug"), 1, "the panic on the timer's goroutine reached otel.Handle")

		require.NotPanics(t, func() {
			require.NoError(t, b.Call(ctx, func(context.Context) error { return nil }), "the probe returns its own result")
		})
		require.Equal(t, breaker.Closed, b.State())
		b.ForceOpen(ctx)
		b.Reset(ctx)
		synctest.Wait()
		assert.Equal(t, []string{"closed>open", "open>half-open", "half-open>closed", "closed>open", "open>closed"}, changes.get(),
			"the listener gets every change, the ones after each panic included")
		assert.Len(t, reportsContaining(reported.Take(), "span exporter bug"), 3, "every later panic reached otel.Handle too")
		assert.Equal(t, breaker.Counts{Success: 1, Failure: 2}, b.Counts())
	})
}

// faultPanickingHint is a failure whose RetryAfter method panics: a bug in
// the user's error type, met by WithRetryAfter.
type faultPanickingHint struct{}

func (*faultPanickingHint) Error() string             { return "overloaded, retry later" }
func (*faultPanickingHint) RetryAfter() time.Duration { panic("RetryAfter bug") }

// TestFaults_PanickingRetryAfterHintOpensForThePlainTimeoutAndHoldsNoProbeSlot:
// with WithRetryAfter, the failure that trips the breaker has a RetryAfter
// method that panics. The caller gets its own error, the breaker opens for
// the plain open timeout (the hint is no hint), and the panic reaches
// otel.Handle; a failed half-open probe with such an error opens it again
// the same way, leaving no probe slot held. Not parallel: it captures
// otel.Handle.
func TestFaults_PanickingRetryAfterHintOpensForThePlainTimeoutAndHoldsNoProbeSlot(t *testing.T) {
	reported := testkit.CaptureOTelErrors(t)
	boundedSyncTest(t, bubbleBound, func(t *testing.T) {
		ctx := context.Background()
		hinted := fmt.Errorf("GET /stock: %w", &faultPanickingHint{}) // the hint is in the error's tree
		failing := func(context.Context) error { return hinted }
		b := newFaultBreaker("panicking-hint", breaker.WithRetryAfter(time.Hour))
		requireOpenForThePlainTimeout := func(what string) {
			t.Helper()
			require.Equal(t, breaker.Open, b.State(), what)
			var openErr *breaker.OpenError
			require.ErrorAs(t, b.Call(ctx, func(context.Context) error { return nil }), &openErr, what)
			assert.True(t, time.Now().Add(faultOpenTimeout).Equal(openErr.Until()), "%s: open until %v, want the plain open timeout", what, openErr.Until())
			assert.Equal(t, faultOpenTimeout, openErr.RetryAfter(), what)
			time.Sleep(faultOpenTimeout - 1)
			synctest.Wait()
			require.Equal(t, breaker.Open, b.State(), "%s: a nanosecond before the open timeout", what)
			time.Sleep(1)
			synctest.Wait()
			require.Equal(t, breaker.HalfOpen, b.State(), "%s: half-open after the plain open timeout, not the hour the hint could ask for", what)
		}

		require.Same(t, hinted, b.Call(ctx, failing))
		assert.Empty(t, reported.Take(), "the hint is read only for the failure that opens the breaker")
		require.NotPanics(t, func() { require.Same(t, hinted, b.Call(ctx, failing), "the tripping call gets its own error") })
		assert.Len(t, reportsContaining(reported.Take(), "RetryAfter", "RetryAfter bug", `"panicking-hint"`), 1,
			"the panic reached otel.Handle, naming the breaker")
		requireOpenForThePlainTimeout("tripped from closed")

		require.NotPanics(t, func() { require.Same(t, hinted, b.Call(ctx, failing), "the failed probe gets its own error") })
		assert.Len(t, reportsContaining(reported.Take(), "RetryAfter bug"), 1, "the probe's panic reached otel.Handle")
		requireOpenForThePlainTimeout("reopened by the failed probe")

		require.NoError(t, b.Call(ctx, func(context.Context) error { return nil }), "the probe slot is free: a new probe gets through")
		assert.Equal(t, breaker.Closed, b.State())
		assert.Equal(t, breaker.Counts{Success: 1, Failure: 3, Rejected: 2}, b.Counts())
	})
}

// TestFaults_BlockingListenerHoldsUpNoCall blocks a listener on the first
// change until the test releases it. No call waits for it: not the call that
// made that change, not the calls of other goroutines, not the open timer,
// not the operators. The changes made meanwhile wait in order, and reach the
// listener once it returns.
func TestFaults_BlockingListenerHoldsUpNoCall(t *testing.T) {
	t.Parallel()
	boundedSyncTest(t, bubbleBound, func(t *testing.T) {
		var (
			changes faultChanges
			release = make(chan struct{})
			first   sync.Once
		)
		blocking := breaker.WithStateChangeListener(func(breaker.StateChange) { first.Do(func() { <-release }) })
		b := newFaultBreaker("blocking-listener", blocking, changes.listener())
		ctx := context.Background()
		failing := func(context.Context) error { return errFaultDependency }
		// returnsAtOnce runs call on a goroutine of its own and requires it
		// to have returned once every goroutine of the bubble is blocked:
		// the listener, blocked, cannot be holding it.
		returnsAtOnce := func(what string, call func()) {
			t.Helper()
			done := make(chan struct{})
			go func() {
				defer close(done)
				call()
			}()
			synctest.Wait()
			select {
			case <-done:
			default:
				close(release) // let the bubble end
				t.Fatalf("%s waited for the blocked listener", what)
			}
		}

		require.NoError(t, b.Call(ctx, func(context.Context) error { return nil }))
		require.Same(t, errFaultDependency, b.Call(ctx, failing))
		returnsAtOnce("the call that tripped the breaker", func() {
			assert.Same(t, errFaultDependency, b.Call(ctx, failing), "the call keeps its own error")
		})
		require.Equal(t, breaker.Open, b.State())
		assert.Empty(t, changes.get(), "changes wait while the first listener blocks")

		returnsAtOnce("a call of another goroutine", func() {
			assert.ErrorIs(t, b.Call(ctx, func(context.Context) error { return nil }), breaker.ErrOpen)
		})
		time.Sleep(faultOpenTimeout)
		synctest.Wait()
		require.Equal(t, breaker.HalfOpen, b.State(), "the open timer made its transition")
		returnsAtOnce("the probe that closed the breaker", func() {
			assert.NoError(t, b.Call(ctx, func(context.Context) error { return nil }), "the probe")
		})
		require.Equal(t, breaker.Closed, b.State())
		returnsAtOnce("the calls that tripped it again", func() {
			for range 2 {
				assert.Same(t, errFaultDependency, b.Call(ctx, failing))
			}
		})
		require.Equal(t, breaker.Open, b.State())
		returnsAtOnce("the operators", func() {
			b.Reset(ctx)
			b.ForceOpen(ctx)
		})
		assert.Empty(t, changes.get(), "still nothing delivered: the first listener of the first change still blocks")

		close(release)
		synctest.Wait()
		assert.Equal(t, []string{
			"closed>open", "open>half-open", "half-open>closed", "closed>open", "open>closed", "closed>open",
		}, changes.get(), "every change, in order")
		assert.Equal(t, breaker.Counts{Success: 2, Failure: 4, Rejected: 1}, b.Counts())
	})
}

// TestFaults_PanickingPredicateNeverHoldsTheProbeSlot: a WithIsFailure or
// WithIsIgnored predicate that panics is a bug in the caller's code, but it
// must not wedge the breaker: the call counts as a failure (as a panic in
// the function does), the panic reaches the caller, and the probe slot is
// free again.
func TestFaults_PanickingPredicateNeverHoldsTheProbeSlot(t *testing.T) {
	t.Parallel()
	errOdd := errors.New("an error the predicate cannot handle")
	predicate := func(err error) bool {
		if errors.Is(err, errOdd) {
			panic("predicate bug")
		}
		return true
	}
	for _, tt := range []struct {
		name string
		opt  breaker.Option
	}{
		{"WithIsFailure", breaker.WithIsFailure(predicate)},
		{"WithIsIgnored", breaker.WithIsIgnored(func(err error) bool { return !predicate(err) })},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			boundedSyncTest(t, bubbleBound, func(t *testing.T) {
				b := newFaultBreaker("panicking-predicate", tt.opt)
				ctx := context.Background()
				for range 2 {
					require.Same(t, errFaultDependency, b.Call(ctx, func(context.Context) error { return errFaultDependency }))
				}
				time.Sleep(faultOpenTimeout)
				synctest.Wait()
				require.Equal(t, breaker.HalfOpen, b.State())
				require.Equal(t, "predicate bug", recoverFrom(func() { _ = b.Call(ctx, func(context.Context) error { return errOdd }) }))
				assert.Equal(t, breaker.Open, b.State(), "the probe counts as failed: open again")
				assert.Equal(t, breaker.Counts{Failure: 3}, b.Counts(), "the call is counted")
				time.Sleep(faultOpenTimeout)
				synctest.Wait()
				assert.NoError(t, b.Call(ctx, func(context.Context) error { return nil }), "a new probe gets through")
				assert.Equal(t, breaker.Closed, b.State())
			})
		})
	}
}

// faultFloatMeterProvider is testkit.FaultyMeterProvider whose meter refuses
// the float64 gauges and histograms as well.
type faultFloatMeterProvider struct{ testkit.FaultyMeterProvider }

func (p faultFloatMeterProvider) Meter(name string, opts ...metric.MeterOption) metric.Meter {
	return faultFloatMeter{Meter: p.FaultyMeterProvider.Meter(name, opts...), nilInstruments: p.NilInstruments}
}

type faultFloatMeter struct {
	metric.Meter
	nilInstruments bool
}

func (m faultFloatMeter) Float64ObservableGauge(name string, opts ...metric.Float64ObservableGaugeOption) (metric.Float64ObservableGauge, error) {
	if m.nilInstruments {
		return nil, testkit.ErrMeterRefused
	}
	g, _ := m.Meter.Float64ObservableGauge(name, opts...)
	return g, testkit.ErrMeterRefused
}

func (m faultFloatMeter) Float64Histogram(name string, opts ...metric.Float64HistogramOption) (metric.Float64Histogram, error) {
	if m.nilInstruments {
		return nil, testkit.ErrMeterRefused
	}
	h, _ := m.Meter.Float64Histogram(name, opts...)
	return h, testkit.ErrMeterRefused
}

// faultPanickingHistogramProvider's histograms panic on every record, as a
// buggy SDK or a custom MeterProvider might.
type faultPanickingHistogramProvider struct{ metricnoop.MeterProvider }

func (faultPanickingHistogramProvider) Meter(string, ...metric.MeterOption) metric.Meter {
	return faultPanickingHistogramMeter{}
}

type faultPanickingHistogramMeter struct{ metricnoop.Meter }

func (faultPanickingHistogramMeter) Float64Histogram(string, ...metric.Float64HistogramOption) (metric.Float64Histogram, error) {
	return faultPanickingHistogram{}, nil
}

type faultPanickingHistogram struct{ metricnoop.Float64Histogram }

func (faultPanickingHistogram) Record(context.Context, float64, ...metric.RecordOption) {
	panic("histogram bug")
}
