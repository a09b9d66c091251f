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

// Failure-rate trips over a window (issue 12): the last n calls
// (WithCountWindow) or the calls of the last d (WithTimeWindow, in buckets),
// with a minimum number of calls. Every test lets time pass in a synctest
// bubble: a time window's buckets expire on the bubble's clock, moved by
// the window's own timer.

// elapse lets d pass on the bubble's clock, then waits until the timers due
// by then (the open timer, a time window's) have run: a call made at the very
// moment a bucket ends could otherwise run before the window's timer moves
// it, and count in the bucket before, as a call may in production.
func elapse(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// outcomes makes one call per letter: S succeeds, F fails.
func outcomes(t *testing.T, b *breaker.Breaker, letters string) {
	t.Helper()
	for i, l := range letters {
		fn := succeed
		if l == 'F' {
			fn = fail
		}
		err := b.Call(context.Background(), fn)
		require.False(t, err != nil && err != errDown, "call %d (%c): %v", i, l, err)
	}
}

func TestCountWindow_OpensWhenTheFailureRateOfTheLastNCallsReachesTheRatio(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		listen, changes := recordChanges()
		b := newBreaker(breaker.WithCountWindow(10), breaker.WithFailureRate(0.5), listen)

		outcomes(t, b, "SFSFSFSFS") // 4 failures in 9 calls: below the minimum of 10 calls
		require.Equal(t, breaker.Closed, b.State())
		assert.Equal(t, breaker.WindowCounts{Calls: 9, Failures: 4}, b.Window())
		outcomes(t, b, "F") // 5 of 10

		require.Equal(t, breaker.Open, b.State())
		got := changes()
		require.Len(t, got, 1)
		assert.Equal(t, "failure_rate", got[0].TripRule)
		assert.Equal(t, breaker.WindowCounts{Calls: 10, Failures: 5, ConsecutiveFailures: 1}, got[0].Window)
		assert.Equal(t, 1, got[0].ConsecutiveFailures, "the streak when it tripped")
		assert.Equal(t, breaker.WindowCounts{Calls: 10, Failures: 5}, b.Window(), "an open breaker shows the window that tripped it")
	})
}

func TestCountWindow_OnlyTheLastNCallsCount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(breaker.WithCountWindow(4), breaker.WithFailureRate(0.5))

		outcomes(t, b, "FSSSS") // the failure has slid out
		assert.Equal(t, breaker.WindowCounts{Calls: 4}, b.Window())
		outcomes(t, b, "F") // S S S F: 1 of 4
		require.Equal(t, breaker.Closed, b.State())
		assert.Equal(t, breaker.WindowCounts{Calls: 4, Failures: 1, ConsecutiveFailures: 1}, b.Window())
		outcomes(t, b, "F") // S S F F: 2 of 4
		assert.Equal(t, breaker.Open, b.State())
	})
}

func TestFailureRate_WaitsForTheMinimumCallsAndTripsOnlyOnAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(breaker.WithCountWindow(10), breaker.WithMinCalls(5), breaker.WithFailureRate(0.5))

		outcomes(t, b, "FFFF")
		require.Equal(t, breaker.Closed, b.State(), "4 failures of 4 calls, but 5 calls are needed")
		outcomes(t, b, "S")
		require.Equal(t, breaker.Closed, b.State(), "4 of 5 is above the ratio, but a success never trips it")
		outcomes(t, b, "F")
		assert.Equal(t, breaker.Open, b.State(), "the next failure does: 5 of 6")
	})
}

func TestFailureRate_DefaultMinimumIsAHundredCallsOrTheCountWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		small := newBreaker(breaker.WithCountWindow(20), breaker.WithFailureRate(1))
		outcomes(t, small, "FFFFFFFFFFFFFFFFFFF")
		require.Equal(t, breaker.Closed, small.State(), "19 calls of a 20-call window")
		outcomes(t, small, "F")
		assert.Equal(t, breaker.Open, small.State())

		timed := newBreaker(breaker.WithTimeWindow(time.Minute, 6), breaker.WithFailureRate(1))
		for range breaker.DefaultMinCalls - 1 {
			require.ErrorIs(t, timed.Call(context.Background(), fail), errDown)
		}
		require.Equal(t, breaker.Closed, timed.State(), "99 calls")
		require.ErrorIs(t, timed.Call(context.Background(), fail), errDown)
		assert.Equal(t, breaker.Open, timed.State(), "the 100th")
		assert.Equal(t, 100, breaker.DefaultMinCalls)
	})
}

func TestFailureRate_IgnoredCallsAreNotInTheWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(breaker.WithCountWindow(4), breaker.WithFailureRate(0.5), breaker.WithIsIgnored(isInvalid))
		outcomes(t, b, "SF")
		for range 3 {
			require.ErrorIs(t, b.Call(context.Background(), invalid), errInvalid)
		}
		canceled, cancel := context.WithCancel(context.Background())
		cancel()
		require.ErrorIs(t, b.Call(canceled, fail), context.Canceled)

		assert.Equal(t, breaker.WindowCounts{Calls: 2, Failures: 1, ConsecutiveFailures: 1}, b.Window())
		outcomes(t, b, "SF")
		assert.Equal(t, breaker.Open, b.State(), "2 of the 4 calls that count")
	})
}

