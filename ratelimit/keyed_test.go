package ratelimit_test

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/ratelimit"
)

type tenantKey struct{}

func withTenant(ctx context.Context, tenant string) context.Context {
	return context.WithValue(ctx, tenantKey{}, tenant)
}

func tenantOf(ctx context.Context) string {
	tenant, _ := ctx.Value(tenantKey{}).(string)
	return tenant
}

func TestKeyed_EveryKeyHasABucketOfItsOwn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New("api", 2, time.Second, ratelimit.WithKey(tenantOf))
		a, b := withTenant(t.Context(), "a"), withTenant(t.Context(), "b")
		require.NoError(t, l.Call(a, succeed))
		require.NoError(t, l.Call(a, succeed))
		assert.Equal(t, 500*time.Millisecond, retryAfter(t, l.Call(a, succeed)), "a has spent its burst")
		require.NoError(t, l.Call(b, succeed), "b has not")
		require.NoError(t, l.Call(b, succeed))
		require.NoError(t, l.Call(t.Context(), succeed), `no tenant: the key ""`)
		assert.Equal(t, 3, l.Keys())
		time.Sleep(500 * time.Millisecond)
		require.NoError(t, l.Call(a, succeed), "a's token came back")
	})
}

func TestKeyed_AnIdleKeyIsForgottenAndStartsAfreshWithAFullBucket(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// One shard of 100 keys, which first drops idle keys at 64.
		l := ratelimit.New("api", 10, time.Second, ratelimit.WithKey(tenantOf), ratelimit.WithMaxKeys(100))
		for i := range 63 {
			require.NoError(t, l.Call(withTenant(t.Context(), "t"+strconv.Itoa(i)), succeed))
		}
		busy := withTenant(t.Context(), "busy")
		for range 10 {
			require.NoError(t, l.Call(busy, succeed))
		}
		require.Equal(t, 64, l.Keys())

		// 0.9 s later the 63 keys have their burst back; busy has 9 of 10.
		time.Sleep(900 * time.Millisecond)
		require.NoError(t, l.Call(withTenant(t.Context(), "new"), succeed)) // the shard drops its idle keys
		assert.Equal(t, 2, l.Keys(), "busy and new are kept, the idle keys forgotten")
		for range 9 {
			require.NoError(t, l.Call(busy, succeed), "busy keeps its state")
		}
		assert.Equal(t, 100*time.Millisecond, retryAfter(t, l.Call(busy, succeed)))
		for range 10 {
			require.NoError(t, l.Call(withTenant(t.Context(), "t0"), succeed), "a forgotten key has its full burst")
		}
		require.Error(t, l.Call(withTenant(t.Context(), "t0"), succeed), "and no more")
	})
}

func TestKeyed_PastMaxKeysKeysNotTrackedShareOneOverflowLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New("api", 1, time.Minute, ratelimit.WithKey(tenantOf), ratelimit.WithMaxKeys(2))
		call := func(tenant string) error { return l.Call(withTenant(t.Context(), tenant), succeed) }
		require.NoError(t, call("a"))
		require.NoError(t, call("b"))
		require.Equal(t, 2, l.Keys())

		require.NoError(t, call("c"), "c is not tracked: the overflow limit's token")
		assert.Equal(t, time.Minute, retryAfter(t, call("d")), "d shares c's overflow limit")
		assert.Equal(t, time.Minute, retryAfter(t, call("c")))
		assert.Equal(t, time.Minute, retryAfter(t, call("a")), "a keeps its own limit")
		assert.Equal(t, 2, l.Keys(), "no key was added past the maximum")

		// Once the tracked keys are idle there is room again.
		time.Sleep(time.Minute)
		require.NoError(t, call("d"))
		require.NoError(t, call("e"))
		assert.Equal(t, 2, l.Keys())
		assert.Equal(t, time.Minute, retryAfter(t, call("d")), "d has a bucket of its own now")
	})
}

