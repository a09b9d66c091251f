package ratelimit_test

import (
	"context"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/ratelimit"
	"github.com/levee-go/levee/telemetry"
	"github.com/levee-go/levee/telemetry/telemetrytest"
)

func TestCounts_AreTheCallsByOutcomeTheMetricReports(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		l := ratelimit.New("api", 1, time.Second, ratelimit.WithMaxWait(2*time.Second), ratelimit.WithMeterProvider(h.MeterProvider))
		ctx := context.Background()
		ok := func(context.Context) error { return nil }
		require.NoError(t, l.Call(ctx, ok)) // admitted
		waiting := make(chan error)
		go func() { waiting <- l.Call(ctx, ok) }()
		synctest.Wait()
		assert.Equal(t, 1, l.Queued())
		require.NoError(t, <-waiting) // waited
		assert.Equal(t, 0, l.Queued())
		short, cancel := context.WithCancel(ctx)
		go func() { time.Sleep(10 * time.Millisecond); cancel() }()
		require.ErrorIs(t, l.Call(short, ok), context.Canceled) // canceled while waiting
		strict := ratelimit.New("strict", 1, time.Hour)
		require.NoError(t, strict.Call(ctx, ok))
		require.ErrorIs(t, strict.Call(ctx, ok), ratelimit.ErrLimited)

		c := l.Counts()
		assert.Equal(t, ratelimit.Counts{Admitted: 1, Waited: 1, Canceled: 1}, c)
		assert.Equal(t, ratelimit.Counts{Admitted: 1, Rejected: 1}, strict.Counts())
		for outcome, n := range map[string]int64{
			telemetry.OutcomeAdmitted: c.Admitted, telemetry.OutcomeWaited: c.Waited,
			telemetry.OutcomeRejected: c.Rejected, telemetry.OutcomeCanceled: c.Canceled,
		} {
			h.AssertInt64(telemetry.MetricRateLimitCalls, n, telemetry.KeyOutcome.String(outcome))
		}
		// The registration holds the policy weakly: keep it until the
		// metrics are read, or the collector may have taken its series.
		runtime.KeepAlive(l)
	})
}
