package breaker

import (
	"context"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/levee-go/levee/internal/emit"
	"github.com/levee-go/levee/telemetry"
)

// instruments is one breaker's telemetry: only what its rare paths need.
// The metric instruments, and the one callback that observes every breaker
// at collection time, belong to the breaker's MeterProvider and are shared by
// all its breakers (see meterInstruments), so a breaker costs its provider a
// slot in a list, not instruments and a callback of its own.
type instruments struct {
	name   string
	tracer trace.Tracer
	meter  *emit.Members[Breaker, meterInstruments]
	// The providers as given (nil for the globals), for a pipeline that
	// reports under the breaker's telemetry.
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider

	// rejectedOpts are the options of the levee.circuit_breaker.rejected
	// event, by shadow mode and state, built the first time a recording
	// span sees a rejection: most breakers never need them.
	rejectedOpts atomic.Pointer[[2][len(allStates)][]trace.EventOption]

	// callDuration is the levee.circuit_breaker.call.duration histogram of
	// a breaker made WithCallDurationHistogram, nil otherwise.
	callDuration *durationHistogram
}

// durationHistogram is the call duration histogram and its options by
// outcome, built once.
type durationHistogram struct {
	histogram metric.Float64Histogram
	opts      [numOutcomes][]metric.RecordOption
}

func newInstruments(b *Breaker, tp trace.TracerProvider, mp metric.MeterProvider, callDuration bool) *instruments {
	tel := &instruments{name: b.name, tracer: emit.Tracer(tp), meter: registry.Join(mp, b), tracerProvider: tp, meterProvider: mp}
	if h := tel.meter.Instruments().callDuration; callDuration && h != nil {
		d := &durationHistogram{histogram: h}
		name := telemetry.KeyPolicyName.String(b.name)
		for o, value := range outcomeValues {
			d.opts[o] = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(name, telemetry.KeyOutcome.String(value)))}
		}
		tel.callDuration = d
	}
	return tel
}

// recordDuration records how long a call that ran took. A fault of the
// meter's is reported to otel.Handle and never reaches the call.
func (tel *instruments) recordDuration(ctx context.Context, o outcome, d time.Duration) {
	h := tel.callDuration
	emit.Guard("circuit breaker telemetry", func() { h.histogram.Record(ctx, d.Seconds(), h.opts[o]...) })
}

// meterInstruments are the breaker instruments of one MeterProvider, shared
// by all its breakers. One callback per provider observes them all, through
// registry, which holds the breakers weakly: a breaker nobody else
// references is garbage, and stops being reported.
type meterInstruments struct {
	transitions  metric.Int64Counter
	stateGauge   metric.Int64ObservableUpDownCounter
	calls        metric.Int64ObservableCounter
	failureRate  metric.Float64ObservableGauge
	slowCallRate metric.Float64ObservableGauge
	callDuration metric.Float64Histogram
}

var registry = emit.NewRegistry(newMeterInstruments, observe)

func newMeterInstruments(meter metric.Meter) (meterInstruments, []metric.Observable) {
	var mi meterInstruments
	var err error
	mi.transitions, err = meter.Int64Counter(telemetry.MetricBreakerTransitions,
		metric.WithUnit(telemetry.UnitTransition),
		metric.WithDescription("State changes of circuit breakers."))
	emit.Handle(err)
	mi.stateGauge, err = meter.Int64ObservableUpDownCounter(telemetry.MetricBreakerState,
		metric.WithUnit(telemetry.UnitState),
		metric.WithDescription("Circuit breaker state: 1 for the current state, 0 for the others."))
	emit.Handle(err)
	mi.calls, err = meter.Int64ObservableCounter(telemetry.MetricBreakerCalls,
		metric.WithUnit(telemetry.UnitCall),
		metric.WithDescription("Calls seen by circuit breakers, by outcome."))
	emit.Handle(err)
	mi.failureRate, err = meter.Float64ObservableGauge(telemetry.MetricBreakerFailureRate,
		metric.WithUnit(telemetry.UnitRatio),
		metric.WithDescription("Share of failed calls in the window of circuit breakers that have one."))
	emit.Handle(err)
	mi.slowCallRate, err = meter.Float64ObservableGauge(telemetry.MetricBreakerSlowCallRate,
		metric.WithUnit(telemetry.UnitRatio),
		metric.WithDescription("Share of slow calls in the window of circuit breakers that time their calls."))
	emit.Handle(err)
	mi.callDuration, err = meter.Float64Histogram(telemetry.MetricBreakerCallDuration,
		metric.WithUnit(telemetry.UnitSecond),
		metric.WithDescription("Duration of the calls circuit breakers ran, by outcome."),
		metric.WithExplicitBucketBoundaries(callDurationBuckets...))
	emit.Handle(err)
	if mi.stateGauge == nil || mi.calls == nil || mi.failureRate == nil || mi.slowCallRate == nil {
		return mi, nil // the provider refused them: nothing to observe
	}
	return mi, []metric.Observable{mi.stateGauge, mi.calls, mi.failureRate, mi.slowCallRate}
}

// callDurationBuckets are the semantic conventions' advice for the
// boundaries of a request duration (http.client.request.duration), in
// seconds.
var callDurationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// outcomeValues are the levee.outcome values, by outcome.
var outcomeValues = [numOutcomes]string{
	outcomeSuccess:  telemetry.OutcomeSuccess,
	outcomeFailure:  telemetry.OutcomeFailure,
	outcomeRejected: telemetry.OutcomeRejected,
	outcomeIgnored:  telemetry.OutcomeIgnored,

	outcomeShadowRejected: telemetry.OutcomeShadowRejected,
}

