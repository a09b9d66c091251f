package bulkhead

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A slot can be free while calls are queued only for a moment: between a
// release's add to released and its handing the slot over under the lock.
// A newcomer arriving in that moment must queue behind the waiters, on the
// fast path and on the slow one alike. The moment is made to last here by
// doing the release's two steps by hand.
func TestBulkhead_ANewcomerQueuesBehindWaitersWhileASlotIsBeingHandedOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := New("db", 1, WithMaxWait(time.Minute))
		require.NoError(t, b.acquire(t.Context())) // the holder's slot

		var order []string
		first := make(chan error, 1)
		go func() {
			err := b.acquire(t.Context())
			order = append(order, "waiter")
			first <- err
		}()
		synctest.Wait()
		require.Equal(t, 1, b.Queued())

		b.released.Add(1) // the holder's release, first step: the slot is free
		newcomer := make(chan error, 1)
		go func() {
			err := b.acquire(t.Context())
			order = append(order, "newcomer")
			newcomer <- err
		}()
		synctest.Wait()
		assert.Equal(t, 2, b.Queued(), "the newcomer queued behind the waiter")
		assert.Empty(t, order, "nobody took the free slot")

		b.handOver() // the release's second step
		require.NoError(t, <-first)
		b.release() // the waiter's call ends
		require.NoError(t, <-newcomer)
		b.release()
		assert.Equal(t, []string{"waiter", "newcomer"}, order)
		assert.Zero(t, b.InFlight())
	})
}

// A waiter whose maximum wait runs out, or whose context ends, just as a
// slot reaches it finds the slot its own when it takes the lock to leave the
// queue: it must use it or give it back, never drop it. The test holds the
// lock while the waiter wakes, so that the slot reaches it in between. (No
// bubble: a goroutine blocked on a mutex does not let bubble time pass.)
func TestBulkhead_AWaiterThatWakesAsASlotReachesItKeepsOrReturnsTheSlot(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		wake    func(cancel context.CancelFunc)
		wantErr error
	}{
		{"its wait runs out: it runs", func(context.CancelFunc) {}, nil},
		{"its context ends: it gives the slot back", func(cancel context.CancelFunc) { cancel() }, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := New("db", 1, WithMaxWait(20*time.Millisecond))
			require.NoError(t, b.acquire(context.Background())) // the holder's slot
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			result := make(chan error, 1)
			go func() {
				result <- b.Call(ctx, func(context.Context) error { return nil })
			}()
			require.Eventually(t, func() bool { return b.Queued() == 1 }, 5*time.Second, time.Millisecond, "the waiter never queued")

			b.mu.Lock()
			tt.wake(cancel)
			time.Sleep(40 * time.Millisecond) // the waiter wakes and blocks on the lock
			b.released.Add(1)                 // the holder's release, handing its slot over
			b.grantLocked()
			b.mu.Unlock()

			select {
			case err := <-result:
				assert.Equal(t, tt.wantErr, err)
			case <-time.After(5 * time.Second):
				require.FailNow(t, "the waiter never returned")
			}
			assert.Zero(t, b.InFlight(), "the slot was used and given back, or given back")
			assert.Zero(t, b.Queued())
		})
	}
}
