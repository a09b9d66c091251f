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
