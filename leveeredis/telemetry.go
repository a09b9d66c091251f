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
