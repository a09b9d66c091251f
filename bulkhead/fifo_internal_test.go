package bulkhead

import (
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
