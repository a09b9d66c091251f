package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/internal/emit"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/telemetry"
	"github.com/levee-go/levee/telemetry/telemetrytest"
)

// Tests of every breaker row of docs/telemetry.md. Each builds its own
// harness, so none touches the global providers and all run in parallel.
// Those that open a breaker or let time pass run in a synctest bubble: the
// breaker's own open timer makes the half-open transition when the test
// sleeps past the open timeout, as in production.

var (
	telErrDown     = errors.New("dependency down")
	telErrNotFound = errors.New("not found")
)

func telFail(context.Context) error    { return telErrDown }
func telSucceed(context.Context) error { return nil }

// telBreaker returns a breaker named name that reports to h, and keeps it
// referenced until t ends. A breaker's metrics are reported for as long as
// it is referenced, and no longer: a test that reads them after its last use
// of the breaker would otherwise race the garbage collector.
func telBreaker(t testing.TB, h *telemetrytest.Harness, name string, opts ...breaker.Option) *breaker.Breaker {
	b := telNewBreaker(h, name, opts...)
	t.Cleanup(func() { runtime.KeepAlive(b) })
	return b
}

// telNewBreaker returns a breaker named name that reports to h, and keeps
// no reference to it.
func telNewBreaker(h *telemetrytest.Harness, name string, opts ...breaker.Option) *breaker.Breaker {
	return breaker.New(name, append([]breaker.Option{
		breaker.WithTracerProvider(h.TracerProvider),
		breaker.WithMeterProvider(h.MeterProvider),
	}, opts...)...)
}

// telPoint is one expected data point: its attributes and value.
func telPoint(v int64, attrs ...attribute.KeyValue) metricdata.DataPoint[int64] {
	return metricdata.DataPoint[int64]{Attributes: attribute.NewSet(attrs...), Value: v}
}

// telAssertSum asserts a whole int64 sum metric: name, unit, monotonicity,
// cumulative temporality, and exactly these data points (in any order).
func telAssertSum(t *testing.T, h *telemetrytest.Harness, name, unit string, monotonic bool, points ...metricdata.DataPoint[int64]) {
	t.Helper()
	got := h.Metric(name)
	want := metricdata.Metrics{
		Name:        name,
		Description: got.Description,
		Unit:        unit,
		Data: metricdata.Sum[int64]{
			Temporality: metricdata.CumulativeTemporality,
			IsMonotonic: monotonic,
			DataPoints:  points,
		},
	}
	metricdatatest.AssertEqual(t, want, got, metricdatatest.IgnoreTimestamp(), metricdatatest.IgnoreExemplars())
	assert.NotEmpty(t, got.Description, "%s has a description", name)
}

// telAssertInstrument asserts how an instrument was created: its kind, unit
// and levee's instrumentation scope.
func telAssertInstrument(t *testing.T, h *telemetrytest.Harness, name string, kind sdkmetric.InstrumentKind, unit string) {
	t.Helper()
	inst := h.Instrument(name)
	assert.Equal(t, kind, inst.Kind, "%s kind", name)
	assert.Equal(t, unit, inst.Unit, "%s unit", name)
	assert.Equal(t, telemetry.ScopeName, inst.Scope.Name, "%s scope", name)
	assert.Equal(t, emit.Version(), inst.Scope.Version, "%s scope version", name)
}

// telStatePoints is the one-hot state series of the breaker named name.
func telStatePoints(name, current string) []metricdata.DataPoint[int64] {
	var points []metricdata.DataPoint[int64]
	for _, s := range []string{telemetry.StateClosed, telemetry.StateOpen, telemetry.StateHalfOpen} {
		var v int64
		if s == current {
			v = 1
		}
		points = append(points, telPoint(v, telemetry.KeyPolicyName.String(name), telemetry.KeyBreakerState.String(s)))
	}
	return points
}

func telAssertState(t *testing.T, h *telemetrytest.Harness, name, current string) {
	t.Helper()
	telAssertSum(t, h, telemetry.MetricBreakerState, telemetry.UnitState, false, telStatePoints(name, current)...)
}

// telTransitionAttrs is the attribute set of a transition's span and event,
// for a breaker with the default rule and no window: a trip (closed -> open,
// not forced) names the consecutive-failures rule.
func telTransitionAttrs(name, from, to string, failures int, forced bool) []attribute.KeyValue {
	attrs := []attribute.KeyValue{
		telemetry.KeyPolicyName.String(name),
		telemetry.KeyBreakerFrom.String(from),
		telemetry.KeyBreakerTo.String(to),
		telemetry.KeyBreakerConsecutiveFailures.Int(failures),
		telemetry.KeyBreakerForced.Bool(forced),
	}
	if from == telemetry.StateClosed && to == telemetry.StateOpen && !forced {
		attrs = append(attrs, telemetry.KeyBreakerTripRule.String(telemetry.TripRuleConsecutiveFailures))
	}
	return attrs
}