func TestKeyed_IdleKeysAreDroppedAsCallsGoOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New("api", 1, time.Second, ratelimit.WithKey(tenantOf), ratelimit.WithMaxKeys(8))
		for i := range 8 {
			require.NoError(t, l.Call(withTenant(t.Context(), "t"+strconv.Itoa(i)), succeed))
		}
		require.NoError(t, l.Call(withTenant(t.Context(), "late"), succeed), "overflow")
		assert.Equal(t, 8, l.Keys())
		// A second on, every key is idle, and the shard has seen as many
		// calls as it holds keys: the next call drops the idle keys.
		time.Sleep(time.Second)
		require.NoError(t, l.Call(withTenant(t.Context(), "late"), succeed))
		assert.Equal(t, 1, l.Keys(), "only late is tracked")
		for range 2 {
			require.NoError(t, l.Call(withTenant(t.Context(), "other"), succeed))
			time.Sleep(time.Second)
		}
		assert.Equal(t, 1, l.Keys(), "keys that go idle go, even when no new key comes")
	})
}

func TestKeyed_AFloodOfNewKeysFindsTheRoomIdleKeysLeave(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A key that made one call is idle 100ms later; the limiter is
		// full with 8 keys, and drops idle keys after turning 2 away.
		l := ratelimit.New("api", 10, time.Second, ratelimit.WithKey(tenantOf), ratelimit.WithMaxKeys(8))
		for i := range 8 {
			require.NoError(t, l.Call(withTenant(t.Context(), "t"+strconv.Itoa(i)), succeed))
		}
		time.Sleep(200 * time.Millisecond)
		for i := range 2 {
			require.NoError(t, l.Call(withTenant(t.Context(), "new"+strconv.Itoa(i)), succeed), "overflow")
			require.Equal(t, 8, l.Keys())
		}
		require.NoError(t, l.Call(withTenant(t.Context(), "new2"), succeed))
		assert.Equal(t, 1, l.Keys(), "the third new key swept the idle ones away, and took a place")
	})
}

// After a spike of keys, the shards shrink back as traffic goes on: the
// memory the spike took is given back.
func TestKeyed_ASpikeOfKeysGivesItsMemoryBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		heap := func() int64 {
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			return int64(m.HeapAlloc)
		}
		l := ratelimit.New("api", 10, time.Second, ratelimit.WithKey(tenantOf))
		steady := make([]context.Context, 100)
		for i := range steady {
			steady[i] = withTenant(t.Context(), "steady-"+strconv.Itoa(i))
		}
		ctx := t.Context()
		base := heap()
		for i := range ratelimit.DefaultMaxKeys {
			_ = l.Call(withTenant(ctx, "spike-"+strconv.Itoa(i)), succeed)
		}
		spike := heap() - base
		require.Greater(t, spike, int64(2<<20), "the spike's keys take memory")
		for range 30 { // three seconds of steady traffic, 100ms apart
			time.Sleep(100 * time.Millisecond)
			for range ratelimit.DefaultMaxKeys / len(steady) / 10 {
				for _, c := range steady {
					_ = l.Call(c, succeed)
				}
			}
		}
		assert.LessOrEqual(t, l.Keys(), len(steady))
		after := heap() - base
		assert.Less(t, after, spike/4, "held %d bytes after the spike's %d", after, spike)
		runtime.KeepAlive(l)
	})
}

func TestKeyed_AWaiterWhoseContextEndsGivesItsKeysTokenBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New("api", 10, time.Second, ratelimit.Smooth(), ratelimit.WithMaxWait(time.Second), ratelimit.WithKey(tenantOf))
		a := withTenant(t.Context(), "a")
		require.NoError(t, l.Call(a, succeed))
		ctx, cancel := context.WithCancel(a)
		time.AfterFunc(30*time.Millisecond, cancel)
		assert.Same(t, context.Canceled, l.Call(ctx, succeed))
		start := time.Now()
		require.NoError(t, l.Call(a, succeed))
		assert.Equal(t, 70*time.Millisecond, time.Since(start), "a's next caller gets the token back")
		require.NoError(t, l.Call(withTenant(t.Context(), "b"), succeed))
		assert.Equal(t, 70*time.Millisecond, time.Since(start), "b never waited for a")
	})
}