func TestTimeWindow_CallsLeaveTheWindowWithTheirBucket(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Five buckets of 2s: the window is the current bucket and the four
		// before it.
		b := newBreaker(breaker.WithTimeWindow(10*time.Second, 5), breaker.WithMinCalls(2), breaker.WithFailureRate(0.5))

		outcomes(t, b, "F") // bucket [0s, 2s)
		elapse(time.Second)
		outcomes(t, b, "S") // the same bucket
		elapse(9*time.Second - 1)
		assert.Equal(t, breaker.WindowCounts{Calls: 2, Failures: 1}, b.Window(), "a nanosecond before 10s, the first bucket is still in")

		elapse(1)
		assert.Equal(t, breaker.WindowCounts{}, b.Window(), "at 10s its calls leave all at once")
		outcomes(t, b, "F")
		require.Equal(t, breaker.Closed, b.State(), "1 call in the window: under the minimum")
		outcomes(t, b, "F")
		assert.Equal(t, breaker.Open, b.State())
	})
}

func TestTimeWindow_SlidesOneBucketAtATime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(breaker.WithTimeWindow(4*time.Second, 4), breaker.WithFailureRate(1))
		for range 4 { // one failure in each of four buckets
			outcomes(t, b, "F")
			elapse(time.Second)
		}
		synctest.Wait()
		for want := int64(3); want >= 0; want-- { // at 4s the first bucket has gone; one more each second
			assert.Equal(t, want, b.Window().Failures, "%d buckets with a failure left", want)
			elapse(time.Second)
		}
		assert.Equal(t, breaker.Closed, b.State())
	})
}

func TestTimeWindow_ACallCountsInTheBucketItEndsIn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(breaker.WithTimeWindow(3*time.Second, 3), breaker.WithFailureRate(1))
		release := blockedCall(b, errDown) // starts in the first bucket
		elapse(2500 * time.Millisecond)
		require.ErrorIs(t, release(), errDown) // ends in the third
		elapse(3*time.Second - 500*time.Millisecond - 1)
		assert.Equal(t, int64(1), b.Window().Failures, "counted at its end, it stays until its bucket leaves")
		elapse(1)
		assert.Zero(t, b.Window().Calls)
	})
}

func TestTimeWindow_ABreakerIdleForLongerThanTheWindowStartsAfresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(breaker.WithTimeWindow(time.Second, 10), breaker.WithMinCalls(3), breaker.WithFailureRate(1))
		outcomes(t, b, "FF")
		elapse(time.Hour) // the window's timer stops after a bucket without calls
		synctest.Wait()
		assert.Equal(t, breaker.WindowCounts{ConsecutiveFailures: 2}, b.Window(), "only the streak is left")
		outcomes(t, b, "F")
		assert.Equal(t, breaker.Closed, b.State(), "the failures of an hour ago do not count")
		elapse(950 * time.Millisecond) // the timer runs again: the same window
		outcomes(t, b, "FF")
		assert.Equal(t, breaker.Open, b.State(), "3 failures within the second")
	})
}

// A bucket's counter is tagged with 32 bits of its epoch, which wrap: after
// 2^31 widths of idleness (25 days of 1 ms buckets) the tag of the last
// call counted looked like a later epoch, and every call in that bucket was
// dropped as if its bucket had left the window, for 25 more days. Found by
// FuzzBreakerStateMachine.
func TestTimeWindow_ABreakerIdleForBillionsOfBucketsStillCountsItsCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const width = time.Millisecond
		b := newBreaker(breaker.WithTimeWindow(4*width, 4), breaker.WithMinCalls(2), breaker.WithFailureRate(1))
		outcomes(t, b, "S")
		for _, idle := range []time.Duration{1 << 31 * width, 1<<31*width + 3*width, 1 << 32 * width, 3 << 31 * width} {
			elapse(idle)
			outcomes(t, b, "F")
			assert.Equal(t, int64(1), b.Window().Calls, "a call after %v idle counts", idle)
		}
		outcomes(t, b, "F")
		assert.Equal(t, breaker.Open, b.State(), "two failures within the window")
	})
}

