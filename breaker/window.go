package breaker

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// A window holds the outcomes of a closed period's recent calls, for the
// trip rules and the rate gauges: the last n calls (countWindow) or the
// calls of the last d (timeWindow). Each closed period has a window of its
// own, so a call admitted before a transition or a Reset, that returns
// after it, cannot touch the window of the period that follows. Both are
// built so that a successful call, the common case, costs one or two
// atomic operations on a cache line its core mostly has to itself, and no
// lock; the reads, which only failures, slow calls and the gauges make,
// visit every stripe and bucket instead.

// stripedCounter is a count that calls on every core add to: like
// outcomeCounts, striped across cache lines, the first left empty, and
// allocated on its own (576 bytes: a size class that starts on a line).
type stripedCounter struct {
	_       [cacheLine]byte
	stripes [countStripes]struct {
		n atomic.Int64
		_ [cacheLine - 8]byte
	}
}

func (c *stripedCounter) add() { c.addAt(stripeHint(uintptr(unsafe.Pointer(c)))) }

// addAt adds one in the given stripe: the breaker's counts', for a call that
// adds to both.
func (c *stripedCounter) addAt(stripe uint64) { c.stripes[stripe].n.Add(1) }

func (c *stripedCounter) load() int64 {
	var sum int64
	for i := range c.stripes {
		sum += c.stripes[i].n.Load()
	}
	return sum
}

// countWindow is a window of the last size calls.
//
// It keeps no ring of every call's outcome: that needs one cursor that every
// call advances, a cache line all the cores calling a breaker would take
// turns to own. Instead successes are only counted (striped, like the
// breaker's counts), and the rarer events, failures and slow calls, are
// kept in rings of their own with the number of the call each was (the
// count of calls at that moment). The window's calls are then min(calls,
// size), and its failures those whose number is above calls - size. With
// one call at a time the counts are exact; with calls in flight at once
// they are as exact as "the last size calls" can be when calls overlap: a
// failure is numbered by the calls other cores had counted when it ended.
type countWindow struct {
	size     int64
	calls    *stripedCounter
	failures eventRing
	slow     eventRing // empty without a slow-call duration
}

func newCountWindow(size int64, slow bool) *countWindow {
	w := &countWindow{size: size, calls: new(stripedCounter)}
	w.failures.numbers = make([]atomic.Int64, size)
	if slow {
		w.slow.numbers = make([]atomic.Int64, size)
	}
	return w
}

// addSuccess counts a fast success: the only write of the common path.
func (w *countWindow) addSuccess() { w.calls.add() }

// add counts a call that failed or was slow.
func (w *countWindow) add(failed, slow bool) {
	w.calls.add()
	n := w.calls.load()
	if failed {
		w.failures.add(n)
	}
	if slow {
		w.slow.add(n)
	}
}

func (w *countWindow) counts() WindowCounts {
	n := w.calls.load()
	calls := min(n, w.size)
	return WindowCounts{
		Calls:     calls,
		Failures:  min(w.failures.countAbove(n-w.size), calls),
		SlowCalls: min(w.slow.countAbove(n-w.size), calls),
	}
}

// eventRing holds the call numbers of the last len(numbers) events, in the
// order they were added: numbers that only grow, but for events added at
// the same moment on different cores.
type eventRing struct {
	added   atomic.Int64
	numbers []atomic.Int64
}

func (r *eventRing) add(call int64) {
	i := r.added.Add(1) - 1
	r.numbers[i%int64(len(r.numbers))].Store(call)
}

// countAbove returns how many of the events held have a call number above
// n: a binary search, the numbers being in order.
func (r *eventRing) countAbove(n int64) int64 {
	size := int64(len(r.numbers))
	if size == 0 {
		return 0
	}
	added := r.added.Load()
	first := max(0, added-size)
	held := int(added - first)
	i := sort.Search(held, func(k int) bool { return r.numbers[(first+int64(k))%size].Load() > n })
	return int64(held - i)
}

