package breaker

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/levee-go/levee/telemetry"
)

// instruments is a breaker's telemetry. Everything a report needs that can be
// computed ahead (attribute sets, option slices) is computed at construction,
// so the rare paths that report allocate little and the hot path touches none
// of it.
type instruments struct {
	name        string
	tracer      trace.Tracer
	transitions metric.Int64Counter

	stateGauge metric.Int64ObservableUpDownCounter
	calls      metric.Int64ObservableCounter

	stateOpts    [len(allStates)][]metric.ObserveOption
	outcomeOpts  [numOutcomes][]metric.ObserveOption
	transitOpts  [len(allStates)][len(allStates)][]metric.AddOption
	rejectedAttr [len(allStates)][]attribute.KeyValue
	nameAttr     attribute.KeyValue
}

func newInstruments(b *Breaker, tp trace.TracerProvider, mp metric.MeterProvider) *instruments {
	nameAttr := telemetry.KeyPolicyName.String(b.name)
	tel := &instruments{
		name:     b.name,
		tracer:   telemetry.Tracer(tp),
		nameAttr: nameAttr,
	}
	for _, s := range allStates {
		set := attribute.NewSet(nameAttr, telemetry.KeyBreakerState.String(s.telemetryValue()))
		tel.stateOpts[s] = []metric.ObserveOption{metric.WithAttributeSet(set)}
		tel.rejectedAttr[s] = []attribute.KeyValue{
			nameAttr,
			telemetry.KeyBreakerState.String(s.telemetryValue()),
			telemetry.KeyErrorType.String(telemetry.ErrorTypeCircuitOpen),
		}
		for _, to := range allStates {
			set := attribute.NewSet(nameAttr,
				telemetry.KeyBreakerFrom.String(s.telemetryValue()),
				telemetry.KeyBreakerTo.String(to.telemetryValue()))
			tel.transitOpts[s][to] = []metric.AddOption{metric.WithAttributeSet(set)}
		}
	}
	outcomeNames := [numOutcomes]string{
		outcomeSuccess:  telemetry.OutcomeSuccess,
		outcomeFailure:  telemetry.OutcomeFailure,
		outcomeRejected: telemetry.OutcomeRejected,
		outcomeIgnored:  telemetry.OutcomeIgnored,
	}
	for o, value := range outcomeNames {
		set := attribute.NewSet(nameAttr, telemetry.KeyOutcome.String(value))
		tel.outcomeOpts[o] = []metric.ObserveOption{metric.WithAttributeSet(set)}
	}

	meter := telemetry.Meter(mp)
	var err error
	tel.transitions, err = meter.Int64Counter(telemetry.MetricBreakerTransitions,
		metric.WithUnit(telemetry.UnitTransition),
		metric.WithDescription("State changes of circuit breakers."))
	telemetry.Handle(err)
	tel.stateGauge, err = meter.Int64ObservableUpDownCounter(telemetry.MetricBreakerState,
		metric.WithUnit(telemetry.UnitState),
		metric.WithDescription("Circuit breaker state: 1 for the current state, 0 for the others."))
	telemetry.Handle(err)
	tel.calls, err = meter.Int64ObservableCounter(telemetry.MetricBreakerCalls,
		metric.WithUnit(telemetry.UnitCall),
		metric.WithDescription("Calls seen by circuit breakers, by outcome."))
	telemetry.Handle(err)
	if tel.stateGauge != nil && tel.calls != nil {
		_, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
			current := b.State()
			for _, s := range allStates {
				var v int64
				if s == current {
					v = 1
				}
				o.ObserveInt64(tel.stateGauge, v, tel.stateOpts[s]...)
			}
			for out := range numOutcomes {
				o.ObserveInt64(tel.calls, b.counts.load(out), tel.outcomeOpts[out]...)
			}
			return nil
		}, tel.stateGauge, tel.calls)
		telemetry.Handle(err)
	}
	return tel
}

// rejected reports a rejection as an event on the caller's span, when it is
// recording. The count itself lives in the breaker's atomics.
func (tel *instruments) rejected(ctx context.Context, s State) {
	telemetry.AddEvent(ctx, telemetry.EventBreakerRejected, tel.rejectedAttr[s]...)
}

// transitioned reports a state change: the transitions counter, an INTERNAL
// span that is a child of the caller's span (a root span when no call is
// behind the change), and an event on the caller's span when it is
// recording.
func (tel *instruments) transitioned(ctx context.Context, c StateChange) {
	if tel.transitions != nil {
		tel.transitions.Add(ctx, 1, tel.transitOpts[c.From][c.To]...)
	}
	attrs := []attribute.KeyValue{
		tel.nameAttr,
		telemetry.KeyBreakerFrom.String(c.From.telemetryValue()),
		telemetry.KeyBreakerTo.String(c.To.telemetryValue()),
		telemetry.KeyBreakerConsecutiveFailures.Int(c.ConsecutiveFailures),
		telemetry.KeyBreakerForced.Bool(c.Forced),
	}
	_, span := tel.tracer.Start(ctx, telemetry.SpanBreakerTransition,
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attrs...))
	span.End()
	telemetry.AddEvent(ctx, telemetry.EventBreakerTransition, attrs...)
}

func (tel *instruments) listenerPanicked(c StateChange, r any) {
	telemetry.Handle(fmt.Errorf("levee: circuit breaker %q: state-change listener panicked on %s -> %s: %v", tel.name, c.From, c.To, r))
}
