package leveeredis

import (
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/levee-go/levee/internal/emit"
	"github.com/levee-go/levee/telemetry"
)

// Names of the levee.fleet.* telemetry (docs/telemetry.md, "Fleet"). They
// are reported under levee's instrumentation scope, like every policy's.
const (
	// MetricSyncErrors counts Redis operations of fleet policies that
	// failed or timed out, by levee.policy.name, levee.fleet.operation and
	// error.type. Each failure leaves the policy on its local state.
	MetricSyncErrors = "levee.fleet.sync.errors"

	// MetricInstancesLive is a gauge, by levee.policy.name: how many
	// instances heartbeat the fleet breaker, as this instance last read.
	MetricInstancesLive = "levee.fleet.instances.live"
	// MetricInstancesOpen is a gauge, by levee.policy.name: how many live
	// instances report their own breaker tripped (open on their own
	// failures), as this instance last read. The fleet opens when it
	// reaches the quorum.
	MetricInstancesOpen = "levee.fleet.instances.open"
	// MetricPropagationLag is a histogram (seconds), by
	// levee.policy.name: from a change of the fleet breaker's state in
	// Redis to this instance reading it, by the Redis server's clock.
	MetricPropagationLag = "levee.fleet.propagation.lag"
	// MetricLeaseHeld is a gauge, by levee.policy.name: 1 while this
	// instance holds the fleet breaker's probe lease, 0 otherwise; summed
	// over the fleet it is at most 1.
	MetricLeaseHeld = "levee.fleet.lease.held"
)

// Attribute keys of the levee.fleet.* telemetry.
const (
	// KeyOperation names the Redis operation of a fleet policy, a bounded
	// value such as "heartbeat", "publish", "lease".
	KeyOperation = attribute.Key("levee.fleet.operation")
)

type fleetInstruments struct {
	syncErrors metric.Int64Counter

	// The fleet breaker's.
	live, open, leaseHeld metric.Int64Gauge
	lag                   metric.Float64Histogram
}

func newFleetInstruments(m metric.Meter) fleetInstruments {
	var in fleetInstruments
	var err error
	in.syncErrors, err = m.Int64Counter(MetricSyncErrors,
		metric.WithUnit("{operation}"),
		metric.WithDescription("Redis operations of fleet policies that failed or timed out; each leaves the policy on its local state."))
	emit.Handle(err)
	newBreakerInstruments(m, &in)
	return in
}

func newBreakerInstruments(m metric.Meter, in *fleetInstruments) {
	gauge := func(name, unit, desc string) metric.Int64Gauge {
		g, err := m.Int64Gauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		emit.Handle(err)
		return g
	}
	in.live = gauge(MetricInstancesLive, "{instance}", "Instances that heartbeat the fleet breaker, as this instance last read.")
	in.open = gauge(MetricInstancesOpen, "{instance}", "Live instances whose own breaker has tripped, as this instance last read.")
	in.leaseHeld = gauge(MetricLeaseHeld, "{lease}", "1 while this instance holds the fleet breaker's probe lease.")
	var err error
	in.lag, err = m.Float64Histogram(MetricPropagationLag, metric.WithUnit("s"),
		metric.WithDescription("From a change of the fleet breaker's state in Redis to this instance reading it."),
		metric.WithExplicitBucketBoundaries(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
	emit.Handle(err)
}

var redisNil = redis.Nil

// Names of the fleet rate limit's and retry budget's telemetry
// (docs/telemetry.md, "Fleet rate limit and retry budget").
const (
	// MetricLimitCalls counts the calls a fleet Limiter decided, by
	// levee.policy.name and levee.outcome (admitted, waited, rejected,
	// canceled); calls decided by the local share while Redis was
	// unreachable are counted too.
	MetricLimitCalls = "levee.fleet.limit.calls"
	// MetricLeaseRequests counts the lease requests of fleet Limiters that
	// Redis answered, by levee.policy.name (failed ones are sync errors).
	MetricLeaseRequests = "levee.fleet.limit.leases"
	// MetricLeaseTokens counts the tokens Redis granted to this instance's
	// leases, by levee.policy.name.
	MetricLeaseTokens = "levee.fleet.limit.leased_tokens"
	// MetricTokensHeld is the tokens this instance has leased and not spent
	// yet, by levee.policy.name: its share of the fleet's overshoot bound.
	MetricTokensHeld = "levee.fleet.limit.tokens_held"
	// MetricLocalFallback is 1 while a fleet policy acts on its local
	// state alone because Redis could not be reached, else 0, by
	// levee.policy.name and levee.fleet.policy.
	MetricLocalFallback = "levee.fleet.local_fallback"
	// MetricBudgetFleet is the fleet's counts as a fleet Budget last read
	// them, over the budget's window, by levee.policy.name and
	// levee.fleet.count (first_attempts, retries, instances).
	MetricBudgetFleet = "levee.fleet.budget.view"
)

// Attribute keys and values of the fleet rate limit's and retry budget's
// telemetry.
const (
	// KeyPolicyKind is the kind of fleet policy: "limiter" or "budget".
	KeyPolicyKind = attribute.Key("levee.fleet.policy")
	// KeyCount names one of the fleet counts a budget reports:
	// "first_attempts", "retries", "instances".
	KeyCount = attribute.Key("levee.fleet.count")
)

// breakerRegistry reports each fleet breaker's levee.fleet.local_fallback
// at collection, as the limiters and budgets report theirs: 1 while the
// last sync failed (or none has succeeded yet, or its Fleet is closed) and
// the instance is on its local breaker alone.
var breakerRegistry = emit.NewRegistry(func(m metric.Meter) (breakerMeter, []metric.Observable) {
	bm := breakerMeter{fallback: newFallbackGauge(m), kind: KeyPolicyKind.String("breaker")}
	return bm, []metric.Observable{bm.fallback}
}, func(o metric.Observer, bm breakerMeter, b *Breaker) {
	observeFallback(o, bm.fallback, b.view.Load() == nil, telemetry.KeyPolicyName.String(b.name), bm.kind)
})

type breakerMeter struct {
	fallback metric.Int64ObservableUpDownCounter
	kind     attribute.KeyValue
}
