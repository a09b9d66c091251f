package hedge_test

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/hedge"
	"github.com/levee-go/levee/internal/testkit"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/retry"
)

var (
	errA = errors.New("replica a failed")
	errB = errors.New("replica b failed")
)

// attempt scripts what one attempt does: answer after latency with the
// attempt's number or err, or panic, or call runtime.Goexit. An attempt
// honours its context unless it ignores it.
type attempt struct {
	latency   time.Duration
	err       error
	ignoreCtx bool
	panics    any
	goexit    bool
}

// replicas is a guarded function whose i-th call (the i-th attempt to
// start) follows script[i] (the last one again past the script's end), and
// which records, on the bubble's clock, when each attempt started and
// ended and whether its context ended first.
type replicas struct {
	mu       sync.Mutex
	start    time.Time
	script   []attempt
	started  []time.Duration
	ended    map[int]time.Duration
	canceled map[int]bool
}

func newReplicas(script ...attempt) *replicas {
	return &replicas{start: time.Now(), script: script, ended: map[int]time.Duration{}, canceled: map[int]bool{}}
}

func (r *replicas) call(ctx context.Context) (int, error) {
	r.mu.Lock()
	n := len(r.started) + 1
	s := r.script[min(n, len(r.script))-1]
	r.started = append(r.started, time.Since(r.start))
	r.mu.Unlock()

	canceled := false
	timer := time.NewTimer(s.latency)
	defer timer.Stop()
	if s.ignoreCtx {
		<-timer.C
	} else {
		select {
		case <-timer.C:
		case <-ctx.Done():
			canceled = true
		}
	}
	r.mu.Lock()
	r.ended[n] = time.Since(r.start)
	r.canceled[n] = canceled
	r.mu.Unlock()
	switch {
	case canceled:
		return 0, ctx.Err()
	case s.panics != nil:
		panic(s.panics)
	case s.goexit:
		runtime.Goexit()
	}
	return n, s.err
}

func (r *replicas) starts() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration(nil), r.started...)
}

func (r *replicas) endOf(n int) (time.Duration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ended[n], r.canceled[n]
}

const ms = time.Millisecond

func TestHedge_AFirstAttemptThatAnswersWithinTheDelayIsTheCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReplicas(attempt{latency: 15 * ms})
		v, err := resilience.Wrap(r.call, hedge.Policy[int](20*ms))(t.Context())
		require.NoError(t, err)
		assert.Equal(t, 1, v)
		assert.Equal(t, 15*ms, time.Since(r.start))
		synctest.Wait()
		assert.Equal(t, []time.Duration{0}, r.starts(), "no hedge")
	})
}

func TestHedge_ASlowFirstAttemptIsHedgedAndTheFirstSuccessWins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReplicas(attempt{latency: time.Second}, attempt{latency: 10 * ms})
		v, err := resilience.Wrap(r.call, hedge.Policy[int](20*ms))(t.Context())

		require.NoError(t, err)
		assert.Equal(t, 2, v, "the hedge's answer")
		assert.Equal(t, 30*ms, time.Since(r.start), "the hedge started at 20ms and answered 10ms later")
		assert.Equal(t, []time.Duration{0, 20 * ms}, r.starts())
		end, canceled := r.endOf(1)
		assert.True(t, canceled, "the first attempt was cancelled through its context")
		assert.Equal(t, 30*ms, end)
	})
}

func TestHedge_TheFirstAttemptMayStillWin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReplicas(attempt{latency: 40 * ms}, attempt{latency: time.Second})
		v, err := resilience.Wrap(r.call, hedge.Policy[int](20*ms))(t.Context())

		require.NoError(t, err)
		assert.Equal(t, 1, v)
		assert.Equal(t, 40*ms, time.Since(r.start))
		synctest.Wait() // the cancelled hedge ends
		end, canceled := r.endOf(2)
		assert.True(t, canceled, "the hedge was cancelled")
		assert.Equal(t, 40*ms, end)
	})
}

