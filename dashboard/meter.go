package dashboard

import (
	"context"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
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
	// slots remembers, by attribute set, where that set's counts go: a
	// policy adds with a handful of sets, built once, so reading a set's
	// attributes (by reflection, in attribute.Set.Value) happens once per
	// set rather than once per Add. Bounded by maxSlots; past it, sets
	// are read each time.
	slots  sync.Map // attribute.Distinct -> *slot
	nslots atomic.Int64
}

// maxSlots bounds each counter's cache of attribute sets.
const maxSlots = 4096

// slot is where one attribute set's counts go: counts[i], or nowhere when
// counts is nil.
type slot struct {
	counts []atomic.Int64
	i      int
}

func (c *teeCounter) Add(ctx context.Context, incr int64, opts ...metric.AddOption) {
	c.Int64Counter.Add(ctx, incr, opts...)
	attrs := metric.NewAddConfig(opts).Attributes()
	key := attrs.Equivalent()
	var s *slot
	if v, ok := c.slots.Load(key); ok {
		s = v.(*slot)
	} else {
		s = c.resolve(attrs)
		if c.nslots.Add(1) <= maxSlots {
			c.slots.Store(key, s)
		}
	}
	if s.counts != nil {
		s.counts[s.i].Add(incr)
	}
}

// resolve reads which policy and which of its counts attrs names.
func (c *teeCounter) resolve(attrs attribute.Set) *slot {
	name, ok := attrs.Value(telemetry.KeyPolicyName)
	if !ok {
		return &slot{}
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
	case telemetry.MetricRetryBudgetExhausted:
		i = 4
	case telemetry.MetricHedgeStarted:
		i = 0
	case telemetry.MetricHedgeWins:
		i = 2
		if v, _ := attrs.Value(telemetry.KeyHedgeAttempt); v.AsInt64() == 1 {
			i = 1
		}
	case telemetry.MetricHedgeBudgetExhausted:
		i = 3
	}
	if i < 0 {
		return &slot{}
	}
	return &slot{counts: c.d.stats(c.kind, name.AsString()), i: i}
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
