package breaker_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/breaker"
)

// Slow calls (issue 12): a call longer than WithSlowCallDuration is slow,
// whether it succeeds or fails, and WithSlowCallRate trips on the share of
// slow calls in the window. Calls take their time on the bubble's clock: a
// function that sleeps d inside a bubble returns exactly d later.

// takes returns a guarded function that takes d and returns err.
func takes(d time.Duration, err error) func(context.Context) error {
	return func(context.Context) error {
		time.Sleep(d)
		return err
	}
}

func slowBreaker(opts ...breaker.Option) *breaker.Breaker {
	return newBreaker(append([]breaker.Option{
		breaker.WithCountWindow(4), breaker.WithSlowCallDuration(time.Second), breaker.WithSlowCallRate(0.5),
	}, opts...)...)
}

func TestSlowCallRate_TripsOnSlowCallsEvenWhenTheySucceed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		listen, changes := recordChanges()
		b := slowBreaker(listen)
		ctx := context.Background()

		require.NoError(t, b.Call(ctx, takes(10*time.Millisecond, nil)))
		require.NoError(t, b.Call(ctx, takes(2*time.Second, nil)))
		require.NoError(t, b.Call(ctx, takes(0, nil)))
		require.Equal(t, breaker.WindowCounts{Calls: 3, SlowCalls: 1}, b.Window())
		require.NoError(t, b.Call(ctx, takes(time.Second+1, nil)), "the slow call itself succeeds")

		require.Equal(t, breaker.Open, b.State(), "2 slow calls of 4")
		got := changes()
		require.Len(t, got, 1)
		assert.Equal(t, "slow_call_rate", got[0].TripRule)
		assert.Equal(t, breaker.WindowCounts{Calls: 4, SlowCalls: 2}, got[0].Window)
		assert.Zero(t, got[0].ConsecutiveFailures, "no failure at all")
		assert.Equal(t, breaker.Counts{Success: 4}, b.Counts())
	})
}

func TestSlowCallDuration_SlowMeansLongerThanTheDuration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := slowBreaker()
		for range 4 {
			require.NoError(t, b.Call(context.Background(), takes(time.Second, nil)))
		}
		assert.Equal(t, breaker.WindowCounts{Calls: 4}, b.Window(), "exactly the duration is not slow")
		assert.Equal(t, breaker.Closed, b.State())
	})
}

func TestSlowCallDuration_ASlowFailureIsBothAndAnIgnoredCallNeither(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(breaker.WithCountWindow(10), breaker.WithSlowCallDuration(time.Second), breaker.WithFailureRate(1))
		require.ErrorIs(t, b.Call(context.Background(), takes(2*time.Second, errDown)), errDown)
		ctx, cancel := context.WithCancel(context.Background())
		require.ErrorIs(t, b.Call(ctx, func(ctx context.Context) error {
			time.Sleep(2 * time.Second)
			cancel()
			return ctx.Err()
		}), context.Canceled)

		assert.Equal(t, breaker.WindowCounts{Calls: 1, Failures: 1, SlowCalls: 1, ConsecutiveFailures: 1}, b.Window())
		assert.Equal(t, breaker.Closed, b.State(), "one call is under the default minimum")
	})
}

// Under the failure-rate rule a slow success is asked about (it goes
// through the path that reads the window) and never trips the breaker.
func TestFailureRate_ASlowSuccessNeverTripsIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(breaker.WithCountWindow(4), breaker.WithSlowCallDuration(time.Second),
			breaker.WithFailureRate(0.5), breaker.WithMinCalls(3))
		outcomes(t, b, "FF")
		require.NoError(t, b.Call(context.Background(), takes(2*time.Second, nil)))
		assert.Equal(t, breaker.Closed, b.State(), "2 failures of 3 calls, but the third was a success")
		outcomes(t, b, "F")
		assert.Equal(t, breaker.Open, b.State())
	})
}

