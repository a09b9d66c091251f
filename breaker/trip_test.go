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
	"github.com/levee-go/levee/internal/testkit"
)

// A custom trip rule (issue 12, gobreaker's ReadyToTrip): the user's
// function decides on the window's counts, asked after each failure and
// each slow call, never after a fast success, and never under a lock.

// tripRecorder is a WithTripRule function that records what it was asked
// and answers with trip.
type tripRecorder struct {
	mu    sync.Mutex
	asked []breaker.WindowCounts
	trip  func(breaker.WindowCounts) bool
}

func (r *tripRecorder) rule(c breaker.WindowCounts) bool {
	r.mu.Lock()
	r.asked = append(r.asked, c)
	r.mu.Unlock()
	return r.trip(c)
}

func (r *tripRecorder) get() []breaker.WindowCounts {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]breaker.WindowCounts(nil), r.asked...)
}

func TestTripRule_IsAskedAfterEachFailureAndSlowCallWithTheWindowsCounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		listen, changes := recordChanges()
		r := &tripRecorder{trip: func(c breaker.WindowCounts) bool { return c.Failures >= 2 && c.SlowCalls >= 1 }}
		b := newBreaker(breaker.WithCountWindow(10), breaker.WithSlowCallDuration(time.Second), breaker.WithTripRule(r.rule), listen)
		ctx := context.Background()

		outcomes(t, b, "SSF")
		require.NoError(t, b.Call(ctx, takes(2*time.Second, nil)))
		outcomes(t, b, "S")
		require.Equal(t, breaker.Closed, b.State())
		outcomes(t, b, "F")

		assert.Equal(t, []breaker.WindowCounts{
			{Calls: 3, Failures: 1, ConsecutiveFailures: 1},
			{Calls: 4, Failures: 1, SlowCalls: 1},
			{Calls: 6, Failures: 2, SlowCalls: 1, ConsecutiveFailures: 1},
		}, r.get(), "asked after the failures and the slow call only")
		require.Equal(t, breaker.Open, b.State())
		got := changes()
		require.Len(t, got, 1)
		assert.Equal(t, "custom", got[0].TripRule)
		assert.Equal(t, breaker.WindowCounts{Calls: 6, Failures: 2, SlowCalls: 1, ConsecutiveFailures: 1}, got[0].Window)
	})
}

func TestTripRule_SeesTheStreakOfFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(breaker.WithTimeWindow(time.Minute, 6),
			breaker.WithTripRule(func(c breaker.WindowCounts) bool { return c.ConsecutiveFailures >= 2 && c.FailureRate() > 0.5 }))
		outcomes(t, b, "SSFF")
		require.Equal(t, breaker.Closed, b.State(), "2 in a row, but 2 of 4")
		outcomes(t, b, "F")
		assert.Equal(t, breaker.Open, b.State(), "3 in a row, 3 of 5")
	})
}

// Outside a bubble: a rule stuck on the breaker's mutex would not be
// durably blocked, so the wait is bounded instead.
func TestTripRule_IsCalledOutsideAnyLockOfTheBreakers(t *testing.T) {
	var b *breaker.Breaker
	var inRule atomic.Int64
	b = newBreaker(breaker.WithCountWindow(10), breaker.WithTripRule(func(breaker.WindowCounts) bool {
		inRule.Add(1)
		b.ForceOpen(context.Background()) // takes the breaker's lock: deadlocks if the rule runs under it
		_ = b.Window()
		return false
	}))
	done := make(chan error, 1)
	go func() { done <- b.Call(context.Background(), fail) }()
	select {
	case err := <-done:
		require.ErrorIs(t, err, errDown)
	case <-time.After(5 * time.Second):
		t.Fatal("a call whose trip rule calls the breaker did not return within 5s: the rule ran under a lock")
	}
	assert.Equal(t, int64(1), inRule.Load())
	assert.Equal(t, breaker.Open, b.State(), "the rule's ForceOpen")
}

func TestTripRule_APanicIsReportedAndDoesNotTrip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		otelErrs := testkit.CaptureOTelErrors(t)
		b := newBreaker(breaker.WithCountWindow(10), breaker.WithTripRule(func(breaker.WindowCounts) bool { panic("rule bug") }))

		assert.Same(t, errDown, b.Call(context.Background(), fail), "the call's own error comes back")
		assert.Equal(t, breaker.Closed, b.State())
		errs := otelErrs.Take()
		require.Len(t, errs, 1)
		assert.Contains(t, errs[0].Error(), "rule bug")
		assert.Contains(t, errs[0].Error(), `"dep"`)
		assert.Contains(t, errs[0].Error(), "WithTripRule")
		require.NoError(t, b.Call(context.Background(), succeed), "the breaker works on")
	})
}

// Under -race, from many goroutines: the rule may be asked on several at
// once, and trips the breaker once.
func TestTripRule_AskedFromManyGoroutinesTripsOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		listen, changes := recordChanges()
		var asked atomic.Int64
		b := newBreaker(breaker.WithCountWindow(1000), listen,
			breaker.WithTripRule(func(c breaker.WindowCounts) bool { asked.Add(1); return c.Failures >= 100 }))
		var wg sync.WaitGroup
		for range 32 {
			wg.Go(func() {
				for range 20 {
					_ = b.Call(context.Background(), fail)
				}
			})
		}
		wg.Wait()
		assert.Equal(t, breaker.Open, b.State())
		assert.GreaterOrEqual(t, asked.Load(), int64(100))
		assert.Len(t, changes(), 1, "one trip")
		assert.Equal(t, int64(640), b.Counts().Failure+b.Counts().Rejected)
	})
}