// observe reports a breaker's state (1 for the current one, 0 for the
// others) and its calls by outcome. The attribute sets are built here, at
// collection, rather than kept by each breaker: 7 sets would cost a breaker
// more than everything else it holds.
func observe(o metric.Observer, mi meterInstruments, b *Breaker) {
	name := telemetry.KeyPolicyName.String(b.name)
	current := b.State()
	// One option slice serves the breaker's seven observations: the
	// observer reads it and keeps only the attribute set.
	opts := make([]metric.ObserveOption, 1)
	for _, s := range allStates {
		var v int64
		if s == current {
			v = 1
		}
		opts[0] = metric.WithAttributeSet(attribute.NewSet(name, telemetry.KeyBreakerState.String(s.telemetryValue())))
		o.ObserveInt64(mi.stateGauge, v, opts...)
	}
	for out, value := range outcomeValues {
		if outcome(out) == outcomeShadowRejected && !b.shadowSeen.Load() {
			continue // reported once shadow mode has been on
		}
		opts[0] = metric.WithAttributeSet(attribute.NewSet(name, telemetry.KeyOutcome.String(value)))
		o.ObserveInt64(mi.calls, b.counts.load(outcome(out)), opts...)
	}
	if b.rules.windowed() {
		c := b.Window()
		opts[0] = metric.WithAttributeSet(attribute.NewSet(name))
		o.ObserveFloat64(mi.failureRate, c.FailureRate(), opts...)
		if b.rules.slowCallDuration > 0 {
			o.ObserveFloat64(mi.slowCallRate, c.SlowCallRate(), opts...)
		}
	}
}

// rejected reports a rejection as an event on the caller's span, when it is
// recording. The count itself lives in the breaker's atomics.
// A rejection that shadow mode let through is reported all the same, with
// levee.circuit_breaker.shadow = true.
func (tel *instruments) rejected(ctx context.Context, s State, shadow bool) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	opts := tel.rejectedOpts.Load()
	if opts == nil {
		opts = new([2][len(allStates)][]trace.EventOption)
		for _, state := range allStates {
			attrs := []attribute.KeyValue{
				telemetry.KeyPolicyName.String(tel.name),
				telemetry.KeyBreakerState.String(state.telemetryValue()),
				telemetry.KeyErrorType.String(telemetry.ErrorTypeCircuitOpen),
			}
			opts[0][state] = []trace.EventOption{trace.WithAttributes(attrs...)}
			opts[1][state] = []trace.EventOption{trace.WithAttributes(append(attrs, telemetry.KeyBreakerShadow.Bool(true))...)}
		}
		tel.rejectedOpts.Store(opts)
	}
	i := 0
	if shadow {
		i = 1
	}
	emit.Guard("circuit breaker telemetry", func() { span.AddEvent(telemetry.EventBreakerRejected, opts[i][s]...) })
}

// transitioned reports a state change: the transitions counter, an INTERNAL
// span that is a child of the caller's span, and an event on the caller's
// span when it is recording. A change no call caused (the open timer) starts
// a root span linked to the span of the call that opened the breaker. A
// fault in the telemetry (an exporter that panics) is reported to
// otel.Handle and never reaches the caller.
//
// A trip (closed -> open, by a rule) carries the rule that fired
// (levee.circuit_breaker.trip_rule, on the counter too) and, for a breaker
// with a window, the window's counts.
func (tel *instruments) transitioned(ctx context.Context, c StateChange, openedBy *trace.SpanContext, windowed bool) {
	emit.Guard("circuit breaker telemetry", func() {
		name := telemetry.KeyPolicyName.String(tel.name)
		from := telemetry.KeyBreakerFrom.String(c.From.telemetryValue())
		to := telemetry.KeyBreakerTo.String(c.To.telemetryValue())
		metricAttrs := []attribute.KeyValue{name, from, to}
		if c.TripRule != "" {
			metricAttrs = append(metricAttrs, telemetry.KeyBreakerTripRule.String(c.TripRule))
		}
		if transitions := tel.meter.Instruments().transitions; transitions != nil {
			transitions.Add(ctx, 1, metric.WithAttributeSet(attribute.NewSet(metricAttrs...)))
		}
		attrs := append(metricAttrs,
			telemetry.KeyBreakerConsecutiveFailures.Int(c.ConsecutiveFailures),
			telemetry.KeyBreakerForced.Bool(c.Forced),
		)
		if c.TripRule != "" && windowed {
			attrs = append(attrs,
				telemetry.KeyBreakerWindowCalls.Int64(c.Window.Calls),
				telemetry.KeyBreakerWindowFailures.Int64(c.Window.Failures),
				telemetry.KeyBreakerWindowSlowCalls.Int64(c.Window.SlowCalls),
			)
		}
		opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attrs...)}
		if !trace.SpanContextFromContext(ctx).IsValid() && openedBy != nil {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: *openedBy}))
		}
		_, span := tel.tracer.Start(ctx, telemetry.SpanBreakerTransition, opts...)
		span.End()
		emit.AddEvent(ctx, telemetry.EventBreakerTransition, attrs...)
	})
}