// telTransitionSpans returns the ended transition spans from one state to
// another.
func telTransitionSpans(h *telemetrytest.Harness, from, to string) []sdktrace.ReadOnlySpan {
	var found []sdktrace.ReadOnlySpan
	for _, s := range h.Spans(telemetry.SpanBreakerTransition) {
		attrs := attribute.NewSet(s.Attributes()...)
		f, _ := attrs.Value(telemetry.KeyBreakerFrom)
		t, _ := attrs.Value(telemetry.KeyBreakerTo)
		if f.AsString() == from && t.AsString() == to {
			found = append(found, s)
		}
	}
	return found
}

// telSettle lets d pass on the bubble's clock, then waits until the open
// timer's transition (and any listener) has run.
func telSettle(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

func TestTelemetry_StateMetric_OneHotFromConstruction(t *testing.T) {
	t.Parallel()
	boundedSyncTest(t, bubbleBound, func(t *testing.T) {
		h := telemetrytest.New(t)
		b := telBreaker(t, h, "inventory", breaker.WithFailureThreshold(1))

		telAssertInstrument(t, h, telemetry.MetricBreakerState, sdkmetric.InstrumentKindObservableUpDownCounter, "{state}")
		telAssertState(t, h, "inventory", "closed") // before the first call

		require.ErrorIs(t, b.Call(context.Background(), telFail), telErrDown)
		telAssertState(t, h, "inventory", "open")

		telSettle(breaker.DefaultOpenTimeout - 1)
		telAssertState(t, h, "inventory", "open")
		telSettle(1)
		telAssertState(t, h, "inventory", "half_open") // the open timer: no call needed

		require.NoError(t, b.Call(context.Background(), telSucceed))
		telAssertState(t, h, "inventory", "closed")

		b.ForceOpen(context.Background())
		telSettle(time.Hour)
		telAssertState(t, h, "inventory", "open") // held open: never half-open
	})
}

func TestTelemetry_CallsMetric_ByOutcome(t *testing.T) {
	t.Parallel()
	boundedSyncTest(t, bubbleBound, func(t *testing.T) {
		h := telemetrytest.New(t)
		errInvalid := errors.New("invalid request")
		b := telBreaker(t, h, "inventory",
			breaker.WithIsFailure(func(err error) bool { return !errors.Is(err, telErrNotFound) }),
			breaker.WithIsIgnored(func(err error) bool { return errors.Is(err, errInvalid) }))
		ctx := context.Background()

		telAssertInstrument(t, h, telemetry.MetricBreakerCalls, sdkmetric.InstrumentKindObservableCounter, "{call}")

		require.NoError(t, b.Call(ctx, telSucceed))
		require.NoError(t, b.Call(ctx, telSucceed))
		require.ErrorIs(t, b.Call(ctx, func(context.Context) error { return telErrNotFound }), telErrNotFound) // not a failure
		require.ErrorIs(t, b.Call(ctx, telFail), telErrDown)
		// Ignored: the caller's context done before the call (nothing runs),
		// the caller's context ending during it, an error WithIsIgnored names.
		done, cancel := context.WithCancel(ctx)
		cancel()
		ran := false
		require.ErrorIs(t, b.Call(done, func(context.Context) error { ran = true; return nil }), context.Canceled)
		require.False(t, ran, "a call whose context is done at entry runs nothing")
		ending, end := context.WithCancel(ctx)
		require.ErrorIs(t, b.Call(ending, func(ctx context.Context) error { end(); return ctx.Err() }), context.Canceled)
		require.ErrorIs(t, b.Call(ctx, func(context.Context) error { return errInvalid }), errInvalid)
		require.Error(t, b.Call(ctx, nil), "a nil function is refused, and counted nowhere")
		require.Panics(t, func() { _ = b.Call(ctx, func(context.Context) error { panic("boom") }) })
		require.ErrorIs(t, b.Call(ctx, telFail), telErrDown) // third consecutive failure: opens
		require.ErrorIs(t, b.Call(ctx, telSucceed), breaker.ErrOpen)
		require.ErrorIs(t, b.Call(ctx, telSucceed), breaker.ErrOpen)

		// Ignored too: a probe that outlives the open timeout, whatever it
		// returns once another call has probed in its place.
		telSettle(breaker.DefaultOpenTimeout)
		require.Equal(t, breaker.HalfOpen, b.State())
		release := make(chan struct{})
		late := make(chan error, 1)
		go func() { late <- b.Call(ctx, func(context.Context) error { <-release; return telErrDown }) }()
		telSettle(breaker.DefaultOpenTimeout)
		require.NoError(t, b.Call(ctx, telSucceed), "a probe held for an open timeout no longer holds the breaker")
		require.Equal(t, breaker.Closed, b.State())
		close(release)
		require.ErrorIs(t, <-late, telErrDown, "the late probe's caller still gets its own error")

		name := telemetry.KeyPolicyName.String("inventory")
		telAssertSum(t, h, telemetry.MetricBreakerCalls, "{call}", true,
			telPoint(4, name, telemetry.KeyOutcome.String("success")),
			telPoint(3, name, telemetry.KeyOutcome.String("failure")),
			telPoint(2, name, telemetry.KeyOutcome.String("rejected")),
			telPoint(4, name, telemetry.KeyOutcome.String("ignored")),
		)
	})
}

// telGlobalsInstalled is set once a test has installed the global providers.
var telGlobalsInstalled atomic.Bool

// TestTelemetry_BreakerCreatedBeforeTheSDKIsInstalledReportsToIt: a breaker
// given no providers, created before the application installs its SDK (a
// package-level breaker, say), reports to that SDK once it is installed:
// the global providers it took at construction forward to it. Not parallel:
// it installs the global providers for its duration, and it must stay the
// only test of this package that does, as the globals forward to the first
// providers installed, for good: it runs once per test binary (a second
// run, under -count, is skipped).
func TestTelemetry_BreakerCreatedBeforeTheSDKIsInstalledReportsToIt(t *testing.T) {
	if telGlobalsInstalled.Swap(true) {
		t.Skip("the global providers already forward to the SDK an earlier run installed")
	}
	b := breaker.New("package-level", breaker.WithFailureThreshold(1))
	h := telemetrytest.New(t)
	previousTP, previousMP := otel.GetTracerProvider(), otel.GetMeterProvider()
	otel.SetTracerProvider(h.TracerProvider)
	otel.SetMeterProvider(h.MeterProvider)
	t.Cleanup(func() {
		otel.SetTracerProvider(previousTP)
		otel.SetMeterProvider(previousMP)
	})

	ctx, caller := h.StartSpan(context.Background(), "GET /stock")
	require.ErrorIs(t, b.Call(ctx, telFail), telErrDown)
	caller.End()

	name := telemetry.KeyPolicyName.String("package-level")
	h.AssertInt64(telemetry.MetricBreakerState, 1, name, telemetry.KeyBreakerState.String(telemetry.StateOpen))
	h.AssertInt64(telemetry.MetricBreakerCalls, 1, name, telemetry.KeyOutcome.String(telemetry.OutcomeFailure))
	h.AssertInt64(telemetry.MetricBreakerTransitions, 1, name, telemetry.KeyBreakerTo.String(telemetry.StateOpen))
	spans := telTransitionSpans(h, "closed", "open")
	require.Len(t, spans, 1, "the transition span reached the SDK")
	assert.Equal(t, caller.SpanContext().SpanID(), spans[0].Parent().SpanID(), "a child of the caller's span")
	b.Reset(context.Background()) // stops the open timer, and keeps b referenced until its metrics were read
}

func TestTelemetry_TransitionsMetric_ByFromAndTo(t *testing.T) {
	t.Parallel()
	boundedSyncTest(t, bubbleBound, func(t *testing.T) {
		h := telemetrytest.New(t)
		b := telBreaker(t, h, "inventory", breaker.WithFailureThreshold(1))
		ctx := context.Background()

		telAssertInstrument(t, h, telemetry.MetricBreakerTransitions, sdkmetric.InstrumentKindCounter, "{transition}")
		h.AssertInt64(telemetry.MetricBreakerTransitions, 0) // nothing before the first change

		require.ErrorIs(t, b.Call(ctx, telFail), telErrDown) // closed -> open
		telSettle(breaker.DefaultOpenTimeout)                // the timer: open -> half_open
		require.ErrorIs(t, b.Call(ctx, telFail), telErrDown) // the probe fails: half_open -> open
		telSettle(breaker.DefaultOpenTimeout)                // the timer: open -> half_open
		require.NoError(t, b.Call(ctx, telSucceed))          // the probe succeeds: half_open -> closed
		b.ForceOpen(ctx)                                     // closed -> open
		b.Reset(ctx)                                         // open -> closed
		b.Reset(ctx)                                         // closed -> closed: a fresh period, no transition

		// A trip carries its rule on the counter too; ForceOpen's
		// closed -> open is no trip, and counts in a series of its own.
		name := telemetry.KeyPolicyName.String("inventory")
		edge := func(v int64, from, to string) metricdata.DataPoint[int64] {
			return telPoint(v, name, telemetry.KeyBreakerFrom.String(from), telemetry.KeyBreakerTo.String(to))
		}
		trip := telPoint(1, name, telemetry.KeyBreakerFrom.String("closed"), telemetry.KeyBreakerTo.String("open"),
			telemetry.KeyBreakerTripRule.String("consecutive_failures"))
		telAssertSum(t, h, telemetry.MetricBreakerTransitions, "{transition}", true,
			trip,
			edge(1, "closed", "open"),
			edge(2, "open", "half_open"),
			edge(1, "half_open", "open"),
			edge(1, "half_open", "closed"),
			edge(1, "open", "closed"),
		)
	})
}

func TestTelemetry_Metrics_FixedSeriesPerBreaker(t *testing.T) {
	t.Parallel()
	boundedSyncTest(t, bubbleBound, func(t *testing.T) {
		h := telemetrytest.New(t)
		a := telBreaker(t, h, "a", breaker.WithFailureThreshold(1))
		_ = telBreaker(t, h, "b")
		for range 100 {
			_ = a.Call(context.Background(), telFail)
		}

		// Per breaker: 3 state series and 4 call series, however many calls.
		telAssertSum(t, h, telemetry.MetricBreakerState, telemetry.UnitState, false,
			append(telStatePoints("a", "open"), telStatePoints("b", "closed")...)...)
		h.AssertInt64(telemetry.MetricBreakerCalls, 99, telemetry.KeyPolicyName.String("a"), telemetry.KeyOutcome.String("rejected"))
		calls := h.Metric(telemetry.MetricBreakerCalls).Data.(metricdata.Sum[int64])
		assert.Len(t, calls.DataPoints, 8)

		// A breaker using every issue 12 option, through every transition
		// and every outcome, many times: 5 call series, 6 transition
		// series, one series per rate gauge, 4 duration series.
		w := telBreaker(t, h, "w", breaker.WithCountWindow(10), breaker.WithSlowCallDuration(time.Second),
			breaker.WithTripRule(func(c breaker.WindowCounts) bool { return c.Failures >= 2 }),
			breaker.WithCallDurationHistogram(), breaker.WithShadowMode())
		canceled, cancel := context.WithCancel(context.Background())
		defer cancel()
		for range 20 {
			_ = w.Call(context.Background(), telFail)
			_ = w.Call(context.Background(), telFail)                                                                // trips
			_ = w.Call(context.Background(), telSucceed)                                                             // shadowed
			_ = w.Call(canceled, func(context.Context) error { cancel(); return context.Canceled })                  // ignored, done at entry
			_ = w.Call(context.Background(), func(ctx context.Context) error { return breaker.Ignored(telErrDown) }) // shadowed too
			telSettle(breaker.DefaultOpenTimeout)
			_ = w.Call(context.Background(), telFail) // the probe fails
			telSettle(breaker.DefaultOpenTimeout)
			_ = w.Call(context.Background(), telSucceed) // closes
			w.ForceOpen(context.Background())
			w.Reset(context.Background())
		}
		series := func(name string) int {
			n := 0
			for _, sm := range h.Collect().ScopeMetrics {
				for _, m := range sm.Metrics {
					if m.Name != name {
						continue
					}
					var sets []attribute.Set
					switch data := m.Data.(type) {
					case metricdata.Sum[int64]:
						for _, p := range data.DataPoints {
							sets = append(sets, p.Attributes)
						}
					case metricdata.Gauge[float64]:
						for _, p := range data.DataPoints {
							sets = append(sets, p.Attributes)
						}
					case metricdata.Histogram[float64]:
						for _, p := range data.DataPoints {
							sets = append(sets, p.Attributes)
						}
					}
					for _, set := range sets {
						if v, _ := set.Value(telemetry.KeyPolicyName); v.AsString() == "w" {
							n++
						}
					}
				}
			}
			return n
		}
		assert.Equal(t, 5, series(telemetry.MetricBreakerCalls))
		assert.Equal(t, 6, series(telemetry.MetricBreakerTransitions))
		assert.Equal(t, 1, series(telemetry.MetricBreakerFailureRate))
		assert.Equal(t, 1, series(telemetry.MetricBreakerSlowCallRate))
		assert.LessOrEqual(t, series(telemetry.MetricBreakerCallDuration), 4)
	})
}

func TestTelemetry_TransitionSpan_InternalChildOfTheCallThatCausedIt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		setup    func(b *breaker.Breaker)                      // runs with no span, in the bubble
		cause    func(ctx context.Context, b *breaker.Breaker) // runs in the caller's span
		from, to string
		failures int
		forced   bool
	}{
		{
			name:  "closed to open when the threshold is reached",
			cause: func(ctx context.Context, b *breaker.Breaker) { telTrip(ctx, b) },
			from:  "closed", to: "open", failures: 3,
		},
		{
			name:  "half_open to open when the probe fails",
			setup: telToHalfOpen,
			cause: func(ctx context.Context, b *breaker.Breaker) { _ = b.Call(ctx, telFail) },
			from:  "half_open", to: "open", failures: 1,
		},
		{
			name:  "half_open to closed when the probe succeeds",
			setup: telToHalfOpen,
			cause: func(ctx context.Context, b *breaker.Breaker) { _ = b.Call(ctx, telSucceed) },
			from:  "half_open", to: "closed",
		},
		{
			name:  "forced open by an operator",
			cause: func(ctx context.Context, b *breaker.Breaker) { b.ForceOpen(ctx) },
			from:  "closed", to: "open", forced: true,
		},
		{
			name:  "forced open by an operator while half-open",
			setup: telToHalfOpen,
			cause: func(ctx context.Context, b *breaker.Breaker) { b.ForceOpen(ctx) },
			from:  "half_open", to: "open", forced: true,
		},
		{
			name:  "reset by an operator",
			setup: func(b *breaker.Breaker) { b.ForceOpen(context.Background()) },
			cause: func(ctx context.Context, b *breaker.Breaker) { b.Reset(ctx) },
			from:  "open", to: "closed", forced: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			boundedSyncTest(t, bubbleBound, func(t *testing.T) {
				h := telemetrytest.New(t)
				b := telBreaker(t, h, "inventory")
				if tt.setup != nil {
					tt.setup(b)
				}
				ctx, caller := h.StartSpan(context.Background(), "GET /stock")
				tt.cause(ctx, b)
				caller.End()

				spans := telTransitionSpans(h, tt.from, tt.to)
				require.Len(t, spans, 1, "one %s -> %s span; spans: %v", tt.from, tt.to, h.Spans(""))
				span := spans[0]
				assert.Equal(t, telemetry.SpanBreakerTransition, span.Name())
				assert.Equal(t, trace.SpanKindInternal, span.SpanKind())
				assert.Equal(t, caller.SpanContext().TraceID(), span.SpanContext().TraceID(), "same trace as the caller")
				assert.Equal(t, caller.SpanContext().SpanID(), span.Parent().SpanID(), "child of the caller's span")
				assert.Empty(t, span.Links(), "a child of the call that caused it needs no link")
				assert.ElementsMatch(t, telTransitionAttrs("inventory", tt.from, tt.to, tt.failures, tt.forced), span.Attributes())
				assert.Equal(t, telemetry.ScopeName, span.InstrumentationScope().Name)
				assert.Equal(t, emit.Version(), span.InstrumentationScope().Version)
			})
		})
	}
}

