package leveeredis

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/levee-go/levee/internal/emit"
	"github.com/levee-go/levee/telemetry"
)

// budgetInstruments are one fleet budget's telemetry, observable
// instruments read at collection. Its decisions are reported by retry and
// hedge, as a local budget's are (levee.retry.budget_exhausted, ...).
type budgetInstruments struct {
	name    attribute.KeyValue
	members *emit.Members[Budget, budgetMeter]
}

type budgetMeter struct {
	view     metric.Int64ObservableGauge
	fallback metric.Int64ObservableUpDownCounter
	kind     attribute.KeyValue
}

var budgetRegistry = emit.NewRegistry(createBudgetInstruments, observeBudget)

func createBudgetInstruments(m metric.Meter) (budgetMeter, []metric.Observable) {
	var bm budgetMeter
	var err error
	bm.view, err = m.Int64ObservableGauge(MetricBudgetFleet,
		metric.WithUnit("1"),
		metric.WithDescription("The fleet's first attempts, retries and reporting instances over a fleet retry budget's window, as this instance last read them."))
	emit.Handle(err)
	bm.fallback = newFallbackGauge(m)
	bm.kind = KeyPolicyKind.String("budget")
	return bm, []metric.Observable{bm.view, bm.fallback}
}

func observeBudget(o metric.Observer, bm budgetMeter, b *Budget) {
	name := b.tel.name
	for _, c := range [...]struct {
		count string
		n     int64
	}{
		{"first_attempts", b.fleetDeposits.Load()},
		{"retries", b.fleetWithdrawals.Load()},
		{"instances", b.members.Load()},
	} {
		o.ObserveInt64(bm.view, c.n, metric.WithAttributeSet(attribute.NewSet(name, KeyCount.String(c.count))))
	}
	observeFallback(o, bm.fallback, b.LocalOnly(), name, bm.kind)
}

func newBudgetInstruments(b *Budget, f *Fleet) *budgetInstruments {
	tel := &budgetInstruments{name: telemetry.KeyPolicyName.String(b.name)}
	b.tel = tel
	tel.members = budgetRegistry.Join(f.mp, b)
	return tel
}
