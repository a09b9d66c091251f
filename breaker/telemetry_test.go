package breaker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/internal/fakeclock"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/telemetry"
	"github.com/levee-go/levee/telemetry/telemetrytest"
)

// Tests of every breaker row of docs/telemetry.md. Each builds its own
// harness, so none touches the global providers and all run in parallel.

var (
	telErrDown     = errors.New("dependency down")
	telErrNotFound = errors.New("not found")
)

func telFail(context.Context) error    { return telErrDown }
func telSucceed(context.Context) error { return nil }

// telBreaker returns a breaker named name that reports to h.
func telBreaker(h *telemetrytest.Harness, name string, opts ...breaker.Option) *breaker.Breaker {
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
	assert.Equal(t, telemetry.Version(), inst.Scope.Version, "%s scope version", name)
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

// telTransitionAttrs is the attribute set of a transition's span and event.
func telTransitionAttrs(name, from, to string, failures int, forced bool) []attribute.KeyValue {
	return []attribute.KeyValue{
		telemetry.KeyPolicyName.String(name),
		telemetry.KeyBreakerFrom.String(from),
		telemetry.KeyBreakerTo.String(to),
		telemetry.KeyBreakerConsecutiveFailures.Int(failures),
		telemetry.KeyBreakerForced.Bool(forced),
	}
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

func TestTelemetry_StateMetric_OneHotFromConstruction(t *testing.T) {
	t.Parallel()
	h := telemetrytest.New(t)
	clock := fakeclock.New()
	b := telBreaker(h, "inventory", breaker.WithClock(clock.Now), breaker.WithFailureThreshold(1))

	telAssertInstrument(t, h, telemetry.MetricBreakerState, sdkmetric.InstrumentKindObservableUpDownCounter, "{state}")
	telAssertState(t, h, "inventory", "closed") // before the first call

	require.ErrorIs(t, b.Call(context.Background(), telFail), telErrDown)
	telAssertState(t, h, "inventory", "open")

	clock.Advance(breaker.DefaultOpenTimeout)
	telAssertState(t, h, "inventory", "half_open") // no call needed

	require.NoError(t, b.Call(context.Background(), telSucceed))
	telAssertState(t, h, "inventory", "closed")

	b.ForceOpen(context.Background())
	clock.Advance(time.Hour)
	telAssertState(t, h, "inventory", "open") // held open: never half-open
}

func TestTelemetry_CallsMetric_ByOutcome(t *testing.T) {
	t.Parallel()
	h := telemetrytest.New(t)
	b := telBreaker(h, "inventory",
		breaker.WithClock(fakeclock.New().Now),
		breaker.WithIsFailure(func(err error) bool { return !errors.Is(err, telErrNotFound) }))
	ctx := context.Background()

	telAssertInstrument(t, h, telemetry.MetricBreakerCalls, sdkmetric.InstrumentKindObservableCounter, "{call}")

	require.NoError(t, b.Call(ctx, telSucceed))
	require.NoError(t, b.Call(ctx, telSucceed))
	require.ErrorIs(t, b.Call(ctx, func(context.Context) error { return telErrNotFound }), telErrNotFound) // not a failure
	require.ErrorIs(t, b.Call(ctx, telFail), telErrDown)
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, b.Call(canceled, func(ctx context.Context) error { return ctx.Err() }), context.Canceled)
	require.Panics(t, func() { _ = b.Call(ctx, func(context.Context) error { panic("boom") }) })
	require.ErrorIs(t, b.Call(ctx, telFail), telErrDown) // third consecutive failure: opens
	require.ErrorIs(t, b.Call(ctx, telSucceed), breaker.ErrOpen)
	require.ErrorIs(t, b.Call(ctx, telSucceed), breaker.ErrOpen)

	name := telemetry.KeyPolicyName.String("inventory")
	telAssertSum(t, h, telemetry.MetricBreakerCalls, "{call}", true,
		telPoint(3, name, telemetry.KeyOutcome.String("success")),
		telPoint(3, name, telemetry.KeyOutcome.String("failure")),
		telPoint(2, name, telemetry.KeyOutcome.String("rejected")),
		telPoint(1, name, telemetry.KeyOutcome.String("ignored")),
	)
}

func TestTelemetry_TransitionsMetric_ByFromAndTo(t *testing.T) {
	t.Parallel()
	h := telemetrytest.New(t)
	clock := fakeclock.New()
	b := telBreaker(h, "inventory", breaker.WithClock(clock.Now), breaker.WithFailureThreshold(1))
	ctx := context.Background()

	telAssertInstrument(t, h, telemetry.MetricBreakerTransitions, sdkmetric.InstrumentKindCounter, "{transition}")
	h.AssertInt64(telemetry.MetricBreakerTransitions, 0) // nothing before the first change

	require.ErrorIs(t, b.Call(ctx, telFail), telErrDown) // closed -> open
	clock.Advance(breaker.DefaultOpenTimeout)
	require.ErrorIs(t, b.Call(ctx, telFail), telErrDown) // open -> half_open, the probe fails: half_open -> open
	clock.Advance(breaker.DefaultOpenTimeout)
	require.NoError(t, b.Call(ctx, telSucceed)) // open -> half_open, the probe succeeds: half_open -> closed
	b.ForceOpen(ctx)                            // closed -> open
	b.Reset(ctx)                                // open -> closed

	name := telemetry.KeyPolicyName.String("inventory")
	edge := func(v int64, from, to string) metricdata.DataPoint[int64] {
		return telPoint(v, name, telemetry.KeyBreakerFrom.String(from), telemetry.KeyBreakerTo.String(to))
	}
	telAssertSum(t, h, telemetry.MetricBreakerTransitions, "{transition}", true,
		edge(2, "closed", "open"),
		edge(2, "open", "half_open"),
		edge(1, "half_open", "open"),
		edge(1, "half_open", "closed"),
		edge(1, "open", "closed"),
	)
}

func TestTelemetry_Metrics_FixedSeriesPerBreaker(t *testing.T) {
	t.Parallel()
	h := telemetrytest.New(t)
	a := telBreaker(h, "a", breaker.WithFailureThreshold(1), breaker.WithClock(fakeclock.New().Now))
	_ = telBreaker(h, "b")
	for range 100 {
		_ = a.Call(context.Background(), telFail)
	}

	// Per breaker: 3 state series and 4 call series, however many calls.
	telAssertSum(t, h, telemetry.MetricBreakerState, telemetry.UnitState, false,
		append(telStatePoints("a", "open"), telStatePoints("b", "closed")...)...)
	h.AssertInt64(telemetry.MetricBreakerCalls, 99, telemetry.KeyPolicyName.String("a"), telemetry.KeyOutcome.String("rejected"))
	calls := h.Metric(telemetry.MetricBreakerCalls).Data.(metricdata.Sum[int64])
	assert.Len(t, calls.DataPoints, 8)
}

func TestTelemetry_TransitionSpan_InternalChildOfTheCallThatCausedIt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		setup    func(b *breaker.Breaker, clock *fakeclock.Clock) // runs with no span
		cause    func(ctx context.Context, b *breaker.Breaker)    // runs in the caller's span
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
			name:  "open to half_open when a call finds the timeout passed",
			setup: telToHalfOpenLazily,
			cause: func(ctx context.Context, b *breaker.Breaker) { _ = b.Call(ctx, telSucceed) },
			from:  "open", to: "half_open",
		},
		{
			name:  "half_open to open when the probe fails",
			setup: telToHalfOpenLazily,
			cause: func(ctx context.Context, b *breaker.Breaker) { _ = b.Call(ctx, telFail) },
			from:  "half_open", to: "open", failures: 1,
		},
		{
			name:  "half_open to closed when the probe succeeds",
			setup: telToHalfOpenLazily,
			cause: func(ctx context.Context, b *breaker.Breaker) { _ = b.Call(ctx, telSucceed) },
			from:  "half_open", to: "closed",
		},
		{
			name:  "forced open by an operator",
			cause: func(ctx context.Context, b *breaker.Breaker) { b.ForceOpen(ctx) },
			from:  "closed", to: "open", forced: true,
		},
		{
			name:  "reset by an operator",
			setup: func(b *breaker.Breaker, _ *fakeclock.Clock) { b.ForceOpen(context.Background()) },
			cause: func(ctx context.Context, b *breaker.Breaker) { b.Reset(ctx) },
			from:  "open", to: "closed", forced: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := telemetrytest.New(t)
			clock := fakeclock.New()
			b := telBreaker(h, "inventory", breaker.WithClock(clock.Now))
			if tt.setup != nil {
				tt.setup(b, clock)
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
			assert.ElementsMatch(t, telTransitionAttrs("inventory", tt.from, tt.to, tt.failures, tt.forced), span.Attributes())
			assert.Equal(t, telemetry.ScopeName, span.InstrumentationScope().Name)
			assert.Equal(t, telemetry.Version(), span.InstrumentationScope().Version)
		})
	}
}

