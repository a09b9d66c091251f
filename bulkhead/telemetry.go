package bulkhead

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/levee-go/levee/internal/emit"
	"github.com/levee-go/levee/telemetry"
)

// instruments is one bulkhead's telemetry. Its metrics are observable
// instruments shared by every bulkhead of its MeterProvider, read from the
// bulkhead's atomics at collection time; its events go on the caller's span,
// only on the rare paths (a rejection, a wait).
type instruments struct {
	name    attribute.KeyValue
	members *emit.Members[Bulkhead, meterInstruments]
	// The providers as given (nil for the globals), for a pipeline that
	// reports under the bulkhead's telemetry.
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	// rejectedOpts are the options of the event of a call rejected at
	// once, built ahead: a full bulkhead may reject every call.
	rejectedOpts []trace.EventOption
}

// meterInstruments are the bulkhead instruments of one MeterProvider.
type meterInstruments struct {
	calls    metric.Int64ObservableCounter
	inFlight metric.Int64ObservableUpDownCounter
	queued   metric.Int64ObservableUpDownCounter
}

var registry = emit.NewRegistry(createInstruments, observe)

func createInstruments(meter metric.Meter) (meterInstruments, []metric.Observable) {
	var mi meterInstruments
	var err error
	mi.calls, err = meter.Int64ObservableCounter(telemetry.MetricBulkheadCalls,
		metric.WithUnit(telemetry.UnitCall),
		metric.WithDescription("Calls decided by bulkheads, by outcome."))
	emit.Handle(err)
	mi.inFlight, err = meter.Int64ObservableUpDownCounter(telemetry.MetricBulkheadInFlight,
		metric.WithUnit(telemetry.UnitCall),
		metric.WithDescription("Calls holding a slot of a bulkhead."))
	emit.Handle(err)
	mi.queued, err = meter.Int64ObservableUpDownCounter(telemetry.MetricBulkheadQueued,
		metric.WithUnit(telemetry.UnitCall),
		metric.WithDescription("Calls waiting for a slot of a bulkhead."))
	emit.Handle(err)
	return mi, []metric.Observable{mi.calls, mi.inFlight, mi.queued}
}

// observe reports one bulkhead. The attribute sets are built here, at
// collection, rather than kept by each bulkhead.
func observe(o metric.Observer, mi meterInstruments, b *Bulkhead) {
	name := b.tel.name
	c := b.counts()
	opts := make([]metric.ObserveOption, 1)
	for _, oc := range [...]struct {
		outcome string
		n       int64
	}{
		{telemetry.OutcomeAdmitted, c.admitted},
		{telemetry.OutcomeWaited, c.waited},
		{telemetry.OutcomeRejected, c.rejected},
		{telemetry.OutcomeTimedOut, c.timedOut},
		{telemetry.OutcomeCanceled, c.canceled},
	} {
		opts[0] = metric.WithAttributeSet(attribute.NewSet(name, telemetry.KeyOutcome.String(oc.outcome)))
		o.ObserveInt64(mi.calls, oc.n, opts...)
	}
	opts[0] = metric.WithAttributeSet(attribute.NewSet(name))
	o.ObserveInt64(mi.inFlight, int64(b.InFlight()), opts...)
	o.ObserveInt64(mi.queued, int64(b.Queued()), opts...)
}

// newInstruments sets b's telemetry up and registers b with the meter
// provider's callback, which may read b from then on.
func newInstruments(b *Bulkhead, tp trace.TracerProvider, mp metric.MeterProvider) {
	name := telemetry.KeyPolicyName.String(b.name)
	b.tel = &instruments{
		name:           name,
		tracerProvider: tp,
		meterProvider:  mp,
		rejectedOpts: []trace.EventOption{trace.WithAttributes(
			name,
			telemetry.KeyOutcome.String(telemetry.OutcomeRejected),
			telemetry.KeyErrorType.String(telemetry.ErrorTypeBulkheadFull),
		)},
	}
	b.tel.members = registry.Join(mp, b)
}

func (tel *instruments) rejectedAtOnce(ctx context.Context) {
	if span := emit.Recording(ctx); span != nil {
		emit.Guard("bulkhead telemetry", func() { span.AddEvent(telemetry.EventBulkheadRejected, tel.rejectedOpts...) })
	}
}

func (tel *instruments) timedOut(ctx context.Context, waited time.Duration) {
	if span := emit.Recording(ctx); span != nil {
		emit.Guard("bulkhead telemetry", func() {
			span.AddEvent(telemetry.EventBulkheadRejected, trace.WithAttributes(
				tel.name,
				telemetry.KeyOutcome.String(telemetry.OutcomeTimedOut),
				telemetry.KeyErrorType.String(telemetry.ErrorTypeBulkheadFull),
				telemetry.KeyBulkheadWait.Float64(waited.Seconds()),
			))
		})
	}
}

func (tel *instruments) waited(ctx context.Context, waited time.Duration) {
	if span := emit.Recording(ctx); span != nil {
		emit.Guard("bulkhead telemetry", func() {
			span.AddEvent(telemetry.EventBulkheadWaited, trace.WithAttributes(
				tel.name,
				telemetry.KeyOutcome.String(telemetry.OutcomeWaited),
				telemetry.KeyBulkheadWait.Float64(waited.Seconds()),
			))
		})
	}
}

func (tel *instruments) canceled(ctx context.Context, waited time.Duration, err error) {
	if span := emit.Recording(ctx); span != nil {
		emit.Guard("bulkhead telemetry", func() {
			span.AddEvent(telemetry.EventBulkheadWaited, trace.WithAttributes(
				tel.name,
				telemetry.KeyOutcome.String(telemetry.OutcomeCanceled),
				telemetry.KeyErrorType.String(telemetry.ErrorType(err)),
				telemetry.KeyBulkheadWait.Float64(waited.Seconds()),
			))
		})
	}
}
