package dashboard

import (
	"context"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/levee-go/levee/telemetry"
)

// MeterProvider returns a MeterProvider that gives next everything it is
// given, and lets the dashboard count what retries and hedges report.
// Retries and hedges keep no counts of their own (a call whose first attempt
// succeeds does no telemetry at all); they report their retries, stops and
// hedges to OpenTelemetry counters. Give the pipelines whose retries and
// hedges the page should show this provider, where they take theirs:
//
//	mp := d.MeterProvider(sdkProvider) // nil: the global provider
//	call := resilience.WrapWith(resilience.Telemetry{Name: "pricing", MeterProvider: mp},
//		fetchPrice, retry.Policy[Price](), hedge.Policy[Price](50*time.Millisecond))
//
// or give it to the pipeline's breaker (breaker.WithMeterProvider), from
// which the pipeline takes its provider. A retry or hedge appears on the
// page once it has reported something, under its pipeline's name.
//
// Nothing changes for a pipeline not given it; for one that is, each retry
// attempt, stop or hedge adds an atomic count beside the OpenTelemetry one.
// Every other instrument is next's own, untouched. Call it once and reuse
// the provider. Safe for concurrent use.
func (d *Dashboard) MeterProvider(next metric.MeterProvider) metric.MeterProvider {
	if next == nil {
		next = otel.GetMeterProvider()
	}
	return &teeProvider{MeterProvider: next, d: d}
}

type teeProvider struct {
	metric.MeterProvider
	d *Dashboard
}

func (p *teeProvider) Meter(name string, opts ...metric.MeterOption) metric.Meter {
	m := p.MeterProvider.Meter(name, opts...)
	if name != telemetry.ScopeName {
		return m
	}
	return &teeMeter{Meter: m, d: p.d}
}

type teeMeter struct {
	metric.Meter
	d *Dashboard
}

// counted are the counters the dashboard counts beside next: for each, the
// kind of policy that reports it.
var counted = map[string]kind{
	telemetry.MetricRetryAttempts:        kindRetry,
	telemetry.MetricRetryExhausted:       kindRetry,
	telemetry.MetricRetryBudgetExhausted: kindRetry,
	telemetry.MetricHedgeStarted:         kindHedge,
	telemetry.MetricHedgeWins:            kindHedge,
	telemetry.MetricHedgeBudgetExhausted: kindHedge,
}

func (m *teeMeter) Int64Counter(name string, opts ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	c, err := m.Meter.Int64Counter(name, opts...)
	k, ok := counted[name]
	if !ok {
		return c, err
	}
	if c == nil {
		c = noop.Int64Counter{}
	}
	return &teeCounter{Int64Counter: c, d: m.d, kind: k, metric: name}, err
}

type teeCounter struct {
	metric.Int64Counter
	d      *Dashboard
	kind   kind
	metric string
}

func (c *teeCounter) Add(ctx context.Context, incr int64, opts ...metric.AddOption) {
	c.Int64Counter.Add(ctx, incr, opts...)
	attrs := metric.NewAddConfig(opts).Attributes()
	name, ok := attrs.Value(telemetry.KeyPolicyName)
	if !ok {
		return
	}
	i := -1
	switch c.metric {
	case telemetry.MetricRetryAttempts:
		switch v, _ := attrs.Value(telemetry.KeyOutcome); v.AsString() {
		case telemetry.OutcomeSuccess:
			i = 0
		case telemetry.OutcomeFailure:
			i = 1
		case telemetry.OutcomeIgnored:
			i = 2
		}
	case telemetry.MetricRetryExhausted:
		i = 3
	case telemetry.MetricRetryBudgetExhausted, telemetry.MetricHedgeBudgetExhausted:
		i = 4
		if c.kind == kindHedge {
			i = 3
		}
	case telemetry.MetricHedgeStarted:
		i = 0
	case telemetry.MetricHedgeWins:
		i = 2
		if v, _ := attrs.Value(telemetry.KeyHedgeAttempt); v.AsInt64() == 1 {
			i = 1
		}
	}
	if i < 0 {
		return
	}
	if stats := c.d.stats(c.kind, name.AsString()); stats != nil {
		stats[i].Add(incr)
	}
}

// stats returns the counts the dashboard keeps for the retry or hedge
// named name, registering it on first use; nil past maxCounted names.
func (d *Dashboard) stats(k kind, name string) []atomic.Int64 {
	key := entryKey{k, name}
	d.mu.RLock()
	e := d.entries[key]
	d.mu.RUnlock()
	if e != nil {
		return e.stats
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.entries[key]; e != nil {
		return e.stats
	}
	if d.counted >= maxCounted {
		return nil
	}
	d.counted++
	e = &entry{key: key, stats: make([]atomic.Int64, len(outcomeNames[k]))}
	e.read = func() (reading, bool) { return readStats(e), true }
	d.entries[key] = e
	return e.stats
}
