package breaker

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The time window's timer runs only while calls arrive: a breaker with no
// calls has no timer pending, and so no goroutine to come (issue 12: "no
// goroutine and no timer while idle"). What the window counts is tested
// from outside (window_test.go); whether its timer is pending can only be
// seen from inside.
func TestTimeWindow_TheTimerRunsOnlyWhileCallsArrive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := New("idle", WithTimeWindow(time.Second, 10), WithFailureRate(1))
		w := b.current.Load().timeWindow
		ticking := func() bool { return w.clock.Load()&clockTicking != 0 }
		call := func() { require.NoError(t, b.Call(context.Background(), func(context.Context) error { return nil })) }
		elapse := func(d time.Duration) {
			time.Sleep(d)
			synctest.Wait()
		}

		assert.Nil(t, w.timer.Load(), "no timer before the first call")
		call()
		require.True(t, ticking(), "the first call starts the timer")
		elapse(50 * time.Millisecond)
		call()
		elapse(50 * time.Millisecond) // the first bucket ends: it had calls
		require.True(t, ticking(), "the timer re-armed for a bucket that had calls")
		elapse(100 * time.Millisecond) // the second bucket ends, empty
		assert.False(t, ticking(), "a bucket without calls stops the timer")
		elapse(time.Hour)
		assert.False(t, w.timer.Load().Stop(), "and no tick is pending while idle")
		assert.Equal(t, WindowCounts{}, b.Window())

		call()
		assert.True(t, ticking(), "the next call restarts it, reading the clock once")
		assert.Equal(t, int64(1), b.Window().Calls)
		elapse(time.Second)
		assert.Zero(t, b.Window().Calls, "its bucket has left a second later")
		assert.False(t, ticking())
	})
}

// The frozen window of a period that ended takes no more calls and stops
// its timer.
func TestTimeWindow_FreezesWhenItsPeriodEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := New("frozen", WithTimeWindow(time.Second, 10), WithFailureRate(1), WithMinCalls(1))
		w := b.current.Load().timeWindow
		require.Error(t, b.Call(context.Background(), func(context.Context) error { return context.DeadlineExceeded }))
		require.Equal(t, Open, b.State())
		assert.Equal(t, uint64(clockFrozen), w.clock.Load()&(clockFrozen|clockTicking), "frozen, not ticking")
		assert.False(t, w.timer.Load().Stop(), "its timer was stopped")
		_, ok := w.add(true, false)
		assert.False(t, ok, "a frozen window counts nothing")
		assert.Equal(t, WindowCounts{Calls: 1, Failures: 1}, w.countsNow())
	})
}

// Goroutines finding the timer stopped all at once restart it between them
// (one of them arms it, under -race) and every call counts.
func TestTimeWindow_ConcurrentRestartsCountEveryCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newTimeWindow(time.Now(), time.Second, 4, false)
		var wg sync.WaitGroup
		for range 32 {
			wg.Go(func() { w.add(false, false) })
		}
		wg.Wait()
		assert.Equal(t, int64(32), w.countsNow().Calls)
		timer := w.timer.Load()
		require.NotNil(t, timer)
		assert.True(t, timer.Stop(), "the timer is pending")
	})
}

// A counter's epoch tag: a call counts in its bucket's counter if the tag is
// its epoch, starts it afresh over an older epoch's count, and is dropped
// when a later epoch owns the counter (it was stalled for a whole window:
// its bucket has left). A stalled call never wipes a newer bucket.
func TestTimeWindow_ACounterCountsOnlyForItsEpoch(t *testing.T) {
	var counter atomic.Uint64
	bump(&counter, 7)
	bump(&counter, 7)
	assert.Equal(t, uint64(7)<<32|2, counter.Load(), "two calls of epoch 7")
	bump(&counter, 10)
	assert.Equal(t, uint64(10)<<32|1, counter.Load(), "epoch 10 starts the counter afresh")
	bump(&counter, 7)
	assert.Equal(t, uint64(10)<<32|1, counter.Load(), "a late call of epoch 7 is dropped, not counted over epoch 10")
	bump(&counter, 1<<32-1)
	assert.Equal(t, uint64(10)<<32|1, counter.Load(), "epochs compare across the wrap of their 32 bits: 2^32-1 is before 10")
}

// A counter's tag holds 32 bits of its epoch, which wrap. refresh keeps
// every tag within two windows of the clock, through the timer's ticks and
// the restarts after idleness, so that a tag never wraps round: the
// counters of a bucket whose calls stopped (a stripe no goroutine uses any
// more, failures that stopped) are retagged as the clock enters their
// bucket, and a restart after a whole window of idleness retags them all.
// Without it a counter left alone for 2^31 epochs looked later than the
// clock, and the calls of its bucket were dropped.
func TestTimeWindow_NoTagFallsTwoWindowsBehindTheClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const buckets = 4
		w := newTimeWindow(time.Now(), buckets*time.Millisecond, buckets, true)
		check := func(step int) {
			t.Helper()
			synctest.Wait()
			clock := uint32(w.epoch.Load())
			counters := map[string]*atomic.Uint64{}
			for b := range buckets {
				for s := range countStripes {
					counters[fmt.Sprintf("calls of stripe %d, bucket %d", s, b)] = &w.calls[wordsPerLine+s*w.stride+b]
				}
				counters[fmt.Sprintf("failures of bucket %d", b)] = &w.failures[b]
				counters[fmt.Sprintf("slow calls of bucket %d", b)] = &w.slow[b]
			}
			for name, counter := range counters {
				if behind := int32(clock - wordEpoch(counter.Load())); behind < 0 || behind > 2*buckets {
					require.Failf(t, "a tag fell behind", "step %d: the %s is %d epochs behind the clock's %d", step, name, behind, clock)
				}
			}
		}
		// A failure and a slow call once, then only successes through one
		// stripe, in every bucket (the timer ticks all along), then gaps:
		// less than a window, more, and more than 2^31 epochs.
		w.add(true, true)
		for step := range 40 {
			time.Sleep(time.Millisecond)
			w.addSuccess(0)
			check(step)
		}
		for step, idle := range []time.Duration{2 * time.Millisecond, 3 * time.Millisecond, time.Hour, 1 << 31 * time.Millisecond, 5 * time.Millisecond} {
			time.Sleep(idle)
			w.addSuccess(0)
			check(100 + step)
		}
		w.freeze(time.Now())
	})
}
