package throttle_test

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"

	"github.com/levee-go/levee/telemetry"
	"github.com/levee-go/levee/telemetry/telemetrytest"
	"github.com/levee-go/levee/throttle"
)

func TestCounts_AreTheCallsByOutcomeTheMetricReports(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		th := throttle.New("backend", throttle.WithK(1), throttle.WithSeed(1), throttle.WithMeterProvider(h.MeterProvider))
		ctx := context.Background()
		down := errors.New("down")
		_ = th.Call(ctx, func(context.Context) error { return nil })
		for range 50 {
			_ = th.Call(ctx, func(context.Context) error { return down })
		}
		canceled, cancel := context.WithCancel(ctx)
		cancel()
		_ = th.Call(canceled, func(context.Context) error { return nil })

		c := th.Counts()
		assert.Equal(t, int64(1), c.Success)
		assert.Equal(t, int64(1), c.Ignored)
		assert.Positive(t, c.Rejected, "K=1 and 50 failures: some calls are refused")
		assert.Equal(t, int64(50), c.Failure+c.Rejected)
		for outcome, n := range map[string]int64{
			telemetry.OutcomeSuccess: c.Success, telemetry.OutcomeFailure: c.Failure,
			telemetry.OutcomeRejected: c.Rejected, telemetry.OutcomeIgnored: c.Ignored,
		} {
			h.AssertInt64(telemetry.MetricThrottleCalls, n, telemetry.KeyOutcome.String(outcome))
		}
		// The registration holds the policy weakly: keep it until the
		// metrics are read, or the collector may have taken its series.
		runtime.KeepAlive(th)
	})
}
