package ratelimit

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/levee-go/levee/internal/emit"
	"github.com/levee-go/levee/telemetry"
)

// instruments is one limiter's telemetry. Its metrics are observable
// instruments shared by every limiter of its MeterProvider, read from the
// limiter's counts at collection time; its events go on the caller's span,
// only on the rare paths (a rejection, a wait). Keys never become
// attributes.
type instruments struct {
	name    attribute.KeyValue
	members *emit.Members[Limiter, meterInstruments]
	// The providers as given (nil for the globals), for a pipeline that
	// reports under the limiter's telemetry.
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
}

// meterInstruments are the rate limit instruments of one MeterProvider.
type meterInstruments struct {
	calls    metric.Int64ObservableCounter
	queued   metric.Int64ObservableUpDownCounter
	keys     metric.Int64ObservableUpDownCounter
	overflow metric.Int64ObservableCounter
}

var registry = emit.NewRegistry(createInstruments, observe)

func createInstruments(meter metric.Meter) (meterInstruments, []metric.Observable) {
	var mi meterInstruments
	var err error
	mi.calls, err = meter.Int64ObservableCounter(telemetry.MetricRateLimitCalls,
		metric.WithUnit(telemetry.UnitCall),
		metric.WithDescription("Calls decided by rate limits, by outcome."))
	emit.Handle(err)
	mi.queued, err = meter.Int64ObservableUpDownCounter(telemetry.MetricRateLimitQueued,
		metric.WithUnit(telemetry.UnitCall),
		metric.WithDescription("Calls waiting for a rate limit's token."))
	emit.Handle(err)
	mi.keys, err = meter.Int64ObservableUpDownCounter(telemetry.MetricRateLimitKeys,
		metric.WithUnit(telemetry.UnitKey),
		metric.WithDescription("Keys tracked by keyed rate limits."))
	emit.Handle(err)
	mi.overflow, err = meter.Int64ObservableCounter(telemetry.MetricRateLimitKeyOverflow,
		metric.WithUnit(telemetry.UnitCall),
		metric.WithDescription("Calls of keyed rate limits decided by the shared overflow limit: their key was not tracked, and there was no room for it."))
	emit.Handle(err)
	return mi, []metric.Observable{mi.calls, mi.queued, mi.keys, mi.overflow}
}

// observe reports one limiter. The attribute sets are built here, at
// collection, rather than kept by each limiter.
func observe(o metric.Observer, mi meterInstruments, l *Limiter) {
	name := l.tel.name
	c := l.counts()
	opts := make([]metric.ObserveOption, 1)
	for _, oc := range [...]struct {
		outcome string
		n       int64
	}{
		{telemetry.OutcomeAdmitted, c.admitted},
		{telemetry.OutcomeWaited, c.waited},
		{telemetry.OutcomeRejected, c.rejected},
		{telemetry.OutcomeCanceled, c.canceled},
	} {
		opts[0] = metric.WithAttributeSet(attribute.NewSet(name, telemetry.KeyOutcome.String(oc.outcome)))
		o.ObserveInt64(mi.calls, oc.n, opts...)
	}
	opts[0] = metric.WithAttributeSet(attribute.NewSet(name))
	o.ObserveInt64(mi.queued, l.queued.Load(), opts...)
	if l.keys != nil {
		o.ObserveInt64(mi.keys, int64(l.keys.count()), opts...)
		o.ObserveInt64(mi.overflow, l.keys.overflowCount(), opts...)
	}
}

// newInstruments sets l's telemetry up and registers l with the meter
// provider's callback, which may read l from then on.
func newInstruments(l *Limiter, tp trace.TracerProvider, mp metric.MeterProvider) {
	l.tel = &instruments{
		name:           telemetry.KeyPolicyName.String(l.name),
		tracerProvider: tp,
		meterProvider:  mp,
	}
	l.tel.members = registry.Join(mp, l)
}

func (tel *instruments) rejected(ctx context.Context, retryAfter time.Duration) {
	if span := emit.Recording(ctx); span != nil {
		emit.Guard("rate limit telemetry", func() {
			span.AddEvent(telemetry.EventRateLimitRejected, trace.WithAttributes(
				tel.name,
				telemetry.KeyOutcome.String(telemetry.OutcomeRejected),
				telemetry.KeyErrorType.String(telemetry.ErrorTypeRateLimited),
				telemetry.KeyRateLimitRetryAfter.Float64(retryAfter.Seconds()),
			))
		})
	}
}

func (tel *instruments) waited(ctx context.Context, waited time.Duration) {
	if span := emit.Recording(ctx); span != nil {
		emit.Guard("rate limit telemetry", func() {
			span.AddEvent(telemetry.EventRateLimitWaited, trace.WithAttributes(
				tel.name,
				telemetry.KeyOutcome.String(telemetry.OutcomeWaited),
				telemetry.KeyRateLimitWait.Float64(waited.Seconds()),
			))
		})
	}
}

func (tel *instruments) canceled(ctx context.Context, waited time.Duration, err error) {
	if span := emit.Recording(ctx); span != nil {
		emit.Guard("rate limit telemetry", func() {
			span.AddEvent(telemetry.EventRateLimitWaited, trace.WithAttributes(
				tel.name,
				telemetry.KeyOutcome.String(telemetry.OutcomeCanceled),
				telemetry.KeyErrorType.String(telemetry.ErrorType(err)),
				telemetry.KeyRateLimitWait.Float64(waited.Seconds()),
			))
		})
	}
}
