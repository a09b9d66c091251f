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

// An open period that grows (issue 12, Polly's break duration generator):
// WithOpenBackoff lengthens each reopening without a close in between,
// capped, with jitter that WithJitterSeed makes reproducible; the breaker
// closing resets it. Open timers fire on the bubble's clock.

// reopen lets the open period pass (the timer half-opens the breaker) and
// fails the probe; it returns the new period's OpenFor and the
// rejection's RetryAfter.
func reopen(t *testing.T, b *breaker.Breaker, changes func() []breaker.StateChange) (openFor, retryAfter time.Duration) {
	t.Helper()
	got := changes()
	require.NotEmpty(t, got)
	elapse(got[len(got)-1].OpenFor)
	require.Equal(t, breaker.HalfOpen, b.State(), "half-open at exactly the end of the open period")
	require.ErrorIs(t, b.Call(context.Background(), fail), errDown)
	got = changes()
	last := got[len(got)-1]
	require.Equal(t, breaker.Open, last.To)
	return last.OpenFor, requireOpenError(t, b.Call(context.Background(), succeed)).RetryAfter()
}

func TestOpenBackoff_EachReopeningWithoutACloseLastsLonger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		listen, changes := recordChanges()
		b := newBreaker(breaker.WithFailureThreshold(1), breaker.WithOpenTimeout(10*time.Second),
			breaker.WithOpenBackoff(2, 35*time.Second, 0), listen)
		require.ErrorIs(t, b.Call(context.Background(), fail), errDown)
		assert.Equal(t, 10*time.Second, changes()[0].OpenFor, "the first open period is the open timeout")
		assert.Equal(t, 10*time.Second, requireOpenError(t, b.Call(context.Background(), succeed)).RetryAfter())

		for i, want := range []time.Duration{20 * time.Second, 35 * time.Second, 35 * time.Second} {
			openFor, retryAfter := reopen(t, b, changes)
			assert.Equal(t, want, openFor, "reopening %d", i+1)
			assert.Equal(t, want, retryAfter, "reopening %d: RetryAfter says so", i+1)
		}

		// Just before the end of the capped period it is still open.
		elapse(35*time.Second - 1)
		require.Equal(t, breaker.Open, b.State())
		elapse(1)
		require.NoError(t, b.Call(context.Background(), succeed), "the probe closes it")
		require.Equal(t, breaker.Closed, b.State())
		require.ErrorIs(t, b.Call(context.Background(), fail), errDown)
		got := changes()
		assert.Equal(t, 10*time.Second, got[len(got)-1].OpenFor, "closing reset the backoff")
	})
}

func TestOpenBackoff_ResetAndForceOpenStartItAfresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		listen, changes := recordChanges()
		b := newBreaker(breaker.WithFailureThreshold(1), breaker.WithOpenTimeout(time.Second),
			breaker.WithOpenBackoff(10, time.Hour, 0), listen)
		require.ErrorIs(t, b.Call(context.Background(), fail), errDown)
		openFor, _ := reopen(t, b, changes)
		require.Equal(t, 10*time.Second, openFor)

		b.ForceOpen(context.Background())
		assert.Zero(t, changes()[len(changes())-1].OpenFor, "a forced open period has no end")
		b.Reset(context.Background())
		require.ErrorIs(t, b.Call(context.Background(), fail), errDown)
		got := changes()
		assert.Equal(t, time.Second, got[len(got)-1].OpenFor, "after Reset, the first open period again")
	})
}

// openPeriods trips a breaker made with opts and fails n probes in a row;
// it returns the open periods' lengths.
func openPeriods(t *testing.T, n int, opts ...breaker.Option) []time.Duration {
	t.Helper()
	listen, changes := recordChanges()
	b := newBreaker(append([]breaker.Option{breaker.WithFailureThreshold(1), listen}, opts...)...)
	require.ErrorIs(t, b.Call(context.Background(), fail), errDown)
	periods := []time.Duration{changes()[0].OpenFor}
	for range n {
		openFor, retryAfter := reopen(t, b, changes)
		require.Equal(t, openFor, retryAfter)
		periods = append(periods, openFor)
	}
	return periods
}

func TestOpenBackoff_JitterIsBoundedAndReproducibleWithASeed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		opts := []breaker.Option{breaker.WithOpenTimeout(10 * time.Second), breaker.WithOpenBackoff(2, 50*time.Second, 0.5)}
		first := openPeriods(t, 6, append(opts, breaker.WithJitterSeed(42))...)
		again := openPeriods(t, 6, append(opts, breaker.WithJitterSeed(42))...)
		other := openPeriods(t, 6, append(opts, breaker.WithJitterSeed(43))...)

		assert.Equal(t, first, again, "the same seed, the same open periods")
		assert.NotEqual(t, first, other, "another seed, other open periods")
		assert.Equal(t, 10*time.Second, first[0], "no jitter on the first open period")
		for i, d := range first[1:] {
			grown := min(10*time.Second<<(i+1), 50*time.Second)
			assert.GreaterOrEqual(t, d, grown/2, "reopening %d: at most half of %v taken off", i+1, grown)
			assert.LessOrEqual(t, d, grown, "reopening %d: never above the grown period", i+1)
		}
		assert.Less(t, first[6], 50*time.Second, "jitter spreads the capped periods too")
	})
}

func TestOpenBackoff_JitterNeverShortensAPeriodBelowTheOpenTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		periods := openPeriods(t, 20, breaker.WithOpenTimeout(time.Minute),
			breaker.WithOpenBackoff(1.5, time.Hour, 0.9), breaker.WithJitterSeed(7))
		for i, d := range periods {
			assert.GreaterOrEqual(t, d, time.Minute, "period %d", i)
		}
	})
}

func TestOpenBackoff_ALongerRetryAfterHintStillWins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		listen, changes := recordChanges()
		b := newBreaker(breaker.WithFailureThreshold(1), breaker.WithOpenTimeout(10*time.Second),
			breaker.WithOpenBackoff(3, time.Hour, 0), breaker.WithRetryAfter(time.Hour), listen)
		require.Error(t, b.Call(context.Background(), func(context.Context) error { return retryLater(time.Minute) }))
		assert.Equal(t, time.Minute, changes()[0].OpenFor, "the hint is longer than the open timeout")

		elapse(time.Minute)
		require.Error(t, b.Call(context.Background(), func(context.Context) error { return retryLater(15 * time.Second) }))
		got := changes()
		assert.Equal(t, 30*time.Second, got[len(got)-1].OpenFor, "the grown period is longer than the hint")
	})
}
