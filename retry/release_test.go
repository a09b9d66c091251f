package retry_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/internal/testkit"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/retry"
)

// holding is an error that holds a resource, as leveehttp's error for a
// failing response holds the response: it records when it was released,
// on the clock of the test's bubble.
type holding struct {
	attempt  int
	start    time.Time
	released []time.Duration
}

func (e *holding) Error() string { return fmt.Sprintf("attempt %d failed", e.attempt) }
func (e *holding) Release()      { e.released = append(e.released, time.Since(e.start)) }

func TestRetry_ReleasesAFailedAttemptsErrorBeforeWaitingToTryAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var failures []*holding
		call := func(context.Context) (int, error) {
			err := &holding{attempt: len(failures) + 1, start: start}
			failures = append(failures, err)
			return 0, err
		}

		_, err := resilience.Wrap(call, retry.Policy[int](retry.WithDelay(time.Second)))(t.Context())

		require.Len(t, failures, 3)
		assert.Equal(t, []time.Duration{0}, failures[0].released, "at once, not after the delay")
		assert.Equal(t, []time.Duration{time.Second}, failures[1].released)
		assert.Empty(t, failures[2].released, "the last attempt's error is the call's: it still holds what it holds")
		var last *holding
		require.ErrorAs(t, err, &last)
		assert.Same(t, failures[2], last)
	})
}

func TestRetry_ReleasesEveryErrorInTheTree(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		first, second := &holding{attempt: 1}, &holding{attempt: 2}
		calls := 0
		call := func(context.Context) (int, error) {
			calls++
			if calls == 1 {
				// A hedge's error holds each attempt's.
				return 0, fmt.Errorf("hedged: %w", errors.Join(first, errors.New("reset"), second))
			}
			return calls, nil
		}

		v, err := resilience.Wrap(call, retry.Policy[int](retry.WithDelay(0)))(t.Context())

		require.NoError(t, err)
		assert.Equal(t, 2, v)
		assert.Len(t, first.released, 1)
		assert.Len(t, second.released, 1)
	})
}

func TestRetry_ReleasesNothingItDoesNotRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		held := &holding{attempt: 1}
		call := func(context.Context) (int, error) { return 0, retry.Permanent(held) }

		_, err := resilience.Wrap(call, retry.Policy[int]())(t.Context())

		require.ErrorIs(t, err, held)
		assert.Empty(t, held.released)
	})
}

// panickyRelease is an error whose Release method panics.
type panickyRelease struct{}

func (panickyRelease) Error() string { return "panicky" }
func (panickyRelease) Release()      { panic("cannot let go") }

func TestRetry_AReleaseThatPanicsIsReportedAndTheRetryGoesOn(t *testing.T) {
	otelErrs := testkit.CaptureOTelErrors(t)
	synctest.Test(t, func(t *testing.T) {
		dep := newDependency(panickyRelease{}, nil)

		v, err := resilience.Wrap(dep.call, retry.Policy[int](retry.WithDelay(0)))(t.Context())

		require.NoError(t, err)
		assert.Equal(t, 2, v)
	})
	reported := otelErrs.Take()
	require.Len(t, reported, 1)
	assert.ErrorContains(t, reported[0], "cannot let go")
}
