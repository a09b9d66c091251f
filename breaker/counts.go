package breaker

import (
	"sync/atomic"
	"unsafe"
)

// cacheLine is the size the hot atomics are padded to, so that counters
// written by one core do not slow the loads of another.
const cacheLine = 64

// outcome is what a call through the breaker came to.
type outcome uint8

const (
	outcomeSuccess outcome = iota
	outcomeFailure
	outcomeRejected
	outcomeIgnored
	outcomeShadowRejected
	numOutcomes
)

// countStripes is how many copies of the counts a breaker keeps. Every call
// adds one to a count, so with a single copy all the cores calling one
// breaker would take turns owning the same cache line; with several, a call
// adds to the copy its goroutine hashes to and the cores mostly write lines
// of their own. Two goroutines share a copy about one time in eight; eight
// copies (576 bytes with their padding) keep a breaker under 1 KiB.
const (
	countStripeBits = 3
	countStripes    = 1 << countStripeBits
)

// countStripe is one copy of the counts, alone on its cache line.
type countStripe struct {
	n [numOutcomes]atomic.Int64
	_ [cacheLine - numOutcomes*8]byte
}

// outcomeCounts holds the per-call counts that the levee.circuit_breaker.calls
// instrument reads at collection time.
type outcomeCounts struct {
	*stripedCounts
}

// stripedCounts are allocated apart from the Breaker: a 576-byte object
// starts on a cache-line boundary, so each stripe has a line of its own
// whatever the Breaker's layout. The first line is left empty: whatever
// object precedes this one in memory, no stripe is its neighbour (measured:
// a stripe on an object's first line ran 2.5 times slower under RunParallel
// than the others).
type stripedCounts struct {
	_       [cacheLine]byte
	stripes [countStripes]countStripe
}

func newOutcomeCounts() outcomeCounts {
	return outcomeCounts{new(stripedCounts)}
}

// add counts one call, in the stripe of the calling goroutine.
func (c *outcomeCounts) add(o outcome) {
	c.stripes[stripeHint(uintptr(unsafe.Pointer(c.stripedCounts)))].n[o].Add(1)
}

// stripe returns the stripe of the calling goroutine, for a call that adds
// to several striped counts: the window's too.
func (c *outcomeCounts) stripe() uint64 { return stripeHint(uintptr(unsafe.Pointer(c.stripedCounts))) }

// addAt counts one call in the given stripe.
func (c *outcomeCounts) addAt(stripe uint64, o outcome) { c.stripes[stripe].n[o].Add(1) }

// load returns the count of o: the sum over the stripes, exact once the
// calls being counted have returned. Each stripe only grows, so successive
// loads never go down.
func (c *outcomeCounts) load(o outcome) int64 {
	var sum int64
	for i := range c.stripes {
		sum += c.stripes[i].n[o].Load()
	}
	return sum
}

// stripeHint picks a stripe for the calling goroutine from the address of
// its stack: goroutines running at once have different stacks, a goroutine
// keeps its stripe from call to call, and finding it costs a multiply. The
// address is only hashed, never used to reach memory (a stack that grows
// moves, and its goroutine moves to another stripe: still exact, as every
// stripe is summed). salt, the address of the breaker's stripes, makes two
// goroutines that share a stripe on one breaker unlikely to share one on
// the next: the same few goroutines, with the same stacks, often serve
// many breakers.
func stripeHint(salt uintptr) uint64 {
	var marker byte
	// Stacks are at least 2 KiB apart: hash the bits above that
	// (Fibonacci hashing keeps the top bits).
	block := uint64(uintptr(unsafe.Pointer(&marker))) >> 11
	return (block ^ uint64(salt)>>6) * 0x9e3779b97f4a7c15 >> (64 - countStripeBits)
}

// Counts are the calls a breaker has seen since it was created, by outcome.
// Success + Failure + Rejected + Ignored + ShadowRejected is every call made
// through it (a Call with a nil function is refused and counts nothing).
type Counts struct {
	// Success: calls that returned no error, or an error WithIsFailure
	// does not count.
	Success int64
	// Failure: calls that failed or panicked.
	Failure int64
	// Rejected: calls refused with an *OpenError, without running the
	// function.
	Rejected int64
	// Ignored: calls that counted neither way: the caller's context was
	// done (when the call arrived, the function not run, or when it
	// returned), WithIsIgnored named the error, or a half-open probe
	// returned after its period had ended (it outlived the open timeout,
	// or ForceOpen or Reset came first).
	Ignored int64
	// ShadowRejected: calls the breaker would have rejected, and ran
	// because it was in shadow mode (SetShadowMode); their results
	// changed nothing.
	ShadowRejected int64
}

// Counts returns the calls the breaker has seen since it was created, by
// outcome: the values levee.circuit_breaker.calls reports. The counts are
// read one after another, not as one snapshot.
func (b *Breaker) Counts() Counts {
	return Counts{
		Success:        b.counts.load(outcomeSuccess),
		Failure:        b.counts.load(outcomeFailure),
		Rejected:       b.counts.load(outcomeRejected),
		Ignored:        b.counts.load(outcomeIgnored),
		ShadowRejected: b.counts.load(outcomeShadowRejected),
	}
}