func TestHedge_StartsAHedgeAfterEachDelayUpToMaxHedges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		slow := attempt{latency: time.Second}
		r := newReplicas(slow, slow, slow, attempt{latency: 5 * ms})
		v, err := resilience.Wrap(r.call, hedge.Policy[int](20*ms, hedge.WithMaxHedges(3)))(t.Context())

		require.NoError(t, err)
		assert.Equal(t, 4, v)
		assert.Equal(t, 65*ms, time.Since(r.start))
		synctest.Wait()
		assert.Equal(t, []time.Duration{0, 20 * ms, 40 * ms, 60 * ms}, r.starts())
		for n := 1; n <= 3; n++ {
			end, canceled := r.endOf(n)
			assert.True(t, canceled, "attempt %d cancelled", n)
			assert.Equal(t, 65*ms, end, "attempt %d cancelled when the call was decided", n)
		}
	})
}

func TestHedge_NoMoreHedgesThanMaxHedges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReplicas(attempt{latency: 100 * ms}, attempt{latency: 200 * ms})
		v, err := resilience.Wrap(r.call, hedge.Policy[int](20*ms))(t.Context())
		require.NoError(t, err)
		assert.Equal(t, 1, v)
		assert.Equal(t, 100*ms, time.Since(r.start))
		synctest.Wait()
		assert.Equal(t, []time.Duration{0, 20 * ms}, r.starts(), "one hedge by default")
	})
}

func TestHedge_ALateSuccessIsDroppedAndReleased(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var released []int
		release := hedge.WithRelease(func(v int) {
			mu.Lock()
			defer mu.Unlock()
			released = append(released, v)
		})
		// The hedge ignores its cancellation and succeeds after the first
		// attempt has won.
		r := newReplicas(attempt{latency: 30 * ms}, attempt{latency: 40 * ms, ignoreCtx: true})
		v, err := resilience.Wrap(r.call, hedge.Policy[int](20*ms, release))(t.Context())
		require.NoError(t, err)
		assert.Equal(t, 1, v)
		assert.Equal(t, 30*ms, time.Since(r.start), "the caller does not wait for the losing hedge")

		time.Sleep(time.Second)
		mu.Lock()
		defer mu.Unlock()
		assert.Equal(t, []int{2}, released, "the hedge's result, dropped at 60ms")
	})
}

func TestHedge_AFirstAttemptThatSucceedsAfterAHedgeWonIsReleased(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var released []int
		release := hedge.WithRelease(func(v int) { released = append(released, v) })
		r := newReplicas(attempt{latency: 100 * ms, ignoreCtx: true}, attempt{latency: 10 * ms})
		v, err := resilience.Wrap(r.call, hedge.Policy[int](20*ms, release))(t.Context())

		require.NoError(t, err)
		assert.Equal(t, 2, v, "the hedge won at 30ms")
		assert.Equal(t, 100*ms, time.Since(r.start), "the first attempt runs in the caller's goroutine: the call returns when it does")
		assert.Equal(t, []int{1}, released)
	})
}

func TestHedge_WhenEveryAttemptFailsTheCallerGetsEachError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReplicas(attempt{latency: 50 * ms, err: errA}, attempt{latency: 40 * ms, err: errB})
		get := resilience.WrapWith(resilience.Telemetry{Name: "profiles"}, r.call, hedge.Policy[int](20*ms))
		_, err := get(t.Context())

		assert.Equal(t, 60*ms, time.Since(r.start))
		assert.ErrorIs(t, err, errA)
		assert.ErrorIs(t, err, errB)
		var hedgeErr *hedge.Error
		require.ErrorAs(t, err, &hedgeErr)
		assert.Equal(t, 2, hedgeErr.Attempts)
		assert.Equal(t, []error{errA, errB}, hedgeErr.Errs, "in the order the attempts started")
		assert.EqualError(t, err, `levee: hedge "profiles": all 2 attempts failed: replica a failed; replica b failed`)
	})
}

func TestHedge_AFailureIsNoReasonToHedge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReplicas(attempt{latency: 5 * ms, err: errA})
		v, err := resilience.Wrap(r.call, hedge.Policy[int](20*ms))(t.Context())
		assert.Equal(t, errA, err, "the one attempt's error, as it is")
		assert.Equal(t, 1, v, "with its result")
		time.Sleep(time.Second)
		assert.Len(t, r.starts(), 1)
	})
}

func TestHedge_AFirstAttemptThatFailsLeavesTheHedgesRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReplicas(attempt{latency: 30 * ms, err: errA}, attempt{latency: 20 * ms})
		v, err := resilience.Wrap(r.call, hedge.Policy[int](20*ms))(t.Context())
		require.NoError(t, err)
		assert.Equal(t, 2, v)
		assert.Equal(t, 40*ms, time.Since(r.start))
	})
}

