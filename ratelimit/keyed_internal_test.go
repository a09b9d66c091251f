package ratelimit

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A sweep looks at every key of its shard: it must be paid for by as many
// calls, however long the shard has gone without one, so that a rare call
// never pays for a large shard alone.
func TestKeyed_ASweepIsPaidForByAsManyCallsAsTheShardHoldsKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New("api", 1, time.Second, WithKey(func(context.Context) string { return "k" }), WithMaxKeys(100))
		require.Len(t, l.keys.shards, 1)
		sh := &l.keys.shards[0]
		time.Sleep(time.Hour)
		for i := range 50 { // busy keys, and an hour since the last sweep
			sh.slots[uint64(i)+1] = int32(len(sh.tats))
			sh.tats = append(sh.tats, int64(2*time.Hour))
		}
		l.keys.tracked.Store(50)

		// The first call adds k: 51 keys.
		for i := range 50 {
			require.NoError(t, l.Call(t.Context(), func(context.Context) error { return nil }))
			require.Zero(t, sh.lastSweep, "no sweep after %d calls", i+1)
			time.Sleep(time.Second)
		}
		require.NoError(t, l.Call(t.Context(), func(context.Context) error { return nil }))
		assert.NotZero(t, sh.lastSweep, "the fifty-first call sweeps")
		assert.Equal(t, 51, l.Keys(), "the busy keys stay, and so does k")
	})
}