func TestSlowCallRate_AFastFailureNeverTripsIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := slowBreaker(breaker.WithMinCalls(2))
		require.NoError(t, b.Call(context.Background(), takes(2*time.Second, nil)))
		require.ErrorIs(t, b.Call(context.Background(), fail), errDown)
		assert.Equal(t, breaker.Closed, b.State(), "1 slow call of 2, but the second was fast")
		require.ErrorIs(t, b.Call(context.Background(), takes(2*time.Second, errDown)), errDown)
		assert.Equal(t, breaker.Open, b.State(), "2 of 3: a slow failure trips it")
	})
}

func TestSlowCallRate_WaitsForTheMinimumCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := slowBreaker(breaker.WithMinCalls(3))
		require.NoError(t, b.Call(context.Background(), takes(2*time.Second, nil)))
		require.NoError(t, b.Call(context.Background(), takes(2*time.Second, nil)))
		require.Equal(t, breaker.Closed, b.State(), "2 slow calls of 2, under the minimum of 3")
		require.NoError(t, b.Call(context.Background(), takes(0, nil)))
		require.Equal(t, breaker.Closed, b.State(), "a fast call never trips it")
		require.NoError(t, b.Call(context.Background(), takes(2*time.Second, nil)))
		assert.Equal(t, breaker.Open, b.State(), "3 of 4")
	})
}

func TestSlowCallRate_OverATimeWindowByBubbleTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(breaker.WithTimeWindow(10*time.Second, 10), breaker.WithSlowCallDuration(time.Second),
			breaker.WithSlowCallRate(0.5), breaker.WithMinCalls(2))
		require.NoError(t, b.Call(context.Background(), takes(3*time.Second, nil))) // counted at 3s, in [3s, 4s)
		elapse(10*time.Second - 1)
		assert.Equal(t, breaker.WindowCounts{Calls: 1, SlowCalls: 1}, b.Window(), "a nanosecond before 13s")
		elapse(1) // 13s: its bucket has left
		require.NoError(t, b.Call(context.Background(), takes(0, nil)))
		require.NoError(t, b.Call(context.Background(), takes(1500*time.Millisecond, nil)))
		assert.Equal(t, breaker.Open, b.State(), "1 of the 2 calls now in the window was slow")
		assert.Equal(t, breaker.WindowCounts{Calls: 2, SlowCalls: 1}, b.Window())
	})
}

// Under the slow-call rule a slow probe is a failed probe: the dependency
// is still too slow. Under another rule a probe is judged by its outcome.
func TestSlowCallRate_ASlowProbeReopensTheBreaker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := slowBreaker(breaker.WithMinCalls(1))
		require.NoError(t, b.Call(context.Background(), takes(2*time.Second, nil)))
		require.Equal(t, breaker.Open, b.State())
		elapse(breaker.DefaultOpenTimeout)
		require.Equal(t, breaker.HalfOpen, b.State())

		require.NoError(t, b.Call(context.Background(), takes(2*time.Second, nil)))
		assert.Equal(t, breaker.Open, b.State(), "a slow probe fails")
		elapse(breaker.DefaultOpenTimeout)
		require.NoError(t, b.Call(context.Background(), takes(time.Second, nil)))
		assert.Equal(t, breaker.Closed, b.State(), "a probe that is not slow closes it")
	})
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(breaker.WithCountWindow(4), breaker.WithSlowCallDuration(time.Second),
			breaker.WithFailureRate(0.5), breaker.WithMinCalls(1))
		require.ErrorIs(t, b.Call(context.Background(), fail), errDown)
		elapse(breaker.DefaultOpenTimeout)
		require.NoError(t, b.Call(context.Background(), takes(2*time.Second, nil)))
		assert.Equal(t, breaker.Closed, b.State(), "under the failure-rate rule a slow success is a success")
	})
}

func TestSlowCallDuration_WithoutItNoCallIsSlow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(breaker.WithCountWindow(4), breaker.WithFailureRate(0.5))
		require.NoError(t, b.Call(context.Background(), takes(time.Hour, nil)))
		assert.Equal(t, breaker.WindowCounts{Calls: 1}, b.Window())
	})
}
