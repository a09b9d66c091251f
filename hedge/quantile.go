package hedge

import (
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// The latency histogram: 8 buckets per power of two of nanoseconds, from
// 2^10 ns (1µs; faster latencies share the first bucket) to 2^41 ns (about
// 37 minutes; slower ones share the last). A bucket's width is an eighth of
// its lower edge: the estimate, a bucket's upper edge, is at most 12.5%
// above the latency it stands for.
const (
	subBucketBits  = 3
	subBuckets     = 1 << subBucketBits
	minExponent    = 10
	maxExponent    = 40
	latencyBuckets = (maxExponent - minExponent + 1) * subBuckets
	// recomputeEvery is how many latencies are recorded between two
	// computations of the quantile; the delay is read from the last one.
	recomputeEvery = 32
)

type histogram [latencyBuckets]atomic.Uint32

// bucketOf returns the bucket of latency d.
func bucketOf(d time.Duration) int {
	ns := uint64(max(d, 0))
	if ns < 1<<minExponent {
		return 0
	}
	exponent := bits.Len64(ns) - 1
	if exponent > maxExponent {
		return latencyBuckets - 1
	}
	sub := int(ns>>(exponent-subBucketBits)) & (subBuckets - 1)
	return (exponent-minExponent)*subBuckets + sub
}

// upperEdge returns the smallest latency above bucket i.
func upperEdge(i int) time.Duration {
	exponent := i/subBuckets + minExponent
	sub := i % subBuckets
	width := uint64(1) << (exponent - subBucketBits)
	return time.Duration(uint64(1)<<exponent + uint64(sub+1)*width)
}

// latencies tracks the q-quantile of the latencies recorded over a recent
// window, in bounded memory: two histograms, the current half-window's and
// the previous one's, rotated every half window. Recording is lock-free;
// rotating and computing the quantile take a lock, one recording in
// recomputeEvery. Safe for concurrent use.
type latencies struct {
	q       float64
	half    time.Duration
	initial time.Duration
	created time.Time

	current  atomic.Pointer[histogram]
	previous atomic.Pointer[histogram]
	rotateAt atomic.Int64 // time since created, in nanoseconds
	recorded atomic.Uint32
	estimate atomic.Int64 // the delay, in nanoseconds
	// warm is whether the window held enough latencies at the last
	// computation; until it does, every recording computes again.
	warm atomic.Bool

	mu sync.Mutex
}

func newLatencies(q float64, window, initial time.Duration) *latencies {
	l := &latencies{q: q, half: max(window/2, 1), initial: initial, created: time.Now()}
	l.current.Store(new(histogram))
	l.previous.Store(new(histogram))
	l.rotateAt.Store(int64(l.half))
	l.estimate.Store(int64(initial))
	return l
}

// delay returns the hedge delay: the last quantile computed, or the initial
// delay while the window holds too few latencies.
func (l *latencies) delay() time.Duration { return time.Duration(l.estimate.Load()) }

// record adds one latency to the window.
func (l *latencies) record(d time.Duration) {
	if now := time.Since(l.created); int64(now) >= l.rotateAt.Load() {
		l.mu.Lock()
		l.rotate(now)
		l.recompute()
		l.mu.Unlock()
	}
	l.current.Load()[bucketOf(d)].Add(1)
	if (l.recorded.Add(1)%recomputeEvery == 0 || !l.warm.Load()) && l.mu.TryLock() {
		l.recompute()
		l.mu.Unlock()
	}
}

// rotate moves the window on to now: the current half becomes the previous
// one, and a cleared one the current; after a whole window without a
// recording, both are cleared. l.mu is held.
func (l *latencies) rotate(now time.Duration) {
	rotateAt := time.Duration(l.rotateAt.Load())
	if now < rotateAt {
		return // another recording rotated first
	}
	halves := (now-rotateAt)/l.half + 1
	cleared := l.previous.Load()
	reset(cleared)
	if halves > 1 {
		reset(l.current.Load())
	}
	l.previous.Store(l.current.Load())
	l.current.Store(cleared)
	l.rotateAt.Store(int64(rotateAt + halves*l.half))
}

func reset(h *histogram) {
	for i := range h {
		h[i].Store(0)
	}
}

// recompute computes the quantile of the window and stores it as the
// delay. l.mu is held.
func (l *latencies) recompute() {
	current, previous := l.current.Load(), l.previous.Load()
	var counts [latencyBuckets]uint64
	var total uint64
	for i := range counts {
		counts[i] = uint64(current[i].Load()) + uint64(previous[i].Load())
		total += counts[i]
	}
	l.warm.Store(total >= minQuantileSamples)
	if total < minQuantileSamples {
		l.estimate.Store(int64(l.initial))
		return
	}
	rank := uint64(math.Ceil(l.q * float64(total)))
	var seen uint64
	for i, n := range counts {
		if seen += n; seen >= rank {
			l.estimate.Store(int64(upperEdge(i)))
			return
		}
	}
}