func TestKeyed_NeverAdmitsMoreThanTheRatePlusTheBurstPerKeyInAnySecond(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const goroutines, keys, rate = 300, 6, 50
		l := ratelimit.New("api", rate, time.Second, ratelimit.WithKey(tenantOf))
		start := time.Now()
		logs := make([]*admissionLog, keys)
		for k := range logs {
			logs[k] = &admissionLog{start: start}
		}
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				k := g % keys
				ctx := withTenant(t.Context(), "tenant"+strconv.Itoa(k))
				pause := time.Duration(1+g%20) * time.Millisecond
				for time.Since(start) < 5*time.Second {
					err := l.Call(ctx, logs[k].record)
					if err != nil && !errors.Is(err, ratelimit.ErrLimited) {
						assert.NoError(t, err)
						return
					}
					time.Sleep(pause)
				}
			})
		}
		wg.Wait()
		for k, log := range logs {
			assert.LessOrEqual(t, log.maxInWindow(time.Second), 2*rate, "key %d: admissions in one second", k)
			assert.GreaterOrEqual(t, len(log.at), 5*rate, "key %d: the limit was reached", k)
		}
	})
}

// A million distinct keys, all busy at once, are more than a keyed limiter
// keeps: it tracks at most its maximum, and its memory stops growing there.
func TestKeyed_AMillionDistinctKeysHoldBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("a million calls")
	}
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New("api", 10, time.Second, ratelimit.WithKey(tenantOf))
		ctx := withTenant(t.Context(), "")
		keys := make([]context.Context, 1000)
		heap := func() uint64 {
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			return m.HeapAlloc
		}
		var atMax uint64
		for i := range 1_000_000 {
			if i%len(keys) == 0 {
				for j := range keys {
					keys[j] = withTenant(ctx, "client-"+strconv.Itoa(i+j))
				}
			}
			_ = l.Call(keys[i%len(keys)], succeed)
			if i == 2*ratelimit.DefaultMaxKeys {
				atMax = heap()
			}
		}
		require.LessOrEqual(t, l.Keys(), ratelimit.DefaultMaxKeys)
		assert.Greater(t, l.Keys(), ratelimit.DefaultMaxKeys*9/10, "nearly every shard filled")
		grown := int64(heap()) - int64(atMax)
		assert.Less(t, grown, int64(1<<20), "memory grew by %d bytes after the limit was reached", grown)
		runtime.KeepAlive(l)
	})
}

// Keys that come and go, a million of them over time, never pile up: idle
// keys are dropped as the shards grow.
func TestKeyed_AMillionKeysComingAndGoingArePruned(t *testing.T) {
	if testing.Short() {
		t.Skip("a million calls")
	}
	synctest.Test(t, func(t *testing.T) {
		// Ten calls a second: a key that made one call has its token
		// back, and is idle, 100ms later. A thousand new keys come every
		// 100ms.
		l := ratelimit.New("api", 10, time.Second, ratelimit.WithKey(tenantOf))
		ctx := t.Context()
		most := 0
		for i := range 1_000_000 {
			if i%1000 == 0 {
				time.Sleep(100 * time.Millisecond)
				most = max(most, l.Keys())
			}
			require.NoError(t, l.Call(withTenant(ctx, "client-"+strconv.Itoa(i)), succeed))
		}
		// A thousand keys are busy at any moment; the shards sweep each
		// time they double.
		assert.Less(t, most, 8*1000, "keys tracked at most")
		assert.GreaterOrEqual(t, most, 1000)
	})
}

func TestKeyed_AllocatesNothingForAKeyItTracks(t *testing.T) {
	l := ratelimit.New("api", 1_000_000_000, time.Second, ratelimit.WithKey(tenantOf))
	ctx := withTenant(context.Background(), "tenant-42")
	require.NoError(t, l.Call(ctx, succeed))
	assert.Zero(t, testing.AllocsPerRun(1000, func() { _ = l.Call(ctx, succeed) }))
}