// timeWindow is a window of the calls of the last buckets × width, in
// buckets of width. The bucket calls count in is given by a clock word that
// a timer advances at each bucket's end, so that no call reads the clock;
// the timer re-arms itself only while calls arrive, and a call that finds it
// stopped reads the clock once and restarts it.
//
// Each counter is tagged with the bucket (its epoch, the number of widths
// since the window's origin) it counts for: a call that finds its bucket's
// counter tagged with an older epoch starts it afresh, so nothing has to
// clear a bucket when the window slides, and a read adds only the counters
// whose epoch is among the window's last buckets. Counters of calls are
// striped across cores; the rarer failures and slow calls are not.
type timeWindow struct {
	origin  time.Time
	width   time.Duration
	buckets int
	stride  int // counters per stripe: whole cache lines

	// clock is the current epoch (high 32 bits), its bucket (bits 2 to
	// 31), and clockTicking and clockFrozen.
	clock atomic.Uint64
	timer atomic.Pointer[time.Timer]
	// epoch is the whole epoch of the clock word, which holds its low 32
	// bits only: that of the bucket the clock stopped in once the timer has
	// stopped. restart serializes the calls that find the clock stopped.
	epoch   atomic.Int64
	restart sync.Mutex

	calls    []atomic.Uint64 // a line left empty, then stride counters per stripe
	failures []atomic.Uint64
	slow     []atomic.Uint64 // empty without a slow-call duration
}

const (
	// clockTicking: the timer is armed and the clock word is current.
	clockTicking = 1 << 0
	// clockFrozen: the window's period has ended; it takes no more calls
	// and keeps its counts as they were for the gauges.
	clockFrozen = 1 << 1
	clockShift  = 2
)

const wordsPerLine = cacheLine / 8

func newTimeWindow(origin time.Time, d time.Duration, buckets int, slow bool) *timeWindow {
	stride := (buckets + wordsPerLine - 1) / wordsPerLine * wordsPerLine
	w := &timeWindow{
		origin:   origin,
		width:    d / time.Duration(buckets),
		buckets:  buckets,
		stride:   stride,
		calls:    make([]atomic.Uint64, wordsPerLine+countStripes*stride),
		failures: make([]atomic.Uint64, buckets),
	}
	if slow {
		w.slow = make([]atomic.Uint64, buckets)
	}
	return w
}

func (w *timeWindow) epochAt(now time.Time) int64 {
	return max(int64(now.Sub(w.origin)/w.width), 0)
}

func (w *timeWindow) word(epoch int64, flags uint64) uint64 {
	return uint64(uint32(epoch))<<32 | uint64(epoch%int64(w.buckets))<<clockShift | flags
}

func wordBucket(word uint64) int   { return int(uint32(word) >> clockShift) }
func wordEpoch(word uint64) uint32 { return uint32(word >> 32) }

// current returns the clock word a call counts under, restarting the timer
// if it had stopped; a frozen word tells the call not to count.
func (w *timeWindow) current() uint64 {
	word := w.clock.Load()
	if word&(clockTicking|clockFrozen) != 0 {
		return word
	}
	w.restart.Lock()
	defer w.restart.Unlock()
	for {
		word = w.clock.Load()
		if word&(clockTicking|clockFrozen) != 0 {
			return word
		}
		now := time.Now()
		epoch := w.epochAt(now)
		w.refresh(w.epoch.Load(), epoch)
		if next := w.word(epoch, clockTicking); w.clock.CompareAndSwap(word, next) {
			w.epoch.Store(epoch)
			w.arm(now, epoch)
			return next
		}
	}
}

// refresh retags the counters of the buckets the clock enters as it moves
// from epoch from to epoch to, before it does. A tag holds 32 bits of its
// epoch: a counter left untouched for 2^31 epochs (25 days of 1 ms
// buckets, while calls fall in other buckets or none come) would look
// later than the clock, and every call counted there be dropped, or
// 2^32 epochs on be counted again. Retagged to the newest epoch outside
// to's window as each of its buckets is entered, no tag falls more than
// two windows behind the clock. A tag within the window of the epoch
// before to is left alone, so that a window frozen at that epoch keeps its
// counts; after a gap of a whole window every counter is outside it.
func (w *timeWindow) refresh(from, to int64) {
	n := int64(w.buckets)
	outside := uint32(to - n)
	all := to-from >= n
	retag := func(counter *atomic.Uint64) {
		if all {
			counter.Store(uint64(outside) << 32)
			return
		}
		for v := counter.Load(); int32(outside-wordEpoch(v)) > 0; v = counter.Load() {
			if counter.CompareAndSwap(v, uint64(outside)<<32) {
				return
			}
		}
	}
	for e := max(from+1, to-n+1); e <= to; e++ {
		bucket := int(e % n)
		for s := range countStripes {
			retag(&w.calls[wordsPerLine+s*w.stride+bucket])
		}
		retag(&w.failures[bucket])
		if w.slow != nil {
			retag(&w.slow[bucket])
		}
	}
}

// arm schedules the tick at the end of epoch's bucket. Only the goroutine
// that set clockTicking arms the timer, so it is never armed twice.
func (w *timeWindow) arm(now time.Time, epoch int64) {
	d := w.origin.Add(time.Duration(epoch+1) * w.width).Sub(now)
	if t := w.timer.Load(); t != nil {
		t.Reset(d)
		return
	}
	w.timer.Store(time.AfterFunc(d, w.tick))
}