// telTrip fails the default threshold of calls in ctx.
func telTrip(ctx context.Context, b *breaker.Breaker) {
	for range breaker.DefaultFailureThreshold {
		_ = b.Call(ctx, telFail)
	}
}

// telToHalfOpen opens the breaker, with no span, and lets its open timeout
// pass on the bubble's clock: the open timer makes it half-open.
func telToHalfOpen(b *breaker.Breaker) {
	telTrip(context.Background(), b)
	telSettle(breaker.DefaultOpenTimeout)
}

// TestTelemetry_TransitionSpan_RootWhenTheTimerMakesIt follows a breaker
// through two open periods. The transitions calls make (the trip, the failed
// probe, the probe that closes it) are children of those calls' spans; each
// open -> half_open transition is made by the open timer, which no call is
// behind: a root span, in a trace of its own, whose links hold the span
// context of the call that opened the breaker for that period.
func TestTelemetry_TransitionSpan_RootWhenTheTimerMakesIt(t *testing.T) {
	t.Parallel()
	boundedSyncTest(t, bubbleBound, func(t *testing.T) {
		h := telemetrytest.New(t)
		b := telBreaker(t, h, "inventory", breaker.WithFailureThreshold(1))
		call := func(name string, fn func(context.Context) error) trace.SpanContext {
			ctx, span := h.StartSpan(context.Background(), name)
			defer span.End()
			_ = b.Call(ctx, fn)
			return span.SpanContext()
		}
		requireChildOf := func(from, to string, caller trace.SpanContext, failures int) {
			t.Helper()
			spans := telTransitionSpans(h, from, to)
			require.NotEmpty(t, spans, "a %s -> %s span", from, to)
			span := spans[len(spans)-1]
			assert.Equal(t, caller.TraceID(), span.SpanContext().TraceID(), "%s -> %s: in the caller's trace", from, to)
			assert.Equal(t, caller.SpanID(), span.Parent().SpanID(), "%s -> %s: a child of the caller's span", from, to)
			assert.ElementsMatch(t, telTransitionAttrs("inventory", from, to, failures, false), span.Attributes())
		}
		requireRootLinkedTo := func(opener trace.SpanContext, n int) {
			t.Helper()
			spans := telTransitionSpans(h, "open", "half_open")
			require.Len(t, spans, n, "the timer has made %d open -> half_open transitions", n)
			span := spans[n-1]
			assert.False(t, span.Parent().IsValid(), "no call is behind the timer's transition: a root span")
			assert.NotEqual(t, opener.TraceID(), span.SpanContext().TraceID(), "a trace of its own, not the opener's")
			require.Len(t, span.Links(), 1, "linked to the call that opened the breaker")
			assert.True(t, span.Links()[0].SpanContext.Equal(opener),
				"the link holds the opener's span context: got %v, want %v", span.Links()[0].SpanContext, opener)
			assert.Equal(t, trace.SpanKindInternal, span.SpanKind())
			assert.ElementsMatch(t, telTransitionAttrs("inventory", "open", "half_open", 0, false), span.Attributes())
		}

		trip := call("trip", telFail)
		requireChildOf("closed", "open", trip, 1)
		telSettle(breaker.DefaultOpenTimeout - 1)
		assert.Empty(t, telTransitionSpans(h, "open", "half_open"), "nothing before the open timeout")
		telSettle(1)
		require.Equal(t, breaker.HalfOpen, b.State())
		requireRootLinkedTo(trip, 1)

		failedProbe := call("failed probe", telFail)
		requireChildOf("half_open", "open", failedProbe, 1)
		telSettle(breaker.DefaultOpenTimeout)
		requireRootLinkedTo(failedProbe, 2)

		closingProbe := call("closing probe", telSucceed)
		requireChildOf("half_open", "closed", closingProbe, 0)
		h.AssertInt64(telemetry.MetricBreakerTransitions, 2, telemetry.KeyBreakerFrom.String("open"), telemetry.KeyBreakerTo.String("half_open"))

		for _, name := range []string{"trip", "failed probe", "closing probe"} {
			events := telemetrytest.EventsOn(h.Span(name), telemetry.EventBreakerTransition)
			require.Len(t, events, 1, "%s: the caller's span has its own transition only, not the timer's", name)
		}
	})
}