func TestHedge_NoHedgeStartsOnceEveryAttemptHasFailed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReplicas(attempt{latency: 25 * ms, err: errA}, attempt{latency: 10 * ms, err: errB})
		_, err := resilience.Wrap(r.call, hedge.Policy[int](20*ms, hedge.WithMaxHedges(3)))(t.Context())
		assert.Equal(t, 30*ms, time.Since(r.start), "decided when the second attempt failed, with none running")
		assert.ErrorIs(t, err, errA)
		assert.ErrorIs(t, err, errB)
		time.Sleep(time.Second)
		assert.Equal(t, []time.Duration{0, 20 * ms}, r.starts(), "the hedge due at 40ms was not started")
	})
}

func TestHedge_ACallWhoseContextIsDoneRunsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		r := newReplicas(attempt{})
		_, err := resilience.Wrap(r.call, hedge.Policy[int](20*ms))(ctx)
		assert.Equal(t, context.Canceled, err)
		time.Sleep(time.Second)
		assert.Empty(t, r.starts())
	})
}

func TestHedge_TheCallerGivingUpWhileHedgesRunReturnsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go func() {
			time.Sleep(50 * ms)
			cancel()
		}()
		r := newReplicas(attempt{latency: 30 * ms, err: errA}, attempt{latency: time.Second, ignoreCtx: true})
		_, err := resilience.WrapWith(resilience.Telemetry{Name: "profiles"}, r.call, hedge.Policy[int](20*ms))(ctx)

		assert.Equal(t, 50*ms, time.Since(r.start), "not waiting for the hedge that ignores its context")
		assert.ErrorIs(t, err, context.Canceled)
		assert.ErrorIs(t, err, errA)
		assert.EqualError(t, err, `levee: hedge "profiles": context canceled while 1 of 2 attempts ran: replica a failed`)
		time.Sleep(time.Second) // the hedge ends at 1.02s, and its goroutine with it
	})
}

func TestHedge_APanicInAHedgeIsRaisedInTheCaller(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReplicas(attempt{latency: time.Second}, attempt{latency: 5 * ms, panics: "hedge exploded"})
		get := resilience.Wrap(r.call, hedge.Policy[int](20*ms))
		assert.PanicsWithValue(t, "hedge exploded", func() { _, _ = get(t.Context()) })
		assert.Equal(t, 25*ms, time.Since(r.start))
		_, canceled := r.endOf(1)
		assert.True(t, canceled, "the first attempt was cancelled")
	})
}

func TestHedge_APanicInTheFirstAttemptPropagatesAndCancelsTheHedges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReplicas(attempt{latency: 30 * ms, panics: "first exploded"}, attempt{latency: time.Second})
		get := resilience.Wrap(r.call, hedge.Policy[int](20*ms))
		assert.PanicsWithValue(t, "first exploded", func() { _, _ = get(t.Context()) })
		synctest.Wait()
		end, canceled := r.endOf(2)
		assert.True(t, canceled)
		assert.Equal(t, 30*ms, end)
	})
}

func TestHedge_APanicInALosingHedgeIsReportedNotRaised(t *testing.T) {
	otelErrs := testkit.CaptureOTelErrors(t)
	synctest.Test(t, func(t *testing.T) {
		r := newReplicas(attempt{latency: 30 * ms}, attempt{latency: 40 * ms, ignoreCtx: true, panics: "late explosion"})
		v, err := resilience.WrapWith(resilience.Telemetry{Name: "profiles"}, r.call, hedge.Policy[int](20*ms))(t.Context())
		require.NoError(t, err)
		assert.Equal(t, 1, v)
		time.Sleep(time.Second)
	})
	reported := otelErrs.Take()
	require.Len(t, reported, 1)
	assert.EqualError(t, reported[0], `levee: hedge "profiles": attempt 2 panicked after the call was decided: late explosion`)
}

func TestHedge_AHedgeThatCallsGoexitFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReplicas(attempt{latency: 30 * ms, err: errA}, attempt{latency: 5 * ms, goexit: true})
		_, err := resilience.Wrap(r.call, hedge.Policy[int](20*ms))(t.Context())
		assert.ErrorIs(t, err, errA)
		assert.ErrorContains(t, err, "runtime.Goexit")
	})
}

