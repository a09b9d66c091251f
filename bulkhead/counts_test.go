package bulkhead_test

import (
	"context"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/bulkhead"
	"github.com/levee-go/levee/telemetry"
	"github.com/levee-go/levee/telemetry/telemetrytest"
)

func TestCounts_AreTheCallsByOutcomeTheMetricReports(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		b := bulkhead.New("pool", 1, bulkhead.WithMaxWait(time.Second), bulkhead.WithMeterProvider(h.MeterProvider))
		ctx := context.Background()
		hold := make(chan struct{})
		go func() { _ = b.Call(ctx, func(context.Context) error { <-hold; return nil }) }()
		synctest.Wait()
		waited := make(chan error)
		go func() { waited <- b.Call(ctx, func(context.Context) error { return nil }) }()
		synctest.Wait()
		close(hold)
		require.NoError(t, <-waited)
		hold = make(chan struct{})
		go func() { _ = b.Call(ctx, func(context.Context) error { <-hold; return nil }) }()
		synctest.Wait()
		require.ErrorIs(t, b.Call(ctx, func(context.Context) error { return nil }), bulkhead.ErrFull) // timed out
		canceled, cancel := context.WithCancel(ctx)
		go func() { time.Sleep(time.Millisecond); cancel() }()
		require.ErrorIs(t, b.Call(canceled, func(context.Context) error { return nil }), context.Canceled)
		close(hold)
		synctest.Wait()

		c := b.Counts()
		assert.Equal(t, bulkhead.Counts{Admitted: 2, Waited: 1, TimedOut: 1, Canceled: 1}, c)
		for outcome, n := range map[string]int64{
			telemetry.OutcomeAdmitted: c.Admitted, telemetry.OutcomeWaited: c.Waited, telemetry.OutcomeRejected: c.Rejected,
			telemetry.OutcomeTimedOut: c.TimedOut, telemetry.OutcomeCanceled: c.Canceled,
		} {
			h.AssertInt64(telemetry.MetricBulkheadCalls, n, telemetry.KeyOutcome.String(outcome))
		}
		// The registration holds the policy weakly: keep it until the
		// metrics are read, or the collector may have taken its series.
		runtime.KeepAlive(b)
		rejecting := bulkhead.New("full", 1)
		hold = make(chan struct{})
		go func() { _ = rejecting.Call(ctx, func(context.Context) error { <-hold; return nil }) }()
		synctest.Wait()
		require.ErrorIs(t, rejecting.Call(ctx, func(context.Context) error { return nil }), bulkhead.ErrFull)
		close(hold)
		synctest.Wait()
		assert.Equal(t, bulkhead.Counts{Admitted: 1, Rejected: 1}, rejecting.Counts())
	})
}