// TestTelemetry_TransitionSpan_TimerSpanHasNoLinkWhenNoSpanOpenedIt: a
// breaker opened by a call with no span in its context gives the timer's
// root span nothing to link to.
func TestTelemetry_TransitionSpan_TimerSpanHasNoLinkWhenNoSpanOpenedIt(t *testing.T) {
	t.Parallel()
	boundedSyncTest(t, bubbleBound, func(t *testing.T) {
		h := telemetrytest.New(t)
		b := telBreaker(t, h, "inventory")
		telToHalfOpen(b)
		spans := telTransitionSpans(h, "open", "half_open")
		require.Len(t, spans, 1)
		assert.False(t, spans[0].Parent().IsValid(), "a root span")
		assert.Empty(t, spans[0].Links(), "no span opened the breaker: nothing to link to")
	})
}

// TestTelemetry_StateReadsReportNothing: State() only reads. Before this
// rule a State() read could make the open -> half_open transition itself
// (and start its root span); now the open timer alone makes it, and reads
// in every state, before and after the open timeout, add no span, event or
// transition.
func TestTelemetry_StateReadsReportNothing(t *testing.T) {
	t.Parallel()
	boundedSyncTest(t, bubbleBound, func(t *testing.T) {
		h := telemetrytest.New(t)
		b := telBreaker(t, h, "inventory", breaker.WithFailureThreshold(1))
		ctx, caller := h.StartSpan(context.Background(), "GET /stock")
		read := func(want breaker.State) {
			t.Helper()
			spans := len(h.Spans(""))
			for range 10 {
				require.Equal(t, want, b.State())
			}
			synctest.Wait()
			assert.Len(t, h.Spans(""), spans, "State() in %v started no span", want)
		}
		read(breaker.Closed)
		require.ErrorIs(t, b.Call(ctx, telFail), telErrDown)
		read(breaker.Open)
		telSettle(breaker.DefaultOpenTimeout - 1)
		read(breaker.Open)
		telSettle(1)
		read(breaker.HalfOpen)
		b.ForceOpen(ctx)
		telSettle(breaker.DefaultOpenTimeout)
		read(breaker.Open)
		caller.End()

		h.AssertInt64(telemetry.MetricBreakerTransitions, 3) // the trip, the timer's, ForceOpen's
		assert.Len(t, h.Spans(telemetry.SpanBreakerTransition), 3)
		assert.Len(t, telemetrytest.EventsOn(h.Span("GET /stock"), telemetry.EventBreakerTransition), 2, "the trip's and ForceOpen's")
	})
}