func TestHedge_HedgesDrawFromTheBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := retry.NewBudget(0.5, 0)
		p := hedge.Policy[int](20*ms, hedge.WithBudget(b))
		slowThenFast := func() *replicas { return newReplicas(attempt{latency: 100 * ms}, attempt{latency: 10 * ms}) }

		r := slowThenFast()
		v, err := resilience.Wrap(r.call, p)(t.Context())
		require.NoError(t, err)
		assert.Equal(t, 1, v, "one call earns half a hedge: none started")
		assert.Equal(t, 100*ms, time.Since(r.start))

		r = slowThenFast()
		v, err = resilience.Wrap(r.call, p)(t.Context())
		require.NoError(t, err)
		assert.Equal(t, 2, v, "two calls earn one")

		r = slowThenFast()
		v, err = resilience.Wrap(r.call, p)(t.Context())
		require.NoError(t, err)
		assert.Equal(t, 1, v, "and it is spent")
	})
}

func TestHedge_RetriesAndHedgesShareOneBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := retry.NewBudget(0.5, 0)
		succeed := func(context.Context) (int, error) { return 1, nil }
		for range 2 { // 2 first attempts, worth 1 retry or hedge
			_, err := resilience.Wrap(succeed, retry.Policy[int](retry.WithBudget(b)))(t.Context())
			require.NoError(t, err)
		}
		r := newReplicas(attempt{latency: 100 * ms}, attempt{latency: 10 * ms})
		v, err := resilience.Wrap(r.call, hedge.Policy[int](20*ms, hedge.WithBudget(b)))(t.Context())
		require.NoError(t, err)
		require.Equal(t, 2, v, "the hedge spent the retries' credit (1.5 with its own deposit)")

		calls := 0
		_, err = resilience.Wrap(func(context.Context) (int, error) { calls++; return 0, errA },
			retry.Policy[int](retry.WithBudget(b), retry.WithDelay(0)))(t.Context())
		assert.ErrorIs(t, err, retry.ErrBudgetExhausted, "0.5 + 0.5 left: the retry's deposit makes 1")
		assert.Equal(t, 2, calls)
	})
}

func TestHedge_QuantileDelayHedgesAtTheP95OfRecentFirstAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		latency := time.Duration(0)
		warmUp := func(ctx context.Context) (int, error) {
			time.Sleep(latency)
			return 1, nil
		}
		p := hedge.Policy[int](time.Second, hedge.WithQuantileDelay(0.95, 10*time.Second))
		var slow *replicas
		get := resilience.Wrap(func(ctx context.Context) (int, error) {
			if slow != nil {
				return slow.call(ctx)
			}
			return warmUp(ctx)
		}, p)
		for i := range 100 {
			latency = time.Duration(i+1) * ms // 1ms..100ms
			_, err := get(t.Context())
			require.NoError(t, err)
		}

		slow = newReplicas(attempt{latency: time.Second}, attempt{latency: ms})
		v, err := get(t.Context())
		require.NoError(t, err)
		assert.Equal(t, 2, v)
		// The p95 of 1ms..100ms is 95ms, whose bucket ends at 100.66ms.
		assert.Equal(t, []time.Duration{0, 100663296 * time.Nanosecond}, slow.starts())
	})
}

func TestHedge_QuantileDelayStartsAtTheGivenDelayAndIgnoresFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := hedge.Policy[int](50*ms, hedge.WithQuantileDelay(0.95, 10*time.Second))
		var slow *replicas
		get := resilience.Wrap(func(ctx context.Context) (int, error) {
			if slow != nil {
				return slow.call(ctx)
			}
			time.Sleep(ms)
			return 0, errA
		}, p)
		for range 200 {
			_, err := get(t.Context())
			require.ErrorIs(t, err, errA)
		}
		slow = newReplicas(attempt{latency: time.Second}, attempt{latency: ms})
		_, err := get(t.Context())
		require.NoError(t, err)
		assert.Equal(t, []time.Duration{0, 50 * ms}, slow.starts(), "fast failures are no latencies: the given delay holds")
	})
}

