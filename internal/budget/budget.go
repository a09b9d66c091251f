// Package budget is the retry budget behind retry.Budget, which package
// retry exports and package hedge draws from. It lives here so that both
// reach its methods while users see only retry.NewBudget and the options
// that take a budget: retry.Budget is defined as this type
// (type Budget budget.Budget), so a *retry.Budget converts to a *Budget in
// levee's packages and in no others.
package budget

import (
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

const (
	// Window is how long a first attempt counts for the retries it allows.
	Window = 10 * time.Second
	// numBuckets slices the window: a deposit leaves it between
	// Window - Window/numBuckets and Window after it was made.
	numBuckets  = 10
	bucketWidth = Window / numBuckets
	// foldEvery bounds the deposits waiting to be folded into the window:
	// the deposit that brings them to a multiple of it folds them.
	foldEvery = 1024
	cacheLine = 64
	// numStripes copies of the pending count: see stripeFor.
	stripeBits = 3
	numStripes = 1 << stripeBits
)

// stripe is one copy of the pending deposits, alone on its cache line.
type stripe struct {
	// pending counts the deposits not folded yet.
	pending atomic.Int64
	// since is when the first of them was made (time since the budget was
	// created, in nanoseconds): the deposit that finds pending at zero reads
	// the clock, one in foldEvery at most while no retry folds.
	since atomic.Int64
	_     [cacheLine - 16]byte
}

// stripes is allocated apart from the Budget, its first line left empty, so
// that no stripe shares a line with another object (as the breaker's
// counts are).
type stripes struct {
	_ [cacheLine]byte
	s [numStripes]stripe
}

// Budget allows retries (and hedges) up to a share of the first attempts
// made over the last Window, plus a floor of retries per second whatever the
// traffic. See retry.NewBudget for the model.
//
// Deposit is the common path: one atomic add, no clock, no lock. A
// withdrawal (a retry, the rare path) reads the clock, takes the lock and
// folds the pending deposits into the window's time buckets, crediting them
// as made evenly since the first of them. Safe for concurrent use.
type Budget struct {
	// stripes hold the deposits not folded into the buckets yet. Every
	// budgeted call adds to one, the one its goroutine hashes to, so cores
	// calling at once mostly write cache lines of their own.
	stripes *stripes

	ratio        float64
	minPerSecond float64
	created      time.Time

	mu       sync.Mutex
	foldedAt time.Duration // since created: when the buckets were last brought up to date
	newest   int64         // the absolute index (time since created / bucketWidth) of the newest bucket
	buckets  [numBuckets]bucket
	// floor holds the retries allowed by minPerSecond, a token bucket of
	// capacity floorCap refilled at floorRate a second: both minPerSecond
	// unless a fleet sets its share (SetFleet).
	floor     float64
	floorAt   time.Duration
	floorRate float64
	floorCap  float64

	// credit is added to the window's surplus (ratio × deposits −
	// withdrawals) when a retry asks: 0 for a budget of one process; a
	// fleet's view otherwise (SetFleet).
	credit float64
	// deposited and withdrawn count every deposit folded and every retry
	// paid from the ratio since the budget was created, and asked every
	// retry asked for, allowed or not, for a fleet to add to its shared
	// counts (Snapshot).
	deposited, withdrawn, asked int64
}

// bucket is one slice of the window: the first attempts credited to it, and
// the retries it paid for out of the ratio.
type bucket struct {
	deposits    float64
	withdrawals float64
}

// New returns a budget allowing retries up to ratio of first attempts over
// the last Window plus minPerSecond a second. The caller validates the
// arguments.
func New(ratio float64, minPerSecond int) *Budget {
	return &Budget{
		stripes:      new(stripes),
		ratio:        ratio,
		minPerSecond: float64(minPerSecond),
		floor:        float64(minPerSecond), // a fresh budget may retry at once
		floorRate:    float64(minPerSecond),
		floorCap:     float64(minPerSecond),
		created:      time.Now(),
	}
}

// Deposit counts a first attempt. It reads no clock, except for the first
// deposit after a fold, and takes no lock, except to fold every foldEvery
// deposits so that pending ones never describe a long stretch of time.
func (b *Budget) Deposit() {
	s := &b.stripes.s[stripeFor(b.stripes)]
	if n := s.pending.Add(1); n&(foldEvery-1) <= 1 {
		b.depositSlow(s, n)
	}
}

func (b *Budget) depositSlow(s *stripe, n int64) {
	switch {
	case n == 1:
		s.since.Store(int64(b.now()))
	case n&(foldEvery-1) == 0 && b.mu.TryLock():
		b.fold(b.now())
		b.mu.Unlock()
	}
}

// stripeFor picks a stripe for the calling goroutine from the address of
// its stack, as the breaker's counts do: goroutines running at once have
// different stacks, a goroutine keeps its stripe from call to call, and
// finding it costs a multiply. The address is only hashed, never used to
// reach memory; salt (the stripes' address) keeps two goroutines that share
// a stripe of one budget from sharing one of the next.
func stripeFor(salt *stripes) uint64 {
	var marker byte
	block := uint64(uintptr(unsafe.Pointer(&marker))) >> 11 // stacks are at least 2 KiB apart
	return (block ^ uint64(uintptr(unsafe.Pointer(salt)))>>6) * 0x9e3779b97f4a7c15 >> (64 - stripeBits)
}

// TryWithdraw takes one retry from the budget and reports whether it was
// allowed: from the ratio's share of the window's first attempts while it
// lasts, then from the per-second floor.
func (b *Budget) TryWithdraw() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.asked++
	now := b.fold(b.now())
	var deposits, withdrawals float64
	for i := range b.buckets {
		deposits += b.buckets[i].deposits
		withdrawals += b.buckets[i].withdrawals
	}
	if b.ratio*deposits-withdrawals+b.credit >= 1 {
		b.bucket(b.newest).withdrawals++
		b.withdrawn++
		return true
	}
	b.floor = min(b.floorCap, b.floor+b.floorRate*(now-b.floorAt).Seconds())
	b.floorAt = now
	if b.floor >= 1 {
		b.floor--
		return true
	}
	return false
}