// telHeldHalfOpenProcessor holds the goroutine that ends each open ->
// half_open transition span until release is closed, as a span processor
// on a link that hangs would. (A span processor, not a syncer: the SDK's
// syncer serialises every span of the provider behind a slow export.)
type telHeldHalfOpenProcessor struct {
	release  chan struct{}
	halfOpen atomic.Int64 // spans that reached OnEnd
	returned atomic.Int64 // of those, OnEnd calls that returned
}

func (p *telHeldHalfOpenProcessor) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

func (p *telHeldHalfOpenProcessor) OnEnd(s sdktrace.ReadOnlySpan) {
	attrs := attribute.NewSet(s.Attributes()...)
	if to, _ := attrs.Value(telemetry.KeyBreakerTo); to.AsString() == telemetry.StateHalfOpen {
		p.halfOpen.Add(1)
		<-p.release
		p.returned.Add(1)
	}
}

func (p *telHeldHalfOpenProcessor) Shutdown(context.Context) error   { return nil }
func (p *telHeldHalfOpenProcessor) ForceFlush(context.Context) error { return nil }

// TestTelemetry_StateReadsRacingTheTimerDoNoTransitionsWork races State()
// reads against the open timers on the real clock (in a bubble a timer's
// goroutine always runs before a goroutine that slept until the same
// instant): one goroutine per core reads the State() of 200 breakers in a
// loop while they open with a 50ms open timeout, until all are half-open.
// A span processor holds every open -> half_open span's goroutine until the
// readers are done, and the readers finish all the same: no read makes the
// transition (and reports it) itself, as the lazy check of the injected
// clock did, whoever wins the race. (A reader that did would hang in the
// processor, and the readers' bound would fail the test.) It measures no
// duration, so a loaded machine cannot fail it. The timers make one
// transition per breaker.
func TestTelemetry_StateReadsRacingTheTimerDoNoTransitionsWork(t *testing.T) {
	t.Parallel()
	const n = 200
	processor := &telHeldHalfOpenProcessor{release: make(chan struct{})}
	released := false
	release := func() {
		if !released {
			released = true
			close(processor.release)
		}
	}
	defer release() // a failing test must not leave the timers' goroutines held
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(processor))
	breakers := make([]*breaker.Breaker, n)
	for i := range breakers {
		breakers[i] = breaker.New(fmt.Sprintf("racer-%d", i), breaker.WithTracerProvider(tp),
			breaker.WithFailureThreshold(1), breaker.WithOpenTimeout(50*time.Millisecond))
	}
	deadline := time.Now().Add(10 * time.Second)
	var wg sync.WaitGroup
	for range max(2, runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for halfOpen := 0; halfOpen < n && time.Now().Before(deadline); {
				halfOpen = 0
				for _, b := range breakers {
					if b.State() == breaker.HalfOpen {
						halfOpen++
					}
				}
			}
		})
	}
	for _, b := range breakers {
		require.ErrorIs(t, b.Call(context.Background(), telFail), telErrDown)
	}
	readersDone := make(chan struct{})
	go func() { wg.Wait(); close(readersDone) }()
	select {
	case <-readersDone:
	case <-time.After(20 * time.Second):
		t.Fatal("the State() readers did not finish within 20s while the transition spans were held: a read is doing a transition's work")
	}
	for i, b := range breakers {
		require.Equal(t, breaker.HalfOpen, b.State(), "racer-%d: the timer made it half-open within 10s", i)
	}
	release()
	require.Eventually(t, func() bool { return processor.returned.Load() >= n }, 10*time.Second, time.Millisecond,
		"the timers' %d open -> half_open spans ended", n)
	require.NoError(t, tp.Shutdown(context.Background()))
	assert.Equal(t, int64(n), processor.halfOpen.Load(), "one open -> half_open transition per breaker")
}