func TestHedge_QuantileDelayCountsAFirstAttemptThatLostWithTheTimeItRan(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := hedge.Policy[int](time.Second, hedge.WithQuantileDelay(0.95, 10*time.Second))
		var current *replicas
		get := resilience.Wrap(func(ctx context.Context) (int, error) { return current.call(ctx) }, p)
		hedgedAt := func(script ...attempt) time.Duration {
			current = newReplicas(script...)
			_, err := get(t.Context())
			require.NoError(t, err)
			if starts := current.starts(); len(starts) > 1 {
				return starts[1]
			}
			return 0
		}
		for range 100 {
			hedgedAt(attempt{latency: 10 * ms})
		}
		stuck := []attempt{{latency: time.Hour}, {latency: ms}}
		first := hedgedAt(stuck...)
		assert.Equal(t, 10485760*time.Nanosecond, first, "p95 of 10ms latencies: the upper edge of their bucket")

		// From now on every first attempt is stuck and loses to its hedge:
		// its latency is unknown, but longer than the time it ran. Counting
		// that time raises the delay; not counting it would leave the
		// delay where it is, however slow the first attempts become.
		var last time.Duration
		for range 300 {
			last = hedgedAt(stuck...)
		}
		assert.Greater(t, last, 2*first)
	})
}

func TestHedge_QuantileDelayIgnoresAFirstAttemptThatFailedWhileItsHedgeRan(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := hedge.Policy[int](time.Second, hedge.WithQuantileDelay(0.95, 10*time.Second))
		var current *replicas
		get := resilience.Wrap(func(ctx context.Context) (int, error) { return current.call(ctx) }, p)
		call := func(script ...attempt) *replicas {
			current = newReplicas(script...)
			_, err := get(t.Context())
			require.NoError(t, err)
			return current
		}
		for range 100 {
			call(attempt{latency: 10 * ms})
		}
		// The first attempt fails at 15ms, after its hedge started; the
		// hedge wins at 40ms. Neither 15ms nor 40ms is a latency of a
		// first attempt.
		for range 100 {
			call(attempt{latency: 15 * ms, err: errA}, attempt{latency: 30 * ms})
		}
		r := call(attempt{latency: time.Hour}, attempt{latency: ms})
		assert.Equal(t, []time.Duration{0, 10485760 * time.Nanosecond}, r.starts())
	})
}

func TestHedge_AppliedOutsideAPipelineReportsAsHedge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReplicas(attempt{latency: 50 * ms, err: errA}, attempt{latency: 50 * ms, err: errB})
		_, err := hedge.Policy[int](20 * ms).Apply(r.call)(t.Context())
		assert.EqualError(t, err, `levee: hedge "hedge": all 2 attempts failed: replica a failed; replica b failed`)
	})
}

