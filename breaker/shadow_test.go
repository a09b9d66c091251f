package breaker_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/breaker"
)

// Shadow mode (issue 12, resilience4j's metrics-only state): the breaker
// computes its state and reports every change, but rejects nothing; a call
// it would have rejected runs, counts as ShadowRejected, and its result
// changes nothing.

func TestShadowMode_ComputesTheStateButRejectsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		listen, changes := recordChanges()
		b := newBreaker(breaker.WithShadowMode(), listen)
		require.True(t, b.ShadowMode())
		trip(t, b)

		fn := &counter{}
		require.NoError(t, b.Call(context.Background(), fn.call), "an open breaker in shadow mode runs the call")
		require.ErrorIs(t, b.Call(context.Background(), fail), errDown)
		assert.Equal(t, int64(1), fn.runs.Load())
		assert.Equal(t, breaker.Open, b.State(), "the shadowed success did not close it")
		assert.Equal(t, breaker.Counts{Failure: 3, ShadowRejected: 2}, b.Counts(), "neither the success nor the failure counted as such")

		elapse(breaker.DefaultOpenTimeout)
		require.Equal(t, breaker.HalfOpen, b.State())
		require.NoError(t, b.Call(context.Background(), succeed), "the probe decides as it would")
		assert.Equal(t, breaker.Closed, b.State())
		assert.Equal(t, []string{"closed->open", "open->half-open", "half-open->closed"}, edges(changes()))
	})
}

func TestShadowMode_CallsBeyondTheProbesRunAndChangeNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(breaker.WithShadowMode())
		toHalfOpen(t, b)
		probe := blockedCall(b, nil)

		require.ErrorIs(t, b.Call(context.Background(), fail), errDown, "a second call runs while the probe is in flight")
		assert.Equal(t, breaker.HalfOpen, b.State(), "and its failure does not reopen")
		assert.PanicsWithValue(t, "shadowed", func() {
			_ = b.Call(context.Background(), func(context.Context) error { panic("shadowed") })
		}, "a panic comes back unchanged")
		assert.Equal(t, breaker.HalfOpen, b.State())

		require.NoError(t, probe())
		assert.Equal(t, breaker.Closed, b.State())
		assert.Equal(t, breaker.Counts{Success: 1, Failure: 3, ShadowRejected: 2}, b.Counts())
	})
}

func TestShadowMode_EvenAForcedOpenBreakerRunsTheCall(t *testing.T) {
	b := newBreaker(breaker.WithShadowMode())
	b.ForceOpen(context.Background())
	fn := &counter{}
	require.NoError(t, b.Call(context.Background(), fn.call))
	assert.Equal(t, int64(1), fn.runs.Load())
	assert.Equal(t, breaker.Open, b.State())
}

func TestShadowMode_SwitchesAtRunTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker()
		assert.False(t, b.ShadowMode(), "off by default")
		trip(t, b)
		requireOpenError(t, b.Call(context.Background(), succeed))

		b.SetShadowMode(true)
		assert.True(t, b.ShadowMode())
		require.NoError(t, b.Call(context.Background(), succeed))

		b.SetShadowMode(false)
		requireOpenError(t, b.Call(context.Background(), succeed))
		assert.Equal(t, breaker.Counts{Failure: 3, Rejected: 2, ShadowRejected: 1}, b.Counts())
	})
}

func TestShadowMode_AClosedBreakerIsUntouched(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(breaker.WithShadowMode())
		outcomes(t, b, "SFFSFF")
		assert.Equal(t, breaker.Closed, b.State())
		assert.Equal(t, breaker.Counts{Success: 2, Failure: 4}, b.Counts())
	})
}

// Under -race: shadow mode switched on and off while 32 goroutines call an
// open breaker; every call is either rejected without running or runs as a
// shadowed call, and the counts say which.
func TestShadowMode_SwitchingDuringConcurrentCallsLosesNoCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(breaker.WithOpenTimeout(time.Hour))
		trip(t, b)
		var ran, rejected atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 32 {
			wg.Go(func() {
				for range 200 {
					err := b.Call(context.Background(), func(context.Context) error { ran.Add(1); return nil })
					if err != nil {
						assert.ErrorIs(t, err, breaker.ErrOpen)
						rejected.Add(1)
					}
				}
			})
		}
		var switcher sync.WaitGroup
		switcher.Go(func() {
			for on := true; ; on = !on {
				select {
				case <-stop:
					return
				default:
					b.SetShadowMode(on)
				}
			}
		})
		wg.Wait()
		close(stop)
		switcher.Wait()

		c := b.Counts()
		assert.Equal(t, ran.Load(), c.ShadowRejected, "every call that ran was a shadowed one")
		assert.Equal(t, rejected.Load(), c.Rejected)
		assert.Equal(t, int64(32*200), c.Rejected+c.ShadowRejected)
		assert.Equal(t, breaker.Open, b.State())
	})
}
