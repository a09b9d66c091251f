package ratelimit

import (
	"context"
	"hash/maphash"
	"runtime"
	"sync"
	"sync/atomic"
)

// keyedLimits are the buckets of a keyed limiter: one theoretical arrival
// time per key, in shards that each hold a map under a mutex of their own,
// so that calls of different keys seldom meet on one lock.
//
// A key is known by its 64-bit hash, under a seed of the limiter's own
// (hash/maphash), not by its bytes: a key costs 24 bytes (and the map's
// overhead) whatever its length, nothing is allocated for a new key, and
// the shards hold no pointers for the collector to trace. Two keys share a bucket only if
// their hashes are equal: for a million keys tracked at once, odds of about
// one in thirty million that any two do, and the seed, random per limiter
// and never shown, keeps callers from choosing keys that collide.
//
// A key whose theoretical arrival time has passed has its whole burst back,
// which is how a key the limiter has never seen starts: such idle keys are
// forgotten without changing any decision. A shard drops its idle keys
// (a sweep, which costs a look at each of its keys):
//   - each time it doubles;
//   - once it has seen as many calls as it holds keys, and idleAfter (the
//     longest a key can stay busy after its last call) has passed since
//     its last sweep, so that keys a spike left behind go as traffic goes on;
//   - when the limiter holds its maximum of keys and the shard meets new
//     ones, once per quarter of its share of the maximum in new keys turned
//     away, so that a flood of new keys finds the room idle keys leave.
//
// Each sweep is paid for by as many calls as it looks at keys. A shard that
// has shrunk below a quarter of its peak is rebuilt, so a spike of keys does
// not hold its memory for good.
type keyedLimits struct {
	key       func(context.Context) string
	seed      maphash.Seed
	shards    []keyShard
	shardMask uint64
	maxKeys   int64
	// sweepEvery is how many new keys a shard turns away, while the
	// limiter is full, before it looks for idle keys again.
	sweepEvery int
	idleAfter  int64 // a key admitted at t is idle by t + idleAfter
	// tracked is how many keys the shards hold together; it changes only
	// when a key is added or dropped.
	tracked atomic.Int64
}

type keyShard struct {
	mu sync.Mutex
	// slots gives a key hash's slot in tats, the theoretical arrival
	// times. A call only reads the map: a Go map notes every write in its
	// header, and the headers of the shards' maps, allocated together,
	// share cache lines. tats grows by doubling, from 16, so that its
	// array always fills whole cache lines of its own; free lists the
	// slots of dropped keys.
	slots map[uint64]int32
	tats  []int64
	free  []int32
	// sweepAt is the size at which the shard next drops its idle keys,
	// and peak the most keys it has held since its map was made.
	sweepAt, peak int
	// lastSweep is when the shard last dropped its idle keys; calls and
	// turnedAway are how many calls it has seen and how many new keys it
	// has sent to the overflow limit since.
	lastSweep         int64
	calls, turnedAway int
	// admitted counts the calls the shard let through at once, and
	// overflows the calls it sent to the overflow limit.
	admitted, overflows int64
	_                   [cacheLine]byte
}

const (
	// maxShards bounds the shards of a limiter.
	maxShards = 64
	// firstSweep is the size at which a shard first drops idle keys.
	firstSweep = 64
)

// newKeyedLimits cuts the keys into four shards per processor, so that
// concurrent calls of different keys seldom share a lock, but never into
// shards of a share of the maximum too small to drop idle keys as they grow.
func newKeyedLimits(key func(context.Context) string, maxKeys int, idleAfter int64) *keyedLimits {
	shards := 1
	for shards < maxShards && shards < 4*runtime.GOMAXPROCS(0) && maxKeys/(shards*2) >= firstSweep {
		shards *= 2
	}
	k := &keyedLimits{
		key:        key,
		seed:       maphash.MakeSeed(),
		shards:     make([]keyShard, shards),
		shardMask:  uint64(shards - 1),
		maxKeys:    int64(maxKeys),
		sweepEvery: max(maxKeys/shards/4, 1),
		idleAfter:  idleAfter,
	}
	for i := range k.shards {
		k.shards[i].slots = make(map[uint64]int32)
		k.shards[i].sweepAt = firstSweep
	}
	return k
}

