package breaker

import (
	"context"
	"sync/atomic"

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
	// event, by state, built the first time a recording span sees a
	// rejection: most breakers never need them.
	rejectedOpts atomic.Pointer[[len(allStates)][]trace.EventOption]
}

func newInstruments(b *Breaker, tp trace.TracerProvider, mp metric.MeterProvider) *instruments {
	return &instruments{name: b.name, tracer: emit.Tracer(tp), meter: registry.Join(mp, b), tracerProvider: tp, meterProvider: mp}
}

// meterInstruments are the breaker instruments of one MeterProvider, shared
// by all its breakers. One callback per provider observes them all, through
// registry, which holds the breakers weakly: a breaker nobody else
// references is garbage, and stops being reported.
type meterInstruments struct {
	transitions metric.Int64Counter
	stateGauge  metric.Int64ObservableUpDownCounter
	calls       metric.Int64ObservableCounter
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
	if mi.stateGauge == nil || mi.calls == nil {
		return mi, nil // the provider refused them: nothing to observe
	}
	return mi, []metric.Observable{mi.stateGauge, mi.calls}
}

// outcomeValues are the levee.outcome values, by outcome.
var outcomeValues = [numOutcomes]string{
	outcomeSuccess:  telemetry.OutcomeSuccess,
	outcomeFailure:  telemetry.OutcomeFailure,
	outcomeRejected: telemetry.OutcomeRejected,
	outcomeIgnored:  telemetry.OutcomeIgnored,
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
		opts[0] = metric.WithAttributeSet(attribute.NewSet(name, telemetry.KeyOutcome.String(value)))
		o.ObserveInt64(mi.calls, b.counts.load(outcome(out)), opts...)
	}
}

// rejected reports a rejection as an event on the caller's span, when it is
// recording. The count itself lives in the breaker's atomics.
func (tel *instruments) rejected(ctx context.Context, s State) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	opts := tel.rejectedOpts.Load()
	if opts == nil {
		opts = new([len(allStates)][]trace.EventOption)
		for _, state := range allStates {
			opts[state] = []trace.EventOption{trace.WithAttributes(
				telemetry.KeyPolicyName.String(tel.name),
				telemetry.KeyBreakerState.String(state.telemetryValue()),
				telemetry.KeyErrorType.String(telemetry.ErrorTypeCircuitOpen),
			)}
		}
		tel.rejectedOpts.Store(opts)
	}
	emit.Guard("circuit breaker telemetry", func() { span.AddEvent(telemetry.EventBreakerRejected, opts[s]...) })
}

// transitioned reports a state change: the transitions counter, an INTERNAL
// span that is a child of the caller's span, and an event on the caller's
// span when it is recording. A change no call caused (the open timer) starts
// a root span linked to the span of the call that opened the breaker. A
// fault in the telemetry (an exporter that panics) is reported to
// otel.Handle and never reaches the caller.
func (tel *instruments) transitioned(ctx context.Context, c StateChange, openedBy trace.SpanContext) {
	emit.Guard("circuit breaker telemetry", func() {
		name := telemetry.KeyPolicyName.String(tel.name)
		from := telemetry.KeyBreakerFrom.String(c.From.telemetryValue())
		to := telemetry.KeyBreakerTo.String(c.To.telemetryValue())
		if transitions := tel.meter.Instruments().transitions; transitions != nil {
			transitions.Add(ctx, 1, metric.WithAttributeSet(attribute.NewSet(name, from, to)))
		}
		attrs := []attribute.KeyValue{
			name, from, to,
			telemetry.KeyBreakerConsecutiveFailures.Int(c.ConsecutiveFailures),
			telemetry.KeyBreakerForced.Bool(c.Forced),
		}
		opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attrs...)}
		if !trace.SpanContextFromContext(ctx).IsValid() && openedBy.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: openedBy}))
		}
		_, span := tel.tracer.Start(ctx, telemetry.SpanBreakerTransition, opts...)
		span.End()
		emit.AddEvent(ctx, telemetry.EventBreakerTransition, attrs...)
	})
}
