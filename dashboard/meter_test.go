package dashboard_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/levee-go/levee/dashboard"
	"github.com/levee-go/levee/telemetry"
)

// Every counter a retry or a hedge reports lands in its outcome, each time
// (the second Add of a set goes through the dashboard's cache).
func TestMeterProvider_CountsEachRetryAndHedgeCounterInItsOutcome(t *testing.T) {
	name := telemetry.KeyPolicyName.String("p")
	for _, tc := range []struct {
		metric  string
		attrs   []attribute.KeyValue
		kind    string
		outcome string
	}{
		{telemetry.MetricRetryAttempts, []attribute.KeyValue{name, telemetry.KeyOutcome.String("success")}, "retry", "retry_success"},
		{telemetry.MetricRetryAttempts, []attribute.KeyValue{name, telemetry.KeyOutcome.String("failure")}, "retry", "retry_failure"},
		{telemetry.MetricRetryAttempts, []attribute.KeyValue{name, telemetry.KeyOutcome.String("ignored")}, "retry", "retry_ignored"},
		{telemetry.MetricRetryExhausted, []attribute.KeyValue{name, telemetry.KeyRetryReason.String("max_attempts")}, "retry", "exhausted"},
		{telemetry.MetricRetryBudgetExhausted, []attribute.KeyValue{name}, "retry", "budget_exhausted"},
		{telemetry.MetricHedgeStarted, []attribute.KeyValue{name}, "hedge", "started"},
		{telemetry.MetricHedgeWins, []attribute.KeyValue{name, telemetry.KeyHedgeAttempt.Int(1)}, "hedge", "won_by_first"},
		{telemetry.MetricHedgeWins, []attribute.KeyValue{name, telemetry.KeyHedgeAttempt.Int(2)}, "hedge", "won_by_hedge"},
		{telemetry.MetricHedgeBudgetExhausted, []attribute.KeyValue{name}, "hedge", "budget_exhausted"},
	} {
		t.Run(tc.metric+"/"+tc.outcome, func(t *testing.T) {
			d := dashboard.New()
			meter := d.MeterProvider(noop.NewMeterProvider()).Meter(telemetry.ScopeName)
			c, err := meter.Int64Counter(tc.metric)
			require.NoError(t, err)
			opts := []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(tc.attrs...))}
			c.Add(context.Background(), 1, opts...)
			c.Add(context.Background(), 2, opts...)
			p := find(t, snapshot(t, d, ""), tc.kind, "p")
			for _, got := range p.Counts {
				want := int64(0)
				if got.Outcome == tc.outcome {
					want = 3
				}
				assert.Equal(t, want, got.N, got.Outcome)
			}
		})
	}
}

// Instruments of other scopes, and levee's other counters, are next's own.
func TestMeterProvider_LeavesOtherInstrumentsAlone(t *testing.T) {
	d := dashboard.New()
	mp := d.MeterProvider(noop.NewMeterProvider())
	other, err := mp.Meter("someone.else").Int64Counter(telemetry.MetricRetryAttempts)
	require.NoError(t, err)
	assert.IsType(t, noop.Int64Counter{}, other)
	transitions, err := mp.Meter(telemetry.ScopeName).Int64Counter(telemetry.MetricBreakerTransitions)
	require.NoError(t, err)
	assert.IsType(t, noop.Int64Counter{}, transitions)
	other.Add(context.Background(), 1, metric.WithAttributes(telemetry.KeyPolicyName.String("p")))
	assert.Zero(t, snapshot(t, d, "").Summary.Total)
}
