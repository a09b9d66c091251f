package budget

import (
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// withdrawals takes retries from b until it refuses, at most limit, and
// returns how many it allowed.
func withdrawals(b *Budget, limit int) int {
	n := 0
	for n < limit && b.TryWithdraw() {
		n++
	}
	return n
}

func deposit(b *Budget, n int) {
	for range n {
		b.Deposit()
	}
}

func TestBudget_AllowsTheRatioOfDepositsThenTheFloor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := New(0.25, 3)
		deposit(b, 40)
		assert.Equal(t, 13, withdrawals(b, 100), "10 from the ratio, 3 from the floor")
	})
}

func TestBudget_AnEmptyBudgetWithoutFloorRefuses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := New(1, 0)
		assert.False(t, b.TryWithdraw())
		b.Deposit()
		assert.True(t, b.TryWithdraw())
		assert.False(t, b.TryWithdraw())
	})
}

func TestBudget_ADepositCountsForTenSecondsAtMostAndNineAtLeast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		early, late := New(1, 0), New(1, 0)
		time.Sleep(500 * time.Millisecond)
		for _, b := range []*Budget{early, late} {
			deposit(b, 5)
			foldNow(b) // at 0.5s: the deposits are credited to the first bucket
		}

		time.Sleep(9400 * time.Millisecond)
		assert.Equal(t, 5, withdrawals(early, 100), "at 9.9s the deposits of 0.5s count")
		time.Sleep(100 * time.Millisecond)
		assert.Zero(t, withdrawals(late, 100), "at 10s the first bucket has left the window")
	})
}

// foldNow brings b's buckets up to now, as a withdrawal does first.
func foldNow(b *Budget) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fold(b.now())
}

func TestBudget_PendingDepositsAreCreditedAsMadeSinceTheFirstOfThem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := New(0.1, 0)
		require.False(t, b.TryWithdraw(), "folds at 0s")
		time.Sleep(15 * time.Second)
		deposit(b, 100) // at 15s
		time.Sleep(5 * time.Second)
		// Credited over [15s, 20s], all inside the window; credited over
		// [0s, 20s], since the last fold, only 45 would be.
		assert.Equal(t, 10, withdrawals(b, 100))
	})
}

func TestBudget_PendingDepositsOfALongQuietStretchAreSpreadOverIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := New(1, 0)
		deposit(b, 1000) // at 0s, never folded
		time.Sleep(20 * time.Second)
		// The fold at 20s knows only that they were made since 0s: it
		// credits them evenly over [0s, 20s], the window's 9 seconds
		// [11s, 20s] holding 450 of them.
		assert.Equal(t, 450, withdrawals(b, 1000))
	})
}

func TestBudget_EveryThousandTwentyFourthDepositFolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := New(1, 0)
		deposit(b, 2*foldEvery) // at 0s: folded at 0s by the deposits themselves
		time.Sleep(20 * time.Second)
		assert.Zero(t, withdrawals(b, 1000), "credited at 0s, they have left the window")
	})
}

func TestBudget_TheFloorRefillsAtMinPerSecondUpToOneSecondsWorth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := New(1, 10)
		assert.Equal(t, 10, withdrawals(b, 100), "a fresh budget")
		time.Sleep(300 * time.Millisecond)
		assert.Equal(t, 3, withdrawals(b, 100))
		time.Sleep(time.Hour)
		assert.Equal(t, 10, withdrawals(b, 100))
	})
}

func TestBudget_ConcurrentDepositsAndWithdrawalsNeverExceedTheBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const goroutines, each = 300, 50
		b := New(0.2, 5)
		var allowed atomic.Int64
		var wg sync.WaitGroup
		for range goroutines {
			wg.Go(func() {
				for range each {
					b.Deposit()
					if b.TryWithdraw() {
						allowed.Add(1)
					}
				}
			})
		}
		wg.Wait()
		// No time passes in the bubble: the window holds every deposit,
		// worth 3000 retries, and the floor 5 more. Some were refused while
		// the deposits that pay for them were still to come; they are
		// still there.
		const worth = 0.2*goroutines*each + 5
		assert.LessOrEqual(t, allowed.Load(), int64(worth))
		assert.Equal(t, int64(worth), allowed.Load()+int64(withdrawals(b, 10000)))
	})
}

// Snapshot counts every deposit and every retry paid by the ratio, and the
// window's surplus; the floor's retries are not the ratio's.
func TestBudget_SnapshotCountsDepositsAndRatioWithdrawals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := New(0.5, 2)
		deposit(b, 10)
		assert.Equal(t, 7, withdrawals(b, 100), "5 from the ratio, 2 from the floor")
		s := b.Snapshot()
		assert.Equal(t, int64(10), s.Deposits)
		assert.Equal(t, int64(5), s.Withdrawals)
		assert.Equal(t, int64(8), s.Asked, "7 allowed, 1 refused")
		assert.InDelta(t, 10, s.WindowDeposits, 1e-9)
		assert.InDelta(t, 0, s.Surplus, 1e-9)
		time.Sleep(Window + time.Second)
		s = b.Snapshot()
		assert.Equal(t, int64(10), s.Deposits, "totals never leave")
		assert.InDelta(t, 0, s.WindowDeposits, 1e-9, "the window does")
	})
}

// A fleet's credit adds retries the budget's own counts do not allow (or
// takes some away), and its floor share replaces the floor.
func TestBudget_SetFleetAddsCreditAndSetsTheFloor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := New(0.5, 10)
		deposit(b, 4)
		b.SetFleet(3, 0)
		assert.Equal(t, 5, withdrawals(b, 100), "2 of its own and 3 the fleet spares; no floor")

		c := New(0.5, 10)
		deposit(c, 4)
		c.SetFleet(-2, 0)
		assert.Equal(t, 0, withdrawals(c, 100), "the rest of the fleet overspent what this one earned")

		d := New(1, 10)
		d.SetFleet(0, 0.5)
		assert.Equal(t, 1, withdrawals(d, 100), "a share below one a second still holds one retry")
		time.Sleep(time.Second)
		assert.Equal(t, 0, withdrawals(d, 100), "and refills at half a retry a second")
		time.Sleep(time.Second)
		assert.Equal(t, 1, withdrawals(d, 100))

		d.SetFleet(0, 10)
		time.Sleep(time.Second)
		assert.Equal(t, 10, withdrawals(d, 100), "SetFleet(0, minPerSecond) is the budget alone again")
		assert.Equal(t, 1.0, d.Ratio())
		assert.Equal(t, 10.0, d.MinPerSecond())
	})
}