// tick moves the window to the bucket of now, and re-arms the timer, if a
// call was counted in the bucket that has just ended; otherwise it stops,
// and the next call restarts it. The timer holds the window, not the
// breaker: a dropped breaker is garbage, and its window once the timer
// has stopped.
func (w *timeWindow) tick() {
	word := w.clock.Load()
	if word&clockTicking == 0 {
		return // frozen, or stopped
	}
	if !w.counted(word) {
		w.clock.CompareAndSwap(word, word&^clockTicking)
		return
	}
	now := time.Now()
	epoch := w.epochAt(now)
	w.refresh(w.epoch.Load(), epoch)
	if w.clock.CompareAndSwap(word, w.word(epoch, clockTicking)) {
		w.epoch.Store(epoch)
		w.arm(now, epoch)
	}
}

// counted reports whether a call was counted in word's bucket.
func (w *timeWindow) counted(word uint64) bool {
	bucket, epoch := wordBucket(word), wordEpoch(word)
	for s := range countStripes {
		if v := w.calls[wordsPerLine+s*w.stride+bucket].Load(); wordEpoch(v) == epoch && uint32(v) > 0 {
			return true
		}
	}
	return false
}

// freeze ends the window's period: it takes no more calls, its timer
// stops, and its counts stay those of now.
func (w *timeWindow) freeze(now time.Time) {
	w.clock.Store(w.word(w.epochAt(now), clockFrozen))
	if t := w.timer.Load(); t != nil {
		t.Stop()
	}
}

// addSuccess counts a fast success in the current bucket, in the given
// stripe: the only writes of the common path.
func (w *timeWindow) addSuccess(stripe uint64) {
	word := w.clock.Load()
	if word&clockTicking == 0 {
		if word = w.current(); word&clockFrozen != 0 {
			return
		}
	}
	bump(&w.calls[wordsPerLine+int(stripe)*w.stride+wordBucket(word)], wordEpoch(word))
}

// add counts a call in the current bucket; it returns the clock word it
// counted under, 0 with ok false when the window is frozen.
func (w *timeWindow) add(failed, slow bool) (word uint64, ok bool) {
	word = w.current()
	if word&clockFrozen != 0 {
		return 0, false
	}
	bucket, epoch := wordBucket(word), wordEpoch(word)
	bump(&w.calls[wordsPerLine+int(stripeHint(uintptr(unsafe.Pointer(&w.calls[0]))))*w.stride+bucket], epoch)
	if failed {
		bump(&w.failures[bucket], epoch)
	}
	if slow {
		bump(&w.slow[bucket], epoch)
	}
	return word, true
}

// bump adds one to the counter of epoch's bucket, starting it afresh if it
// holds an older epoch's count. A counter already holding a later epoch
// means the call's bucket has left the window: it is not counted.
func bump(counter *atomic.Uint64, epoch uint32) {
	for {
		v := counter.Load()
		held := wordEpoch(v)
		switch {
		case held == epoch:
			if counter.CompareAndSwap(v, v+1) {
				return
			}
		case int32(held-epoch) > 0:
			return
		default:
			if counter.CompareAndSwap(v, uint64(epoch)<<32|1) {
				return
			}
		}
	}
}

// countsAt returns the window's counts as of word's epoch.
func (w *timeWindow) countsAt(word uint64) WindowCounts {
	epoch, buckets := wordEpoch(word), uint32(w.buckets)
	sum := func(counters []atomic.Uint64) (n int64) {
		for i := range counters {
			if v := counters[i].Load(); epoch-wordEpoch(v) < buckets {
				n += int64(uint32(v))
			}
		}
		return n
	}
	c := WindowCounts{Calls: sum(w.calls), Failures: sum(w.failures), SlowCalls: sum(w.slow)}
	c.Failures = min(c.Failures, c.Calls)
	c.SlowCalls = min(c.SlowCalls, c.Calls)
	return c
}

// countsNow returns the window's counts as of now (as of its end once
// frozen). The clock word may be behind now when the timer has stopped.
func (w *timeWindow) countsNow() WindowCounts {
	word := w.clock.Load()
	if word&clockFrozen == 0 {
		epoch := w.epochAt(time.Now())
		if word&clockTicking == 0 && epoch-w.epoch.Load() >= int64(w.buckets) {
			return WindowCounts{} // stopped a whole window ago: the tags may have wrapped
		}
		word = w.word(epoch, 0)
	}
	return w.countsAt(word)
}
