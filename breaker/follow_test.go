package breaker_test

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/breaker"
)

// The hooks a coordinator of many breakers uses (leveeredis's fleet
// breaker): WithHalfOpenGate holds an open breaker past its open period
// while the gate says wait, and Follow moves a breaker on someone else's
// decision.

// A gate that says wait keeps the breaker open past its timeout, asked
// again after each wait; once it says 0 the breaker half-opens.
func TestHalfOpenGate_HoldsTheBreakerOpenWhileItSaysWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var hold atomic.Bool
		var asked atomic.Int64
		hold.Store(true)
		gate := breaker.WithHalfOpenGate(func() time.Duration {
			asked.Add(1)
			if hold.Load() {
				return time.Second
			}
			return 0
		})
		b := newBreaker(gate)
		trip(t, b)
		time.Sleep(breaker.DefaultOpenTimeout)
		synctest.Wait()
		assert.Equal(t, breaker.Open, b.State(), "the gate said wait")
		assert.Equal(t, int64(1), asked.Load(), "asked once when the open period ended")
		requireOpenError(t, b.Call(context.Background(), succeed))

		time.Sleep(3 * time.Second)
		synctest.Wait()
		assert.Equal(t, breaker.Open, b.State())
		assert.Equal(t, int64(4), asked.Load(), "asked again after each wait")

		hold.Store(false)
		time.Sleep(time.Second)
		synctest.Wait()
		assert.Equal(t, breaker.HalfOpen, b.State(), "the gate let it half-open")
		require.NoError(t, b.Call(context.Background(), succeed))
		assert.Equal(t, breaker.Closed, b.State())
	})
}

// A gate that panics lets the breaker half-open: a broken coordinator
// never holds a dependency off for good.
func TestHalfOpenGate_ThatPanicsLetsTheBreakerHalfOpen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(breaker.WithHalfOpenGate(func() time.Duration { panic("coordinator broken") }))
		toHalfOpen(t, b)
	})
}

// A held breaker still answers ForceOpen and Reset; the held period's
// timer, once moved on, half-opens nothing.
func TestHalfOpenGate_HeldBreakerStillAnswersOperators(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(breaker.WithHalfOpenGate(func() time.Duration { return time.Second }))
		trip(t, b)
		time.Sleep(breaker.DefaultOpenTimeout + time.Second/2)
		synctest.Wait()
		require.Equal(t, breaker.Open, b.State())
		b.Reset(context.Background())
		time.Sleep(2 * time.Second)
		synctest.Wait()
		assert.Equal(t, breaker.Closed, b.State(), "the old period's timer must not half-open the fresh closed period")
	})
}

func TestHalfOpenGate_NilPanicsNamingTheOption(t *testing.T) {
	assert.PanicsWithValue(t, `levee: breaker.New("dep"): WithHalfOpenGate: gate must not be nil`,
		func() { newBreaker(breaker.WithHalfOpenGate(nil)) })
}

// Follow moves the breaker where it is told, reports each change as
// neither forced nor tripped, and refuses the moves that make no sense.
func TestFollow_MovesTheBreakerAndReportsAnUnforcedUntrippedChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		listen, changes := recordChanges()
		b := newBreaker(listen)
		ctx := context.Background()

		assert.False(t, b.Follow(ctx, breaker.HalfOpen), "closed cannot half-open")
		assert.False(t, b.Follow(ctx, breaker.Closed), "closed already")
		require.True(t, b.Follow(ctx, breaker.Open))
		assert.Equal(t, breaker.Open, b.State())
		requireOpenError(t, b.Call(ctx, succeed))
		assert.False(t, b.Follow(ctx, breaker.Open), "open already")

		require.True(t, b.Follow(ctx, breaker.HalfOpen))
		assert.Equal(t, breaker.HalfOpen, b.State(), "half-open at once, not after the open timeout")
		require.True(t, b.Follow(ctx, breaker.Open))
		require.True(t, b.Follow(ctx, breaker.Closed))
		require.NoError(t, b.Call(ctx, succeed))
		assert.False(t, b.Follow(ctx, breaker.State(42)), "no such state")

		got := changes()
		assert.Equal(t, []string{"closed->open", "open->half-open", "half-open->open", "open->closed"}, edges(got))
		for _, c := range got {
			assert.False(t, c.Forced, "%v: a followed change is not forced", c)
			assert.Empty(t, c.TripRule, "%v: a followed change tripped on no rule", c)
			assert.Zero(t, c.ConsecutiveFailures, "%v: a followed change is not a failed probe", c)
		}
		assert.Equal(t, breaker.DefaultOpenTimeout, got[0].OpenFor, "a followed open lasts the open timeout")
	})
}

// A breaker opened by Follow half-opens on its own timer, as a tripped one
// does.
func TestFollow_OpenHalfOpensOnItsTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker()
		require.True(t, b.Follow(context.Background(), breaker.Open))
		time.Sleep(breaker.DefaultOpenTimeout)
		synctest.Wait()
		assert.Equal(t, breaker.HalfOpen, b.State())
	})
}

// An operator's ForceOpen wins over Follow until Reset.
func TestFollow_DoesNotMoveAForcedBreaker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker()
		ctx := context.Background()
		b.ForceOpen(ctx)
		assert.False(t, b.Follow(ctx, breaker.Closed))
		assert.False(t, b.Follow(ctx, breaker.HalfOpen))
		assert.Equal(t, breaker.Open, b.State())
		b.Reset(ctx)
		assert.Equal(t, breaker.Closed, b.State())
	})
}

// A probe in flight when Follow closes the breaker is stale: its failure
// does not reopen the fresh closed period.
func TestFollow_ClosedMakesAProbeInFlightStale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker()
		toHalfOpen(t, b)
		probe := blockedCall(b, errDown)
		require.True(t, b.Follow(context.Background(), breaker.Closed))
		require.ErrorIs(t, probe(), errDown)
		assert.Equal(t, breaker.Closed, b.State())
	})
}

// Many goroutines following, calling and resetting at once: the breaker
// ends in a state one of them chose, and the race detector sees no race.
func TestFollow_Concurrent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(breaker.WithHalfOpenGate(func() time.Duration { return 0 }))
		ctx := context.Background()
		done := make(chan struct{})
		for i := range 16 {
			go func() {
				defer func() { done <- struct{}{} }()
				for j := range 200 {
					switch (i + j) % 4 {
					case 0:
						b.Follow(ctx, breaker.Open)
					case 1:
						b.Follow(ctx, breaker.HalfOpen)
					case 2:
						b.Follow(ctx, breaker.Closed)
					default:
						_ = b.Call(ctx, fail)
					}
				}
			}()
		}
		for range 16 {
			<-done
		}
		b.Follow(ctx, breaker.Closed)
		if b.State() == breaker.HalfOpen {
			b.Follow(ctx, breaker.Open)
			b.Follow(ctx, breaker.Closed)
		}
		assert.Equal(t, breaker.Closed, b.State())
	})
}
