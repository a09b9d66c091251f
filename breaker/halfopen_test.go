package breaker_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/breaker"
)

// A tunable half-open state (issue 12): WithHalfOpen(probes, successes) lets
// up to probes calls through at once and closes after successes of them
// succeed; any failed probe reopens. The default stays one and one
// (breaker_test.go).

// halfOpenBreaker returns a half-open breaker made WithHalfOpen(probes,
// successes), with a listener. Only inside a bubble.
func halfOpenBreaker(t *testing.T, probes, successes int) (*breaker.Breaker, func() []breaker.StateChange) {
	t.Helper()
	listen, changes := recordChanges()
	b := newBreaker(breaker.WithHalfOpen(probes, successes), listen)
	toHalfOpen(t, b)
	return b, changes
}

func TestHalfOpen_LetsProbesThroughAtOnceUpToTheLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, changes := halfOpenBreaker(t, 3, 3)
		probes := []func() error{blockedCall(b, nil), blockedCall(b, nil), blockedCall(b, nil)}

		openErr := requireOpenError(t, b.Call(context.Background(), succeed))
		assert.Equal(t, breaker.HalfOpen, openErr.State(), "a fourth call while three probes are in flight")

		require.NoError(t, probes[0]())
		require.NoError(t, probes[1]())
		assert.Equal(t, breaker.HalfOpen, b.State(), "two successes of the three needed")
		require.NoError(t, probes[2]())
		assert.Equal(t, breaker.Closed, b.State())
		assert.Equal(t, []string{"closed->open", "open->half-open", "half-open->closed"}, edges(changes()))
		assert.Equal(t, breaker.Counts{Success: 3, Failure: 3, Rejected: 1}, b.Counts())
	})
}

func TestHalfOpen_ClosesOnceTheSuccessesAreInAndIgnoresTheRest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, _ := halfOpenBreaker(t, 3, 2)
		probes := []func() error{blockedCall(b, nil), blockedCall(b, nil), blockedCall(b, errDown)}
		require.NoError(t, probes[0]())
		require.NoError(t, probes[1]())
		require.Equal(t, breaker.Closed, b.State(), "2 of 2 successes")

		require.ErrorIs(t, probes[2](), errDown)
		assert.Equal(t, breaker.Closed, b.State(), "the third probe's failure belongs to the half-open period")
		assert.Equal(t, int64(1), b.Counts().Ignored, "and is counted ignored")
		assert.Zero(t, b.Window().ConsecutiveFailures)
	})
}

func TestHalfOpen_AnyFailedProbeReopens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, changes := halfOpenBreaker(t, 3, 3)
		probes := []func() error{blockedCall(b, nil), blockedCall(b, errDown), blockedCall(b, nil)}
		require.NoError(t, probes[0]())
		require.ErrorIs(t, probes[1](), errDown)
		assert.Equal(t, breaker.Open, b.State())
		require.NoError(t, probes[2]())
		assert.Equal(t, breaker.Open, b.State(), "a success of the ended half-open period changes nothing")

		got := changes()
		require.Len(t, got, 3)
		assert.Equal(t, 1, got[2].ConsecutiveFailures, "a failed probe is one failure")
	})
}

func TestHalfOpen_AProbeThatEndsFreesItsPlace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, _ := halfOpenBreaker(t, 2, 2)
		first, second := blockedCall(b, nil), blockedCall(b, nil)
		requireOpenError(t, b.Call(context.Background(), succeed))

		require.NoError(t, first())
		third := blockedCall(b, nil) // the first's place
		requireOpenError(t, b.Call(context.Background(), succeed))

		require.NoError(t, second())
		assert.Equal(t, breaker.Closed, b.State(), "two successes")
		require.NoError(t, third())
		assert.Equal(t, breaker.Counts{Success: 2, Failure: 3, Rejected: 2, Ignored: 1}, b.Counts(), "the third probe ended after the close: ignored")
	})
}

func TestHalfOpen_AnIgnoredProbeFreesItsPlaceWithoutCounting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, _ := halfOpenBreaker(t, 2, 2)
		require.NoError(t, b.Call(context.Background(), succeed))
		require.ErrorIs(t, b.Call(context.Background(), invalidIgnored), errInvalid)
		assert.Equal(t, breaker.HalfOpen, b.State(), "one success, and a call that counts neither way")
		require.NoError(t, b.Call(context.Background(), succeed))
		assert.Equal(t, breaker.Closed, b.State())
	})
}

func invalidIgnored(ctx context.Context) error { return breaker.Ignored(invalid(ctx)) }

// The stale-probe rule with several probes: once every place is held and
// the oldest probe has been in flight for an open timeout, the half-open
// period starts afresh; the probes of the old one, and their successes,
// no longer count.
func TestHalfOpen_ProbesThatOutliveTheOpenTimeoutGiveWayTogether(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, changes := halfOpenBreaker(t, 2, 2)
		require.NoError(t, b.Call(context.Background(), succeed)) // one success in the first half-open period
		hung := blockedCall(b, nil)
		elapse(time.Second)
		late := blockedCall(b, nil)
		elapse(breaker.DefaultOpenTimeout - time.Second - 1)
		requireOpenError(t, b.Call(context.Background(), succeed)) // a nanosecond short: the places are held

		elapse(1)
		fresh := blockedCall(b, nil) // the oldest probe has held its place an open timeout
		require.NoError(t, late(), "the late probes' callers get their results")
		require.NoError(t, hung())
		assert.Equal(t, breaker.HalfOpen, b.State(), "their successes, and the earlier one, count no more")
		assert.Equal(t, int64(2), b.Counts().Ignored)

		require.NoError(t, fresh())
		assert.Equal(t, breaker.HalfOpen, b.State(), "one success of the fresh period")
		require.NoError(t, b.Call(context.Background(), succeed))
		assert.Equal(t, breaker.Closed, b.State())
		assert.Equal(t, []string{"closed->open", "open->half-open", "half-open->closed"}, edges(changes()), "a fresh half-open period is no transition")
	})
}

// Under -race: 64 goroutines call a half-open breaker at once, its probes
// ending neutral (so it neither closes nor reopens); never more than the
// limit are in flight.
func TestHalfOpen_NeverMoreProbesInFlightThanTheLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const limit = 4
		b, _ := halfOpenBreaker(t, limit, limit)
		var inFlight, most, ran atomic.Int64
		var wg sync.WaitGroup
		for range 64 {
			wg.Go(func() {
				for range 50 {
					_ = b.Call(context.Background(), func(context.Context) error {
						n := inFlight.Add(1)
						for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
						}
						ran.Add(1)
						time.Sleep(time.Millisecond) // lets the others pile up
						inFlight.Add(-1)
						return breaker.Ignored(errors.New("neutral"))
					})
				}
			})
		}
		wg.Wait()
		assert.LessOrEqual(t, most.Load(), int64(limit))
		assert.Equal(t, int64(limit), most.Load(), "the limit was reached")
		assert.Equal(t, breaker.HalfOpen, b.State())
		c := b.Counts()
		assert.Equal(t, ran.Load(), c.Ignored)
		assert.Equal(t, int64(64*50), c.Ignored+c.Rejected)
	})
}