// A call that answers within the delay leaves its stopped timer to the
// next call outside a bubble. One pipeline used outside a bubble, then in
// one, then outside again shows the timers never cross: in the bubble the
// hedge starts at its delay on the bubble's clock (a timer kept from the
// calls outside would fire on real time, long after the bubble's second
// had passed, and no hedge would start), and outside again no timer of the
// bubble is used (that would be fatal), while a slow call still hedges.
func TestHedge_ReusedTimersNeverCrossABubble(t *testing.T) {
	const delay = 50 * ms
	var (
		attempts atomic.Int32 // of the current slow call
		slow     atomic.Bool
	)
	call := resilience.Wrap(func(ctx context.Context) (int, error) {
		n := int(attempts.Add(1))
		if !slow.Load() || n > 1 {
			return n, nil
		}
		select { // the first attempt of a slow call: the hedge must win
		case <-time.After(5 * time.Second):
			return 0, errors.New("no hedge started within 5 s")
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}, hedge.Policy[int](delay))
	fastCalls := func(where string) {
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 100 {
					attempts.Store(0)
					if _, err := call(context.Background()); err != nil {
						t.Errorf("%s: %v", where, err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	slowCall := func(where string) time.Duration {
		attempts.Store(0)
		slow.Store(true)
		defer slow.Store(false)
		start := time.Now()
		v, err := call(context.Background())
		took := time.Since(start)
		require.NoError(t, err, where)
		assert.Equal(t, 2, v, "%s: the hedge won", where)
		return took
	}

	fastCalls("outside, before the bubble")
	assert.Less(t, slowCall("outside, before the bubble"), 5*time.Second)
	synctest.Test(t, func(t *testing.T) {
		for range 3 {
			assert.Equal(t, delay, slowCall("in the bubble"), "the hedge starts at the delay, on the bubble's clock")
		}
		fastCalls("in the bubble")
	})
	fastCalls("outside, after the bubble")
	assert.Less(t, slowCall("outside, after the bubble"), 5*time.Second)
}

// A hedge inside a hedge: the inner calls' attempts' contexts are made of
// the outer's. When the outer call is decided by the inner call of its
// first attempt, the inner call of its hedge is ended through the outer
// attempts' context, and every attempt ends at once, none left running.
func TestHedge_AHedgeInsideAHedgeEndsEveryAttemptWhenDecided(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReplicas(attempt{latency: time.Second})
		inner := resilience.Wrap(r.call, hedge.Policy[int](10*ms))
		outer := resilience.Wrap(inner, hedge.Policy[int](100*ms))
		v, err := outer(t.Context())
		require.NoError(t, err)
		assert.Equal(t, 1, v, "the inner call of the outer first attempt, by its first attempt")
		assert.Equal(t, time.Second, time.Since(r.start))
		synctest.Wait()
		assert.Equal(t, []time.Duration{0, 10 * ms, 100 * ms, 110 * ms}, r.starts())
		for n := 2; n <= 4; n++ {
			end, canceled := r.endOf(n)
			assert.True(t, canceled, "attempt %d was cancelled", n)
			assert.Equal(t, time.Second, end, "attempt %d ended when the call was decided", n)
		}
	})
}

// Outside a bubble, many goroutines make nested hedged calls that answer
// within the delay, reusing pooled calls at both levels; some attempts
// wait on their context. Every attempt sees the caller's values and a
// running context, and its context has ended once the call returns (the
// race detector watches the pooled state).
func TestHedge_NestedPooledCallsKeepTheirOwnContexts(t *testing.T) {
	type key struct{}
	var leaked sync.Map // attempts' contexts seen, checked once their calls returned
	var seen atomic.Int64
	fn := func(ctx context.Context) (int, error) {
		if ctx.Err() != nil {
			return 0, errors.New("the attempt's context had ended already")
		}
		n := int(seen.Add(1))
		leaked.Store(n, ctx)
		if n%3 == 0 {
			select { // waits on Done, makes the context lazily
			case <-ctx.Done():
				return 0, ctx.Err()
			default:
			}
		}
		v, _ := ctx.Value(key{}).(int)
		return v, nil
	}
	inner := resilience.Wrap(fn, hedge.Policy[int](time.Hour))
	outer := resilience.Wrap(inner, hedge.Policy[int](time.Hour))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				want := g*1000 + i
				ctx := context.WithValue(context.Background(), key{}, want)
				v, err := outer(ctx)
				if err != nil || v != want {
					t.Errorf("goroutine %d, call %d: %v, %v; want %v", g, i, v, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
	leaked.Range(func(n, ctx any) bool {
		c := ctx.(context.Context)
		if c.Err() == nil {
			t.Errorf("attempt %d: its context still runs after its call returned", n)
			return false
		}
		select {
		case <-c.Done():
		default:
			t.Errorf("attempt %d: Err says it ended but Done is open", n)
			return false
		}
		return true
	})
}

// A first attempt that calls runtime.Goexit outside a bubble leaves its
// call (and timer) out of the pool: the next calls still hedge at the
// delay and answer within it without a hedge.
func TestHedge_AFirstAttemptThatCallsGoexitPoisonsNoPooledCall(t *testing.T) {
	var (
		mode     atomic.Int32 // 0: answer, 1: Goexit, 2: slow first attempt
		attempts atomic.Int32
	)
	call := resilience.Wrap(func(ctx context.Context) (int, error) {
		n := int(attempts.Add(1))
		switch mode.Load() {
		case 1:
			runtime.Goexit()
		case 2:
			if n == 1 {
				select {
				case <-ctx.Done():
					return 0, ctx.Err()
				case <-time.After(10 * time.Second):
					return 0, errors.New("no hedge within 10 s")
				}
			}
		}
		return n, nil
	}, hedge.Policy[int](2*ms))
	for range 10 {
		_, err := call(context.Background())
		require.NoError(t, err)
	}
	mode.Store(1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = call(context.Background())
		t.Error("Goexit did not end the caller's goroutine")
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the call with a Goexit did not end within 10 s")
	}
	mode.Store(0)
	for range 10 {
		_, err := call(context.Background())
		require.NoError(t, err)
	}
	mode.Store(2)
	attempts.Store(0)
	v, err := call(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 2, v, "the hedge won")
}
