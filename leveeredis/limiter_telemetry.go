package leveeredis

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/levee-go/levee/internal/emit"
	"github.com/levee-go/levee/telemetry"
)

// limiterInstruments are one fleet limiter's telemetry: observable
// instruments read from its atomics at collection (a call does no SDK
// work), counters for its leases (background, a few a second), and a span
// event on the caller's span for a rejection, as ratelimit's.
type limiterInstruments struct {
	name    attribute.KeyValue
	members *emit.Members[Limiter, limiterMeter]
}

type limiterMeter struct {
	calls       metric.Int64ObservableCounter
	held        metric.Int64ObservableUpDownCounter
	fallback    metric.Int64ObservableUpDownCounter
	requests    metric.Int64Counter
	tokens      metric.Int64Counter
	kindLimiter attribute.KeyValue
}

var limiterRegistry = emit.NewRegistry(createLimiterInstruments, observeLimiter)

func createLimiterInstruments(m metric.Meter) (limiterMeter, []metric.Observable) {
	var lm limiterMeter
	var err error
	lm.calls, err = m.Int64ObservableCounter(MetricLimitCalls,
		metric.WithUnit(telemetry.UnitCall),
		metric.WithDescription("Calls decided by fleet rate limits, by outcome."))
	emit.Handle(err)
	lm.held, err = m.Int64ObservableUpDownCounter(MetricTokensHeld,
		metric.WithUnit("{token}"),
		metric.WithDescription("Tokens this instance leased from the fleet's bucket and has not spent yet."))
	emit.Handle(err)
	lm.fallback = newFallbackGauge(m)
	lm.requests, err = m.Int64Counter(MetricLeaseRequests,
		metric.WithUnit("{request}"),
		metric.WithDescription("Lease requests of fleet rate limits that Redis answered."))
	emit.Handle(err)
	lm.tokens, err = m.Int64Counter(MetricLeaseTokens,
		metric.WithUnit("{token}"),
		metric.WithDescription("Tokens Redis granted to this instance's leases."))
	emit.Handle(err)
	lm.kindLimiter = KeyPolicyKind.String("limiter")
	return lm, []metric.Observable{lm.calls, lm.held, lm.fallback}
}

func observeLimiter(o metric.Observer, lm limiterMeter, l *Limiter) {
	name := l.tel.name
	for _, oc := range [...]struct {
		outcome string
		n       int64
	}{
		{telemetry.OutcomeAdmitted, l.admitted.Load() + l.localAdmitted.Load()},
		{telemetry.OutcomeWaited, l.waited.Load()},
		{telemetry.OutcomeRejected, l.rejected.Load()},
		{telemetry.OutcomeCanceled, l.canceled.Load()},
	} {
		o.ObserveInt64(lm.calls, oc.n, metric.WithAttributeSet(attribute.NewSet(name, telemetry.KeyOutcome.String(oc.outcome))))
	}
	o.ObserveInt64(lm.held, max(l.tokens.Load(), 0), metric.WithAttributeSet(attribute.NewSet(name)))
	observeFallback(o, lm.fallback, l.LocalOnly(), name, lm.kindLimiter)
}

// newFallbackGauge is the levee.fleet.local_fallback instrument, which
// limiters and budgets report to alike.
func newFallbackGauge(m metric.Meter) metric.Int64ObservableUpDownCounter {
	g, err := m.Int64ObservableUpDownCounter(MetricLocalFallback,
		metric.WithUnit("{policy}"),
		metric.WithDescription("1 while a fleet policy acts on its local state alone because Redis could not be reached, else 0."))
	emit.Handle(err)
	return g
}

func observeFallback(o metric.Observer, g metric.Int64ObservableUpDownCounter, local bool, name, kind attribute.KeyValue) {
	var v int64
	if local {
		v = 1
	}
	o.ObserveInt64(g, v, metric.WithAttributeSet(attribute.NewSet(name, kind)))
}

func newLimiterInstruments(l *Limiter, f *Fleet) *limiterInstruments {
	tel := &limiterInstruments{name: telemetry.KeyPolicyName.String(l.name)}
	l.tel = tel
	tel.members = limiterRegistry.Join(f.mp, l)
	return tel
}

// leased counts one answered lease request and the tokens it granted.
func (tel *limiterInstruments) leased(want, granted int64) {
	lm := tel.members.Instruments()
	emit.Guard("leveeredis: lease counters", func() {
		attrs := metric.WithAttributes(tel.name)
		lm.requests.Add(context.Background(), 1, attrs)
		if granted > 0 {
			lm.tokens.Add(context.Background(), granted, attrs)
		}
	})
}

// rejected adds ratelimit's rejection event to the caller's span, so that
// a trace reads the same whichever limit refused the call.
func (tel *limiterInstruments) rejected(ctx context.Context, retryAfter time.Duration) {
	if span := emit.Recording(ctx); span != nil {
		emit.Guard("leveeredis: rate limit telemetry", func() {
			span.AddEvent(telemetry.EventRateLimitRejected, trace.WithAttributes(
				tel.name,
				telemetry.KeyOutcome.String(telemetry.OutcomeRejected),
				telemetry.KeyErrorType.String(telemetry.ErrorTypeRateLimited),
				telemetry.KeyRateLimitRetryAfter.Float64(retryAfter.Seconds()),
			))
		})
	}
}