// admitKeyed decides a call of a keyed limiter: by its key's bucket, or by
// the limiter's own, shared, bucket when the key is not tracked and there is
// no room for it.
func (l *Limiter) admitKeyed(ctx context.Context) error {
	ks := l.keys
	key := ks.key(ctx)
	now := l.now()
	hash := maphash.String(ks.seed, key)
	sh := &ks.shards[hash>>58&ks.shardMask] // the map uses the low bits
	sh.mu.Lock()
	if sh.calls++; sh.calls >= len(sh.slots) && now-sh.lastSweep >= ks.idleAfter && len(sh.slots) > 0 {
		sh.sweep(ks, now)
	}
	slot, tracked := sh.slots[hash]
	if !tracked {
		var ok bool
		if slot, ok = sh.add(ks, hash, now); !ok {
			sh.overflows++
			sh.mu.Unlock()
			return l.admitOverflow(ctx, now)
		}
	}
	tat := sh.tats[slot]
	if tat-l.tolerance <= now {
		sh.tats[slot] = max(tat, now) + l.interval
		sh.admitted++
		sh.mu.Unlock()
		return nil
	}
	wait := tat - l.tolerance - now
	if !l.mayWait(ctx, now, wait) {
		sh.mu.Unlock()
		return l.reject(ctx, wait)
	}
	reserved := tat + l.interval
	sh.tats[slot] = reserved
	sh.mu.Unlock()
	return l.wait(ctx, wait, func() {
		sh.mu.Lock()
		// The key is busy until its reservation passes, so it is still
		// tracked, perhaps in another slot if the shard was rebuilt;
		// later reservations keep the token.
		if slot, ok := sh.slots[hash]; ok && sh.tats[slot] == reserved {
			sh.tats[slot] = tat
		}
		sh.mu.Unlock()
	})
}

// admitOverflow decides a call by the limiter's own bucket, the overflow
// limit of a keyed limiter.
func (l *Limiter) admitOverflow(ctx context.Context, now int64) error {
	for {
		tat := l.tat.Load()
		if tat-l.tolerance <= now {
			if l.tat.CompareAndSwap(tat, max(tat, now)+l.interval) {
				l.admitted.Add(1)
				return nil
			}
			continue
		}
		wait := tat - l.tolerance - now
		if !l.mayWait(ctx, now, wait) {
			return l.reject(ctx, wait)
		}
		if l.tat.CompareAndSwap(tat, tat+l.interval) {
			return l.wait(ctx, wait, func() { l.tat.CompareAndSwap(tat+l.interval, tat) })
		}
	}
}

// add gives the key hash a slot with a full bucket, dropping idle keys
// first when the shard is due to, or reports that there is no room. Called
// with sh.mu held.
func (sh *keyShard) add(ks *keyedLimits, hash uint64, now int64) (int32, bool) {
	if len(sh.slots) >= sh.sweepAt {
		sh.sweep(ks, now)
	}
	for {
		n := ks.tracked.Load()
		if n < ks.maxKeys {
			if ks.tracked.CompareAndSwap(n, n+1) {
				break
			}
			continue
		}
		if sh.turnedAway >= ks.sweepEvery && sh.sweep(ks, now) > 0 {
			continue
		}
		sh.turnedAway++
		return 0, false
	}
	var slot int32
	if last := len(sh.free) - 1; last >= 0 {
		// A free slot is a dropped key's, whose arrival time has passed:
		// a full bucket, as a new key's is.
		slot, sh.free = sh.free[last], sh.free[:last]
	} else {
		if len(sh.tats) == cap(sh.tats) {
			tats := make([]int64, len(sh.tats), max(2*cap(sh.tats), minSlots))
			copy(tats, sh.tats)
			sh.tats = tats
		}
		slot = int32(len(sh.tats))
		sh.tats = append(sh.tats, 0)
	}
	sh.slots[hash] = slot
	sh.peak = max(sh.peak, len(sh.slots))
	return slot, true
}

// minSlots is the least capacity of a shard's tats: 128 bytes, two whole
// cache lines. Doubling keeps every capacity a multiple of it.
const minSlots = 16

// sweep drops the shard's idle keys and returns how many it dropped. It
// rebuilds the shard when it holds under a quarter of what it once did.
func (sh *keyShard) sweep(ks *keyedLimits, now int64) int {
	before := len(sh.slots)
	for hash, slot := range sh.slots {
		if sh.tats[slot] <= now {
			delete(sh.slots, hash)
			sh.free = append(sh.free, slot)
		}
	}
	n := len(sh.slots)
	ks.tracked.Add(int64(n - before))
	if sh.peak >= 4*firstSweep && n < sh.peak/4 {
		size := minSlots
		for size < 2*n {
			size *= 2
		}
		slots := make(map[uint64]int32, 2*n)
		tats := make([]int64, 0, size)
		for hash, slot := range sh.slots {
			slots[hash] = int32(len(tats))
			tats = append(tats, sh.tats[slot])
		}
		sh.slots, sh.tats, sh.free, sh.peak = slots, tats, nil, n
	}
	sh.sweepAt = max(2*n, firstSweep)
	sh.lastSweep, sh.calls, sh.turnedAway = now, 0, 0
	return before - n
}

// count returns the keys tracked now.
func (ks *keyedLimits) count() int { return int(ks.tracked.Load()) }

// admittedCount returns the calls the shards let through at once, and
// overflowCount those they sent to the overflow limit.
func (ks *keyedLimits) admittedCount() int64 {
	return ks.sum(func(sh *keyShard) int64 { return sh.admitted })
}

func (ks *keyedLimits) overflowCount() int64 {
	return ks.sum(func(sh *keyShard) int64 { return sh.overflows })
}

func (ks *keyedLimits) sum(of func(*keyShard) int64) int64 {
	var n int64
	for i := range ks.shards {
		sh := &ks.shards[i]
		sh.mu.Lock()
		n += of(sh)
		sh.mu.Unlock()
	}
	return n
}