// A window belongs to its closed period: it starts empty each time the
// breaker closes and at each Reset, and calls admitted before the change
// that return after it count in no window.
func TestWindow_StartsEmptyEachPeriodAndCallsSpanningAChangeCountInNone(t *testing.T) {
	windows := map[string]breaker.Option{
		"count": breaker.WithCountWindow(100),
		"time":  breaker.WithTimeWindow(time.Minute, 6),
	}
	for name, window := range windows {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newBreaker(window, breaker.WithMinCalls(4), breaker.WithFailureRate(0.5))
				late := []func() error{blockedCall(b, errDown), blockedCall(b, errDown), blockedCall(b, errDown)}
				outcomes(t, b, "SSFF")
				require.Equal(t, breaker.Open, b.State())
				elapse(breaker.DefaultOpenTimeout)
				outcomes(t, b, "S") // the probe closes it
				require.Equal(t, breaker.Closed, b.State())
				assert.Equal(t, breaker.WindowCounts{}, b.Window(), "a closed breaker starts with an empty window")

				require.ErrorIs(t, late[0](), errDown) // admitted two periods ago
				outcomes(t, b, "SSS")
				assert.Equal(t, breaker.WindowCounts{Calls: 3}, b.Window(), "the late failure counted in no window")

				b.Reset(context.Background())
				assert.Equal(t, breaker.WindowCounts{}, b.Window(), "Reset empties the window")
				outcomes(t, b, "SSF")
				require.ErrorIs(t, late[1](), errDown)
				require.ErrorIs(t, late[2](), errDown)
				assert.Equal(t, breaker.WindowCounts{Calls: 3, Failures: 1, ConsecutiveFailures: 1}, b.Window())
				assert.Equal(t, breaker.Closed, b.State(), "two late failures would have made it 3 of 5")
				assert.Equal(t, int64(2+3+1), b.Counts().Failure, "late failures still count in Counts")
			})
		})
	}
}

func TestWindow_AnOpenBreakerKeepsTheWindowThatTrippedIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(breaker.WithTimeWindow(10*time.Second, 10), breaker.WithMinCalls(4), breaker.WithFailureRate(0.5))
		lateSuccess, lateFailure := blockedCall(b, nil), blockedCall(b, errDown)
		outcomes(t, b, "SSFF")
		require.Equal(t, breaker.Open, b.State())
		require.NoError(t, lateSuccess(), "admitted while closed, it returns while open")
		require.ErrorIs(t, lateFailure(), errDown)
		assert.Equal(t, breaker.WindowCounts{Calls: 4, Failures: 2}, b.Window(), "calls that return after the trip do not count in its window")
		elapse(breaker.DefaultOpenTimeout - time.Second) // longer than the window
		synctest.Wait()
		assert.Equal(t, breaker.WindowCounts{Calls: 4, Failures: 2}, b.Window(), "frozen when it opened")
		elapse(time.Second)
		require.Equal(t, breaker.HalfOpen, b.State())
		assert.Equal(t, breaker.WindowCounts{Calls: 4, Failures: 2}, b.Window())
	})
}

func TestWindow_ACountWindowTooKeepsItsCountsOnceOpen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(breaker.WithCountWindow(10), breaker.WithMinCalls(2), breaker.WithFailureRate(1))
		lateSuccess, lateFailure := blockedCall(b, nil), blockedCall(b, errDown)
		outcomes(t, b, "FF")
		require.Equal(t, breaker.Open, b.State())
		require.NoError(t, lateSuccess())
		require.ErrorIs(t, lateFailure(), errDown)
		assert.Equal(t, breaker.WindowCounts{Calls: 2, Failures: 2}, b.Window())
	})
}

func TestWindow_WithTheConsecutiveRuleOnlyMeasures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(breaker.WithCountWindow(10))
		outcomes(t, b, "FFSFFSFF")
		assert.Equal(t, breaker.Closed, b.State(), "6 failures of 8, never 3 in a row")
		assert.Equal(t, breaker.WindowCounts{Calls: 8, Failures: 6, ConsecutiveFailures: 2}, b.Window())
		outcomes(t, b, "F")
		assert.Equal(t, breaker.Open, b.State(), "the third in a row")
	})
}

func TestWindow_WithoutOneCountsOnlyTheStreak(t *testing.T) {
	b := newBreaker()
	outcomes(t, b, "SFF")
	assert.Equal(t, breaker.WindowCounts{ConsecutiveFailures: 2}, b.Window())
}

// Many goroutines at once, under -race: with no time passing and a window
// larger than every call made, the window's counts are exact, whatever the
// interleaving.
func TestWindow_ManyGoroutinesCountExactlyWhenEveryCallFits(t *testing.T) {
	const goroutines, callsEach = 64, 150
	windows := map[string]breaker.Option{
		"count": breaker.WithCountWindow(goroutines * callsEach),
		"time":  breaker.WithTimeWindow(time.Hour, 60),
	}
	for name, window := range windows {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newBreaker(window, breaker.WithSlowCallDuration(time.Hour), breaker.WithTripRule(func(breaker.WindowCounts) bool { return false }))
				var failures atomic.Int64
				var wg sync.WaitGroup
				for g := range goroutines {
					wg.Go(func() {
						for i := range callsEach {
							if (g+i)%3 == 0 {
								failures.Add(1)
								_ = b.Call(context.Background(), fail)
							} else {
								_ = b.Call(context.Background(), succeed)
							}
						}
					})
				}
				wg.Wait()
				got := b.Window()
				got.ConsecutiveFailures = 0 // the streak depends on the interleaving
				assert.Equal(t, breaker.WindowCounts{Calls: goroutines * callsEach, Failures: failures.Load()}, got)
			})
		})
	}
}