func TestTelemetry_Events_OnTheCallersRecordingSpan(t *testing.T) {
	t.Parallel()
	boundedSyncTest(t, bubbleBound, func(t *testing.T) {
		h := telemetrytest.New(t)
		b := telBreaker(t, h, "inventory")

		// The call that trips the breaker gets the transition event.
		tripCtx, tripSpan := h.StartSpan(context.Background(), "trip")
		telTrip(tripCtx, b)
		tripSpan.End()
		trip := h.Span("trip")
		require.Len(t, trip.Events(), 1, "one event: the transition")
		assert.Equal(t, telemetry.EventBreakerTransition, trip.Events()[0].Name)
		assert.ElementsMatch(t, telTransitionAttrs("inventory", "closed", "open", 3, false), trip.Events()[0].Attributes)

		// A call the open breaker rejects gets the rejected event.
		rejectCtx, rejectSpan := h.StartSpan(context.Background(), "rejected while open")
		require.ErrorIs(t, b.Call(rejectCtx, telSucceed), breaker.ErrOpen)
		rejectSpan.End()
		rejected := h.Span("rejected while open")
		require.Len(t, rejected.Events(), 1)
		assert.Equal(t, telemetry.EventBreakerRejected, rejected.Events()[0].Name)
		assert.ElementsMatch(t, []attribute.KeyValue{
			telemetry.KeyPolicyName.String("inventory"),
			telemetry.KeyBreakerState.String("open"),
			telemetry.KeyErrorType.String("circuit_open"),
		}, rejected.Events()[0].Attributes)

		// A call rejected while the half-open probe is in flight says so.
		telSettle(breaker.DefaultOpenTimeout)
		entered, release := make(chan struct{}), make(chan struct{})
		probeDone := make(chan error, 1)
		go func() {
			probeDone <- b.Call(context.Background(), func(context.Context) error {
				close(entered)
				<-release
				return nil
			})
		}()
		<-entered
		probingCtx, probingSpan := h.StartSpan(context.Background(), "rejected while probing")
		require.ErrorIs(t, b.Call(probingCtx, telSucceed), breaker.ErrOpen)
		probingSpan.End()
		close(release)
		require.NoError(t, <-probeDone)
		probing := h.Span("rejected while probing")
		require.Len(t, probing.Events(), 1)
		assert.ElementsMatch(t, []attribute.KeyValue{
			telemetry.KeyPolicyName.String("inventory"),
			telemetry.KeyBreakerState.String("half_open"),
			telemetry.KeyErrorType.String("circuit_open"),
		}, probing.Events()[0].Attributes)

		// Operators' transitions are reported on their span too.
		forceCtx, forceSpan := h.StartSpan(context.Background(), "force")
		b.ForceOpen(forceCtx)
		forceSpan.End()
		force := telemetrytest.EventsOn(h.Span("force"), telemetry.EventBreakerTransition)
		require.Len(t, force, 1)
		assert.ElementsMatch(t, telTransitionAttrs("inventory", "closed", "open", 0, true), force[0].Attributes)
	})
}

