package throttle

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// An idle throttle keeps no timer running: once a whole window has passed
// without a call its window is gone, and the next call starts a new one.
func TestThrottle_ItsTimerStopsWhenIdleAndRestartsWithTheNextCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := New("db", WithWindow(time.Minute))
		require.Nil(t, th.window.Load(), "no window before the first call")
		require.Nil(t, th.timer, "no timer before the first call")
		down := func(context.Context) error { return errors.New("down") }
		_ = th.Call(t.Context(), down)
		require.NotNil(t, th.window.Load())

		time.Sleep(time.Minute - time.Nanosecond)
		synctest.Wait()
		assert.NotNil(t, th.window.Load(), "a call in the window keeps it")
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		assert.Nil(t, th.window.Load(), "a window without a call: idle")
		assert.False(t, th.timer.Stop(), "the timer is not armed")

		_ = th.Call(t.Context(), down)
		require.NotNil(t, th.window.Load(), "the next call starts a window")
		assert.Equal(t, 0.5, th.Probability(), "with nothing before it")
		time.Sleep(6 * time.Second)
		synctest.Wait()
		assert.Equal(t, 2, th.markCount(), "the new window's marks: its start and one tick")
		assert.Equal(t, 0.5, th.Probability())
		for range 20 { // busy for two windows: the window moves on
			time.Sleep(6 * time.Second)
			_ = th.Call(t.Context(), down)
		}
		assert.Equal(t, buckets, th.markCount())
	})
}

func (t *Throttle) markCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.marks)
}

func (t *Throttle) alarmed() bool { return t.raised.Load() != t.cleared.Load() }

// A healthy dependency costs a call its own stripe only: the alarm, raised
// by the first calls of a window (a request is counted before its accept),
// is cleared by the next call that finds every stripe balanced, and stays
// down.
func TestThrottle_TheAlarmFallsOnceEveryStripeIsBalanced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := New("db")
		up := func(context.Context) error { return nil }
		require.NoError(t, th.Call(t.Context(), up))
		assert.True(t, th.alarmed(), "the first request, counted before its accept, unbalanced its stripe")
		require.NoError(t, th.Call(t.Context(), up))
		assert.False(t, th.alarmed(), "the second call found every stripe balanced")
		for range 100 {
			require.NoError(t, th.Call(t.Context(), up))
			require.False(t, th.alarmed())
		}
	})
}

// Forgetting old accepts can leave a stripe with more requests than K times
// its accepts without any call adding a request: the tick that moves the
// window raises the alarm, so that the next call sums the stripes.
func TestThrottle_MovingTheWindowRaisesTheAlarmWhenItUnbalancesAStripe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := New("db", WithWindow(time.Minute))
		up := func(context.Context) error { return nil }
		down := func(context.Context) error { return errors.New("down") }
		for range 100 {
			require.NoError(t, th.Call(t.Context(), up))
		}
		time.Sleep(30 * time.Second)
		for range 90 {
			_ = th.Call(t.Context(), down)
		}
		require.Zero(t, th.Probability(), "190 requests, 100 accepts: 190 <= 2·100")
		require.False(t, th.alarmed())

		time.Sleep(30 * time.Second) // the accepts at 0 leave the window
		synctest.Wait()
		assert.InDelta(t, 90.0/91, th.Probability(), 1e-12)
		assert.True(t, th.alarmed(), "the tick raised the alarm")
	})
}
