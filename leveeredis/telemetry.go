package leveeredis

import (
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/levee-go/levee/internal/emit"
)

// Names of the levee.fleet.* telemetry (docs/telemetry.md, "Fleet"). They
// are reported under levee's instrumentation scope, like every policy's.
const (
	// MetricSyncErrors counts Redis operations of fleet policies that
	// failed or timed out, by levee.policy.name, levee.fleet.operation and
	// error.type. Each failure leaves the policy on its local state.
	MetricSyncErrors = "levee.fleet.sync.errors"
)

// Attribute keys of the levee.fleet.* telemetry.
const (
	// KeyOperation names the Redis operation of a fleet policy, a bounded
	// value such as "heartbeat", "publish", "lease".
	KeyOperation = attribute.Key("levee.fleet.operation")
)

type fleetInstruments struct {
	syncErrors metric.Int64Counter
}

func newFleetInstruments(m metric.Meter) fleetInstruments {
	var in fleetInstruments
	var err error
	in.syncErrors, err = m.Int64Counter(MetricSyncErrors,
		metric.WithUnit("{operation}"),
		metric.WithDescription("Redis operations of fleet policies that failed or timed out; each leaves the policy on its local state."))
	emit.Handle(err)
	return in
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
