package ratelimit

import (
	"context"
	"strconv"
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

// Keys that come and go reuse the slots of the keys dropped before them:
// a shard's arrival times grow with the keys it holds at once, not with
// every key it has seen.
func TestKeyed_KeysComingAndGoingReuseTheirSlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var key string
		// A key is idle a second after its one call, and a thousand new
		// keys come every 100ms: about 10 000 are busy at any moment, and
		// each sweep drops about half of a shard's keys.
		l := New("api", 1, time.Second, WithKey(func(context.Context) string { return key }))
		for i := range 300_000 {
			if i%1000 == 0 {
				time.Sleep(100 * time.Millisecond)
			}
			key = "client-" + strconv.Itoa(i)
			require.NoError(t, l.Call(t.Context(), func(context.Context) error { return nil }))
		}
		slots := 0
		for i := range l.keys.shards {
			slots += len(l.keys.shards[i].tats)
		}
		assert.Less(t, slots, 4*10_000, "slots for 300 000 keys, 10 000 at a time")
	})
}
