package retry_test

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

	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/retry"
)

func succeed(context.Context) (int, error) { return 1, nil }

// budgeted returns a pipeline that retries at once, as often as b allows
// (up to 100 attempts), calling dep.
func budgeted(b *retry.Budget, dep *dependency) resilience.Func[int] {
	return resilience.Wrap(dep.call, retry.Policy[int](retry.WithBudget(b), retry.WithDelay(0), retry.WithMaxAttempts(100)))
}

// successes makes n calls that succeed at once through a pipeline holding
// b: n first attempts deposited.
func successes(t *testing.T, b *retry.Budget, n int) {
	t.Helper()
	get := resilience.Wrap(succeed, retry.Policy[int](retry.WithBudget(b)))
	for range n {
		_, err := get(t.Context())
		require.NoError(t, err)
	}
}

func TestBudget_ARefusedRetryReturnsAtOnceMatchingErrBudgetExhaustedAndTheLastError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := retry.NewBudget(0.5, 0) // one first attempt earns half a retry
		dep := newDependency(errDown)
		start := time.Now()
		_, err := resilience.WrapWith(resilience.Telemetry{Name: "pricing"}, dep.call, retry.Policy[int](retry.WithBudget(b)))(t.Context())

		assert.Zero(t, time.Since(start), "no delay is waited for a retry that will not be made")
		assert.Equal(t, 1, dep.calls())
		assert.ErrorIs(t, err, retry.ErrBudgetExhausted)
		assert.ErrorIs(t, err, errDown)
		var retryErr *retry.Error
		require.ErrorAs(t, err, &retryErr)
		assert.Equal(t, 1, retryErr.Attempts)
		assert.EqualError(t, err, `levee: retry "pricing": retry budget exhausted after 1 attempt: dependency down`)
	})
}

func TestBudget_RetriesUpToTheRatioOfRecentFirstAttemptsAndTheWindowSlides(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := retry.NewBudget(0.5, 0)

		// At 0s: 20 successes and a failing call deposit 21 first
		// attempts, worth 10.5 retries: the failing call makes 10.
		successes(t, b, 20)
		dep := newDependency(errDown)
		_, err := budgeted(b, dep)(t.Context())
		require.ErrorIs(t, err, retry.ErrBudgetExhausted)
		assert.Equal(t, 11, dep.calls(), "at 0s")

		// At 9.9s the first attempts of 0s still count: a new failing
		// call's deposit brings the credit to 11 - 10 = 1 retry.
		time.Sleep(9900 * time.Millisecond)
		dep = newDependency(errDown)
		_, err = budgeted(b, dep)(t.Context())
		require.ErrorIs(t, err, retry.ErrBudgetExhausted)
		assert.Equal(t, 2, dep.calls(), "at 9.9s")

		// At 10s they have left the window, and so have the retries they
		// paid for: what is left is the call of 9.9s and its retry.
		time.Sleep(100 * time.Millisecond)
		dep = newDependency(errDown)
		_, err = budgeted(b, dep)(t.Context())
		require.ErrorIs(t, err, retry.ErrBudgetExhausted)
		assert.Equal(t, 1, dep.calls(), "at 10s")

		// At 25s the window is empty: 4 successes and the failing call
		// earn 2.5 retries.
		time.Sleep(15 * time.Second)
		successes(t, b, 4)
		dep = newDependency(errDown)
		_, err = budgeted(b, dep)(t.Context())
		require.ErrorIs(t, err, retry.ErrBudgetExhausted)
		assert.Equal(t, 3, dep.calls(), "at 25s")
	})
}

func TestBudget_TheFloorAllowsMinPerSecondWhateverTheRatio(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := retry.NewBudget(0.1, 4) // one call earns 0.1 retry: only the floor pays

		dep := newDependency(errDown)
		_, err := budgeted(b, dep)(t.Context())
		require.ErrorIs(t, err, retry.ErrBudgetExhausted)
		assert.Equal(t, 5, dep.calls(), "a fresh budget has a second's worth of floor")

		time.Sleep(500 * time.Millisecond)
		dep = newDependency(errDown)
		_, err = budgeted(b, dep)(t.Context())
		require.ErrorIs(t, err, retry.ErrBudgetExhausted)
		assert.Equal(t, 3, dep.calls(), "half a second refills half of it")

		time.Sleep(time.Minute)
		dep = newDependency(errDown)
		_, err = budgeted(b, dep)(t.Context())
		require.ErrorIs(t, err, retry.ErrBudgetExhausted)
		assert.Equal(t, 5, dep.calls(), "a quiet minute refills one second's worth, no more")
	})
}

func TestBudget_HundredsOfConcurrentCallsShareExactlyTheirRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			healthy = 400 // calls that succeed
			failing = 200 // calls that fail every attempt
			floor   = 10
		)
		b := retry.NewBudget(0.2, floor)
		var firstAttempts sync.WaitGroup
		firstAttempts.Add(failing)
		var attempts atomic.Int64
		var wg sync.WaitGroup
		for range healthy {
			wg.Go(func() {
				_, err := resilience.Wrap(succeed, retry.Policy[int](retry.WithBudget(b)))(t.Context())
				assert.NoError(t, err)
			})
		}
		wg.Wait()
		var refused atomic.Int64
		for range failing {
			wg.Go(func() {
				first := true
				get := resilience.Wrap(func(ctx context.Context) (int, error) {
					attempts.Add(1)
					if first {
						// Every failing call has deposited its first
						// attempt before any retries: the budget's answers
						// do not depend on the interleaving.
						first = false
						firstAttempts.Done()
						firstAttempts.Wait()
					}
					return 0, errDown
				}, retry.Policy[int](retry.WithBudget(b), retry.WithDelay(0)))
				_, err := get(t.Context())
				var retryErr *retry.Error
				assert.ErrorAs(t, err, &retryErr)
				if errors.Is(err, retry.ErrBudgetExhausted) {
					refused.Add(1)
				}
			})
		}
		wg.Wait()

		// 600 first attempts earn 120 retries, and the floor 10 more.
		assert.Equal(t, int64(failing+120+floor), attempts.Load())
		assert.Greater(t, refused.Load(), int64(0))
	})
}

func TestBudget_PipelinesOfDifferentTypesShareOneBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := retry.NewBudget(0.5, 0)
		names := resilience.Wrap(func(context.Context) (string, error) { return "ok", nil }, retry.Policy[string](retry.WithBudget(b)))
		for range 3 {
			_, err := names(t.Context())
			require.NoError(t, err)
		}
		dep := newDependency(errDown)
		_, err := budgeted(b, dep)(t.Context())
		require.ErrorIs(t, err, retry.ErrBudgetExhausted)
		assert.Equal(t, 3, dep.calls(), "4 first attempts, 3 of them by a Policy[string], earn 2 retries")
	})
}