func TestTelemetry_Events_NoneWhenTheCallersSpanIsNotRecording(t *testing.T) {
	t.Parallel()
	remote := func(flags trace.TraceFlags) trace.SpanContext {
		return trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: trace.TraceID{0xa}, SpanID: trace.SpanID{0xb}, TraceFlags: flags, Remote: true,
		})
	}
	tests := []struct {
		name       string
		ctx        context.Context
		wantParent trace.SpanContext // the transition span's parent; invalid for a root span
		wantSpans  int               // transition spans recorded (sampling follows the parent)
	}{
		{"no span", context.Background(), trace.SpanContext{}, 2},
		{"sampled remote parent", trace.ContextWithRemoteSpanContext(context.Background(), remote(trace.FlagsSampled)), remote(trace.FlagsSampled), 2},
		{"unsampled remote parent", trace.ContextWithRemoteSpanContext(context.Background(), remote(0)), trace.SpanContext{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			boundedSyncTest(t, bubbleBound, func(t *testing.T) {
				require.False(t, trace.SpanFromContext(tt.ctx).IsRecording())
				h := telemetrytest.New(t)
				b := telBreaker(t, h, "inventory")
				telTrip(tt.ctx, b)
				require.ErrorIs(t, b.Call(tt.ctx, telSucceed), breaker.ErrOpen)
				b.Reset(tt.ctx)

				spans := h.Spans("")
				assert.Len(t, spans, tt.wantSpans)
				for _, s := range spans {
					assert.Empty(t, s.Events(), "no events on %s", s.Name())
					assert.Equal(t, tt.wantParent.SpanID(), s.Parent().SpanID(), "parent of %s", s.Name())
				}
				h.AssertInt64(telemetry.MetricBreakerTransitions, 2) // metrics do not depend on sampling
				h.AssertInt64(telemetry.MetricBreakerCalls, 1, telemetry.KeyOutcome.String("rejected"))
			})
		})
	}
}

