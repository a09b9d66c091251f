package breaker

import "sync/atomic"

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
	numOutcomes
)

// outcomeCounts holds the per-call counts that the levee.circuit_breaker.calls
// instrument reads at collection time. Each count sits on its own cache line.
type outcomeCounts struct {
	n [numOutcomes]struct {
		v atomic.Int64
		_ [cacheLine - 8]byte
	}
}

func (c *outcomeCounts) add(o outcome) { c.n[o].v.Add(1) }

func (c *outcomeCounts) load(o outcome) int64 { return c.n[o].v.Load() }

// Counts are the calls a breaker has seen since it was created, by outcome.
// Success + Failure + Rejected + Ignored is every call made through it.
type Counts struct {
	// Success: calls that returned no error, or an error WithIsFailure
	// does not count.
	Success int64
	// Failure: calls that failed or panicked.
	Failure int64
	// Rejected: calls refused without running the function.
	Rejected int64
	// Ignored: calls that ended with the caller's context done.
	Ignored int64
}

// Counts returns the calls the breaker has seen since it was created, by
// outcome: the values levee.circuit_breaker.calls reports. The four counts
// are read one after another, not as one snapshot.
func (b *Breaker) Counts() Counts {
	return Counts{
		Success:  b.counts.load(outcomeSuccess),
		Failure:  b.counts.load(outcomeFailure),
		Rejected: b.counts.load(outcomeRejected),
		Ignored:  b.counts.load(outcomeIgnored),
	}
}