// now is the time since the budget was created. It never goes back: a
// budget used across testing/synctest bubbles, whose clocks differ, sees
// time stand still rather than run backwards.
func (b *Budget) now() time.Duration { return time.Since(b.created) }

func (b *Budget) bucket(index int64) *bucket { return &b.buckets[index%numBuckets] }

// fold brings the buckets up to now: it empties the buckets that have left
// the window and credits the pending deposits, as made evenly between the
// first of them and now. Only the share inside the window counts. It
// returns now, or the time of the last fold if the clock went back. b.mu is
// held.
func (b *Budget) fold(now time.Duration) time.Duration {
	now = max(now, b.foldedAt)
	newest := int64(now / bucketWidth)
	for i := max(b.newest+1, newest-numBuckets+1); i <= newest; i++ {
		*b.bucket(i) = bucket{}
	}
	b.newest = max(b.newest, newest)

	var n int64
	since := now
	for i := range b.stripes.s {
		s := &b.stripes.s[i]
		if k := s.pending.Swap(0); k > 0 {
			n += k
			since = min(since, time.Duration(s.since.Load()))
		}
	}
	if n > 0 {
		b.spread(float64(n), max(since, b.foldedAt), now)
		b.deposited += n
	}
	b.foldedAt = now
	return now
}

// spread spreads n deposits evenly over [from, to], dropping the share that
// falls before the window.
func (b *Budget) spread(n float64, from, to time.Duration) {
	if to <= from {
		b.bucket(b.newest).deposits += n
		return
	}
	windowStart := time.Duration(b.newest-numBuckets+1) * bucketWidth
	perNanosecond := n / float64(to-from)
	for t := max(from, windowStart); t < to; {
		i := int64(t / bucketWidth)
		end := min(time.Duration(i+1)*bucketWidth, to)
		b.bucket(i).deposits += perNanosecond * float64(end-t)
		t = end
	}
}

// Snapshot is a budget's counts, for a fleet that shares them (leveeredis).
type Snapshot struct {
	// Deposits and Withdrawals count every first attempt and every retry
	// paid from the ratio since the budget was created; Asked every retry
	// asked for, allowed or not.
	Deposits, Withdrawals, Asked int64
	// WindowDeposits are the first attempts of the window now, and
	// Surplus is ratio × WindowDeposits − the window's withdrawals: the
	// retries the budget's own counts allow now, without the credit.
	WindowDeposits, Surplus float64
}

// Snapshot folds the pending deposits and returns the budget's counts.
// A retry's path is unchanged by it: it takes the lock a retry takes.
func (b *Budget) Snapshot() Snapshot {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fold(b.now())
	var deposits, withdrawals float64
	for i := range b.buckets {
		deposits += b.buckets[i].deposits
		withdrawals += b.buckets[i].withdrawals
	}
	return Snapshot{
		Deposits: b.deposited, Withdrawals: b.withdrawn, Asked: b.asked,
		WindowDeposits: deposits, Surplus: b.ratio*deposits - withdrawals,
	}
}

// SetFleet makes the budget decide with a fleet's view: credit is added to
// its own surplus when a retry asks (positive when the fleet has retries to
// spare that the budget's own counts do not show, negative when the rest of
// the fleet spent more than it earned), and the floor refills at
// floorPerSecond a second, holding at most max(floorPerSecond, 1) so that a
// share of less than one retry a second still allows one now and then.
// SetFleet(0, minPerSecond) gives the budget back its own counts alone.
func (b *Budget) SetFleet(credit, floorPerSecond float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.fold(b.now())
	// Bring the floor up to now at the old rate before changing it.
	b.floor = min(b.floorCap, b.floor+b.floorRate*(now-b.floorAt).Seconds())
	b.floorAt = now
	b.credit = credit
	b.floorRate = floorPerSecond
	b.floorCap = 0
	if floorPerSecond > 0 {
		b.floorCap = max(floorPerSecond, 1)
	}
	b.floor = min(b.floor, b.floorCap)
}

// Ratio is the share of first attempts the budget allows as retries.
func (b *Budget) Ratio() float64 { return b.ratio }

// MinPerSecond is the floor the budget was created with.
func (b *Budget) MinPerSecond() float64 { return b.minPerSecond }