func TestTelemetry_CallsThatChangeNoStateReportNothing(t *testing.T) {
	t.Parallel()
	boundedSyncTest(t, bubbleBound, func(t *testing.T) {
		h := telemetrytest.New(t)
		b := telBreaker(t, h, "inventory")
		ctx, caller := h.StartSpan(context.Background(), "GET /stock")
		for range 5 {
			for range 20 {
				require.NoError(t, b.Call(ctx, telSucceed))
			}
			for range breaker.DefaultFailureThreshold - 1 {
				require.ErrorIs(t, b.Call(ctx, telFail), telErrDown)
			}
		}
		done, cancel := context.WithCancel(ctx)
		cancel()
		require.ErrorIs(t, b.Call(done, telSucceed), context.Canceled) // ignored: no state change either
		b.Reset(ctx)                                                   // closed -> closed: a fresh period, no transition
		caller.End()

		require.Equal(t, breaker.Closed, b.State())
		assert.Len(t, h.Spans(""), 1, "no span but the caller's")
		assert.Empty(t, h.Span("GET /stock").Events(), "no events on the caller's span")
		h.AssertInt64(telemetry.MetricBreakerTransitions, 0)
		// The counts still reach the metrics, read from the breaker's atomics.
		h.AssertInt64(telemetry.MetricBreakerCalls, 100, telemetry.KeyOutcome.String("success"))
		h.AssertInt64(telemetry.MetricBreakerCalls, 10, telemetry.KeyOutcome.String("failure"))
		h.AssertInt64(telemetry.MetricBreakerCalls, 1, telemetry.KeyOutcome.String("ignored"))
	})
}

// The hot-path rule, as a behaviour: with an SDK installed and a recording
// span in ctx, a call through a closed breaker that succeeds allocates
// nothing. Not parallel: testing.AllocsPerRun counts the whole process's
// allocations.
func TestTelemetry_ClosedSuccessPathAllocatesNothingWithSDKInstalled(t *testing.T) {
	h := telemetrytest.New(t)
	b := telBreaker(t, h, "inventory")
	ctx, caller := h.StartSpan(context.Background(), "GET /stock")
	defer caller.End()
	require.True(t, caller.IsRecording())
	h.AssertInt64(telemetry.MetricBreakerState, 1, telemetry.KeyBreakerState.String("closed")) // the pipeline is live
	guarded := resilience.Wrap(func(context.Context) (int, error) { return 1, nil }, breaker.Policy[int](b))

	const runs = 1000
	assert.Zero(t, testing.AllocsPerRun(runs, func() { _ = b.Call(ctx, telSucceed) }), "Call")
	assert.Zero(t, testing.AllocsPerRun(runs, func() { _, _ = guarded(ctx) }), "Policy")

	// AllocsPerRun runs f once more to warm up: the calls were all counted.
	h.AssertInt64(telemetry.MetricBreakerCalls, 2*(runs+1), telemetry.KeyOutcome.String("success"))
	assert.Empty(t, h.Spans(telemetry.SpanBreakerTransition))
}