// telTrip fails the default threshold of calls in ctx.
func telTrip(ctx context.Context, b *breaker.Breaker) {
	for range breaker.DefaultFailureThreshold {
		_ = b.Call(ctx, telFail)
	}
}

// telToHalfOpenLazily opens the breaker and lets its open timeout pass on
// the fake clock, without a call or a State read: the next call makes the
// open -> half_open transition.
func telToHalfOpenLazily(b *breaker.Breaker, clock *fakeclock.Clock) {
	telTrip(context.Background(), b)
	clock.Advance(breaker.DefaultOpenTimeout)
}

func TestTelemetry_TransitionSpan_RootWhenTheTimerMakesIt(t *testing.T) {
	t.Parallel()
	h := telemetrytest.New(t)
	// The real clock: an open breaker arms a timer for its half-open move.
	b := telBreaker(h, "inventory", breaker.WithFailureThreshold(1), breaker.WithOpenTimeout(5*time.Millisecond))
	ctx, caller := h.StartSpan(context.Background(), "GET /stock")
	require.ErrorIs(t, b.Call(ctx, telFail), telErrDown)
	caller.End()

	// Only the spans are polled: State() would make the move itself.
	require.Eventually(t, func() bool { return len(telTransitionSpans(h, "open", "half_open")) > 0 },
		2*time.Second, time.Millisecond, "the timer moves the breaker to half_open with no call")

	spans := telTransitionSpans(h, "open", "half_open")
	require.Len(t, spans, 1)
	span := spans[0]
	assert.False(t, span.Parent().IsValid(), "no call is behind it: a root span")
	assert.NotEqual(t, caller.SpanContext().TraceID(), span.SpanContext().TraceID(), "not in the trace of the call that opened it")
	assert.Equal(t, trace.SpanKindInternal, span.SpanKind())
	assert.ElementsMatch(t, telTransitionAttrs("inventory", "open", "half_open", 0, false), span.Attributes())
	h.AssertInt64(telemetry.MetricBreakerTransitions, 1, telemetry.KeyBreakerFrom.String("open"), telemetry.KeyBreakerTo.String("half_open"))

	events := telemetrytest.EventsOn(h.Span("GET /stock"), telemetry.EventBreakerTransition)
	require.Len(t, events, 1, "the caller's span has its own transition only")
	h.AssertAttributes(events[0].Attributes, telemetry.KeyBreakerTo.String("open"))
}

