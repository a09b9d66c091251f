package throttle

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/levee-go/levee/internal/emit"
	"github.com/levee-go/levee/telemetry"
)

// instruments is one throttle's telemetry. Its metrics are observable
// instruments shared by every throttle of its MeterProvider, read from the
// throttle's atomics at collection time; its events go on the caller's span,
// only for refused calls.
type instruments struct {
	name    attribute.KeyValue
	members *emit.Members[Throttle, meterInstruments]
	// The providers as given (nil for the globals), for a pipeline that
	// reports under the throttle's telemetry.
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
}

// meterInstruments are the throttle instruments of one MeterProvider.
type meterInstruments struct {
	calls       metric.Int64ObservableCounter
	probability metric.Float64ObservableGauge
}

var registry = emit.NewRegistry(createInstruments, observe)

func createInstruments(meter metric.Meter) (meterInstruments, []metric.Observable) {
	var mi meterInstruments
	var err error
	mi.calls, err = meter.Int64ObservableCounter(telemetry.MetricThrottleCalls,
		metric.WithUnit(telemetry.UnitCall),
		metric.WithDescription("Calls seen by adaptive throttles, by outcome: success (the dependency accepted it), failure, rejected (refused locally), ignored."))
	emit.Handle(err)
	mi.probability, err = meter.Float64ObservableGauge(telemetry.MetricThrottleProbability,
		metric.WithUnit(telemetry.UnitRatio),
		metric.WithDescription("The probability with which an adaptive throttle refuses the next call."))
	emit.Handle(err)
	return mi, []metric.Observable{mi.calls, mi.probability}
}

// observe reports one throttle. The attribute sets are built here, at
// collection, rather than kept by each throttle.
func observe(o metric.Observer, mi meterInstruments, t *Throttle) {
	name := t.tel.name
	c := t.callCounts()
	for _, oc := range [...]struct {
		outcome string
		n       int64
	}{
		{telemetry.OutcomeSuccess, c.success},
		{telemetry.OutcomeFailure, c.failure},
		{telemetry.OutcomeRejected, c.rejected},
		{telemetry.OutcomeIgnored, c.ignored},
	} {
		o.ObserveInt64(mi.calls, oc.n, metric.WithAttributeSet(attribute.NewSet(name, telemetry.KeyOutcome.String(oc.outcome))))
	}
	o.ObserveFloat64(mi.probability, t.Probability(), metric.WithAttributeSet(attribute.NewSet(name)))
}

// newInstruments sets t's telemetry up and registers t with the meter
// provider's callback, which may read t from then on.
func newInstruments(t *Throttle, tp trace.TracerProvider, mp metric.MeterProvider) {
	t.tel = &instruments{
		name:           telemetry.KeyPolicyName.String(t.name),
		tracerProvider: tp,
		meterProvider:  mp,
	}
	t.tel.members = registry.Join(mp, t)
}

func (tel *instruments) rejected(ctx context.Context, p float64) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	emit.Guard("throttle telemetry", func() {
		span.AddEvent(telemetry.EventThrottleRejected, trace.WithAttributes(
			tel.name,
			telemetry.KeyOutcome.String(telemetry.OutcomeRejected),
			telemetry.KeyErrorType.String(telemetry.ErrorTypeThrottled),
			telemetry.KeyThrottleProbability.Float64(p),
		))
	})
}
