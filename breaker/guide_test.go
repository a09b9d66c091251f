package breaker_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/fallback"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/telemetry"
	"github.com/levee-go/levee/telemetry/telemetrytest"
)

// The guide's four tests, as docs/testing.md shows them: every one runs in a
// synctest bubble, where the breaker's 30-second open timeout passes at once
// through the same timer production runs.

var errDown = errors.New("dependency down")

func fail(context.Context) error    { return errDown }
func succeed(context.Context) error { return nil }

func TestGuide_ClosedBreakerPassesCallsThrough(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := breaker.New("pricing")
		calls := 0
		for range 10 {
			require.NoError(t, b.Call(t.Context(), func(context.Context) error { calls++; return nil }))
		}
		assert.Equal(t, 10, calls)
		assert.Equal(t, breaker.Closed, b.State())
	})
}

func TestGuide_OpensAfterThreeConsecutiveFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := breaker.New("pricing")
		for i := range 2 {
			require.ErrorIs(t, b.Call(t.Context(), fail), errDown)
			require.Equal(t, breaker.Closed, b.State(), "after %d failures", i+1)
		}
		require.ErrorIs(t, b.Call(t.Context(), fail), errDown)
		assert.Equal(t, breaker.Open, b.State())
	})
}

func TestGuide_OpenBreakerFailsFastWithoutCalling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := breaker.New("pricing")
		for range 3 {
			_ = b.Call(t.Context(), fail)
		}
		called := false
		err := b.Call(t.Context(), func(context.Context) error { called = true; return nil })
		require.ErrorIs(t, err, breaker.ErrOpen)
		assert.False(t, called, "an open breaker must not call the function")
		var open *breaker.OpenError
		require.ErrorAs(t, err, &open)
		assert.Equal(t, 30*time.Second, open.RetryAfter())
	})
}

func TestGuide_RecoversThroughHalfOpen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := breaker.New("pricing")
		for range 3 {
			_ = b.Call(t.Context(), fail)
		}
		time.Sleep(30*time.Second - time.Nanosecond)
		synctest.Wait()
		require.Equal(t, breaker.Open, b.State(), "a nanosecond before the open timeout")
		time.Sleep(time.Nanosecond)
		synctest.Wait() // the open timer has fired
		require.Equal(t, breaker.HalfOpen, b.State())
		require.NoError(t, b.Call(t.Context(), succeed))
		assert.Equal(t, breaker.Closed, b.State())
	})
}

// docs/testing.md's pipeline example: a Timeout's deadline is a timer of the
// bubble too, so a hanging dependency costs exactly the timeout, at once.
func TestGuide_SlowPricingAnswersFromTheFallback(t *testing.T) {
	type Price struct {
		Cents int
		Stale bool
	}
	synctest.Test(t, func(t *testing.T) {
		pricing := breaker.New("pricing")
		hangs := func(ctx context.Context) (Price, error) {
			<-ctx.Done() // the dependency never answers
			return Price{}, ctx.Err()
		}
		getPrice := resilience.Wrap(hangs,
			fallback.Value(Price{Cents: 999, Stale: true}),
			breaker.Policy[Price](pricing),
			resilience.Timeout[Price](800*time.Millisecond),
		)
		start := time.Now()
		price, err := getPrice(t.Context())
		require.NoError(t, err)
		assert.True(t, price.Stale)
		assert.Equal(t, 800*time.Millisecond, time.Since(start), "exactly the timeout, in bubble time")
		assert.Equal(t, int64(1), pricing.Counts().Failure, "the timeout counts as the breaker's failure")
	})
}

// docs/testing.md's telemetry example: the open timer's transition, asserted
// in memory.
func TestGuide_TimerTransitionIsReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		b := breaker.New("payments", breaker.WithFailureThreshold(1),
			breaker.WithTracerProvider(h.TracerProvider), breaker.WithMeterProvider(h.MeterProvider))
		_ = b.Call(t.Context(), fail)
		time.Sleep(30 * time.Second)
		synctest.Wait()
		h.AssertInt64(telemetry.MetricBreakerTransitions, 1,
			telemetry.KeyBreakerFrom.String(telemetry.StateOpen), telemetry.KeyBreakerTo.String(telemetry.StateHalfOpen))
	})
}