func TestTelemetry_TransitionSpan_RootWhenAStateReadMakesIt(t *testing.T) {
	t.Parallel()
	h := telemetrytest.New(t)
	clock := fakeclock.New()
	b := telBreaker(h, "inventory", breaker.WithClock(clock.Now), breaker.WithFailureThreshold(1))
	ctx, caller := h.StartSpan(context.Background(), "GET /stock")
	require.ErrorIs(t, b.Call(ctx, telFail), telErrDown)
	caller.End()

	clock.Advance(breaker.DefaultOpenTimeout)
	require.Equal(t, breaker.HalfOpen, b.State())

	spans := telTransitionSpans(h, "open", "half_open")
	require.Len(t, spans, 1)
	assert.False(t, spans[0].Parent().IsValid(), "State has no caller's context: a root span")
	assert.ElementsMatch(t, telTransitionAttrs("inventory", "open", "half_open", 0, false), spans[0].Attributes())
}

func TestTelemetry_Events_OnTheCallersRecordingSpan(t *testing.T) {
	t.Parallel()
	h := telemetrytest.New(t)
	clock := fakeclock.New()
	b := telBreaker(h, "inventory", breaker.WithClock(clock.Now))

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
	clock.Advance(breaker.DefaultOpenTimeout)
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
			require.False(t, trace.SpanFromContext(tt.ctx).IsRecording())
			h := telemetrytest.New(t)
			b := telBreaker(h, "inventory", breaker.WithClock(fakeclock.New().Now))
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
	}
}

func TestTelemetry_CallsThatChangeNoStateReportNothing(t *testing.T) {
	t.Parallel()
	h := telemetrytest.New(t)
	b := telBreaker(h, "inventory", breaker.WithClock(fakeclock.New().Now))
	ctx, caller := h.StartSpan(context.Background(), "GET /stock")
	for range 5 {
		for range 20 {
			require.NoError(t, b.Call(ctx, telSucceed))
		}
		for range breaker.DefaultFailureThreshold - 1 {
			require.ErrorIs(t, b.Call(ctx, telFail), telErrDown)
		}
	}
	caller.End()

	require.Equal(t, breaker.Closed, b.State())
	assert.Len(t, h.Spans(""), 1, "no span but the caller's")
	assert.Empty(t, h.Span("GET /stock").Events(), "no events on the caller's span")
	h.AssertInt64(telemetry.MetricBreakerTransitions, 0)
	// The counts still reach the metrics, read from the breaker's atomics.
	h.AssertInt64(telemetry.MetricBreakerCalls, 100, telemetry.KeyOutcome.String("success"))
	h.AssertInt64(telemetry.MetricBreakerCalls, 10, telemetry.KeyOutcome.String("failure"))
}

// The hot-path rule, as a behaviour: with an SDK installed and a recording
// span in ctx, a call through a closed breaker that succeeds allocates
// nothing. Not parallel: testing.AllocsPerRun counts the whole process's
// allocations.
func TestTelemetry_ClosedSuccessPathAllocatesNothingWithSDKInstalled(t *testing.T) {
	h := telemetrytest.New(t)
	b := telBreaker(h, "inventory")
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
