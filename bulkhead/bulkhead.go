package bulkhead

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// cacheLine is the size the hot atomics are padded to, so that the fields
// every call writes share no line with fields that only rare paths touch.
const cacheLine = 64

// Bulkhead limits how many calls run at once: it has maxConcurrent slots,
// and a call runs only while it holds one. A call that finds a free slot
// takes it and gives it back when it returns, panics included; one that
// finds none is rejected at once with an error matching ErrFull or, with
// WithMaxWait, waits for a slot in a first-come, first-served queue until
// its wait runs out (ErrFull) or its context ends (the context's error).
// While calls are queued, a freed slot goes to the first of them, never to
// a newcomer.
//
// Use Call for functions that return only an error, and Policy to put the
// bulkhead in a resilience pipeline; one bulkhead may guard calls of many
// result types, and then they share its slots.
//
// A Bulkhead is safe for concurrent use by any number of goroutines and
// starts no goroutine. A call that gets a slot at once takes no lock,
// allocates nothing and does no OpenTelemetry work: two atomic operations
// around the call, one to take the slot and one to give it back. Waiting
// takes a lock and allocates. Create one with New; the zero value is not
// usable. A Bulkhead nobody references any more is garbage, its metrics
// registration included.
type Bulkhead struct {
	_ [cacheLine]byte
	// acquired counts the slots ever taken and released those given back:
	// acquired - released calls hold a slot now. Both only grow, so a
	// taker that reads released before its compare-and-swap of acquired
	// can only overestimate the calls in flight.
	acquired atomic.Int64
	released atomic.Int64
	// waiting is how many calls are queued. Takers leave free slots to
	// the queue while it is not zero, and releasers then hand them over.
	waiting atomic.Int64
	_       [cacheLine - 24]byte

	name          string
	maxConcurrent int64
	maxWait       time.Duration
	errFull       error // rejected at once
	errTimedOut   error // rejected when the maximum wait ran out

	// mu guards the queue and grants. It is never held while user code
	// or telemetry runs.
	mu    sync.Mutex
	queue waitQueue
	// grants counts the slots handed to waiters: acquired - grants calls
	// were admitted at once.
	grants int64

	waited   atomic.Int64 // admitted after waiting
	rejected atomic.Int64 // refused at once
	timedOut atomic.Int64 // refused when the maximum wait ran out
	canceled atomic.Int64 // the caller's context ended before a slot

	tel *instruments
}

// New returns a Bulkhead named name with maxConcurrent slots. The name
// identifies it in errors and telemetry (levee.policy.name) and must not be
// empty; maxConcurrent must be at least 1.
//
// Invalid settings are programming errors: New panics with a message naming
// the setting (an empty name, maxConcurrent below 1, a negative
// WithMaxWait, a nil option or provider). It registers the bulkhead with the
// meter provider, so its metrics are reported from construction on, for as
// long as the bulkhead is referenced. Give each bulkhead of one provider its
// own name.
func New(name string, maxConcurrent int, opts ...Option) *Bulkhead {
	var cfg config
	if name == "" {
		cfg.refuse("name must not be empty")
	}
	if maxConcurrent < 1 {
		cfg.refuse(fmt.Sprintf("maxConcurrent: must be at least 1, got %d", maxConcurrent))
	}
	for i, opt := range opts {
		if opt == nil {
			cfg.refuse("option " + strconv.Itoa(i) + " is nil")
			continue
		}
		opt(&cfg)
	}
	if len(cfg.problems) > 0 {
		panic("levee: bulkhead.New(" + strconv.Quote(name) + "): " + strings.Join(cfg.problems, "; "))
	}
	b := &Bulkhead{
		name:          name,
		maxConcurrent: int64(maxConcurrent),
		maxWait:       cfg.maxWait,
		errFull:       &fullError{name: name},
		errTimedOut:   &fullError{name: name, maxWait: cfg.maxWait},
	}
	newInstruments(b, cfg.tracerProvider, cfg.meterProvider)
	return b
}

// Name returns the name the bulkhead was created with.
func (b *Bulkhead) Name() string { return b.name }

// MaxConcurrent returns the number of slots.
func (b *Bulkhead) MaxConcurrent() int { return int(b.maxConcurrent) }

// InFlight returns how many calls hold a slot now.
func (b *Bulkhead) InFlight() int {
	released := b.released.Load()
	return int(min(b.acquired.Load()-released, b.maxConcurrent))
}

// Queued returns how many calls are waiting for a slot now.
func (b *Bulkhead) Queued() int { return int(b.waiting.Load()) }

// Call runs fn(ctx) in a slot of the bulkhead and returns its error, or
// returns an error matching ErrFull without running fn when no slot comes
// in time, or the context's error when ctx ends first. A nil fn is refused
// with an error.
func (b *Bulkhead) Call(ctx context.Context, fn func(context.Context) error) error {
	if fn == nil {
		return errNilFunc
	}
	if err := b.acquire(ctx); err != nil {
		return err
	}
	defer b.release()
	return fn(ctx)
}

// acquire takes a slot for the call, or returns the error that refuses it.
// The common case, a live context, a free slot and no queue, is a
// compare-and-swap.
func (b *Bulkhead) acquire(ctx context.Context) error {
	if ctx.Err() == nil && b.takeFast() {
		return nil
	}
	return b.acquireSlow(ctx)
}

// takeFast takes a free slot when no call is queued: three loads and a
// compare-and-swap, small enough to be inlined into the callers' fast paths
// (acquire, the policy's function), which then make no call of their own
// before the guarded function's. Whatever it does not settle, acquireSlow
// does.
func (b *Bulkhead) takeFast() bool {
	if b.waiting.Load() != 0 {
		return false
	}
	taken := b.acquired.Load()
	return taken-b.released.Load() < b.maxConcurrent && b.acquired.CompareAndSwap(taken, taken+1)
}

// release gives the call's slot back, to the first waiter if there is one.
func (b *Bulkhead) release() {
	b.released.Add(1)
	if b.waiting.Load() != 0 {
		b.handOver()
	}
}

func (b *Bulkhead) handOver() {
	b.mu.Lock()
	b.grantLocked()
	b.mu.Unlock()
}

// tryTake takes a free slot if there is one, for a caller that passes
// nobody: the queue is empty, or the caller is handing slots to it.
func (b *Bulkhead) tryTake() bool {
	for {
		taken := b.acquired.Load()
		if taken-b.released.Load() >= b.maxConcurrent {
			return false
		}
		if b.acquired.CompareAndSwap(taken, taken+1) {
			return true
		}
	}
}

// acquireSlow is acquire past takeFast: the caller's context has ended,
// another call took the slot first, the bulkhead is full, or calls are
// queued.
func (b *Bulkhead) acquireSlow(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		b.canceled.Add(1)
		return err
	}
	if b.waiting.Load() == 0 && b.tryTake() {
		return nil
	}
	if b.maxWait == 0 {
		b.rejected.Add(1)
		b.tel.rejectedAtOnce(ctx)
		return b.errFull
	}

	b.mu.Lock()
	// Counted as waiting before the last look at the slots: a release from
	// now on sees the count and hands its slot over, and one that came
	// before it freed the slot this look finds.
	b.waiting.Add(1)
	if b.queue.head == nil && b.tryTake() {
		b.waiting.Add(-1)
		b.mu.Unlock()
		return nil
	}
	w := &waiter{ready: make(chan struct{})}
	b.queue.push(w)
	b.mu.Unlock()
	return b.wait(ctx, w)
}

// wait blocks the queued call until it is handed a slot, its maximum wait
// runs out, or its context ends. A caller whose context has ended when it
// wakes gets the context's error, even if a slot came at the same moment:
// the slot then goes to the next waiter.
func (b *Bulkhead) wait(ctx context.Context, w *waiter) error {
	start := time.Now()
	timer := time.NewTimer(b.maxWait)
	defer timer.Stop()
	granted := false
	select {
	case <-w.ready:
		granted = true
	case <-timer.C:
	case <-ctx.Done():
	}
	if !granted {
		granted = b.leave(w) // handed a slot as it woke: the slot is the call's
	}
	if err := ctx.Err(); err != nil {
		if granted {
			b.release()
		}
		b.canceled.Add(1)
		b.tel.canceled(ctx, time.Since(start), err)
		return err
	}
	if !granted {
		b.timedOut.Add(1)
		b.tel.timedOut(ctx, time.Since(start))
		return b.errTimedOut
	}
	b.waited.Add(1)
	b.tel.waited(ctx, time.Since(start))
	return nil
}

// leave takes w out of the queue. It returns true when w was handed a slot
// before it could leave: the slot is then w's to use or give back.
func (b *Bulkhead) leave(w *waiter) (granted bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if w.granted {
		return true
	}
	b.queue.remove(w)
	b.waiting.Add(-1)
	return false
}

// grantLocked hands free slots to the waiters at the head of the queue.
func (b *Bulkhead) grantLocked() {
	for w := b.queue.head; w != nil; w = b.queue.head {
		if !b.tryTake() {
			return
		}
		b.queue.remove(w)
		b.waiting.Add(-1)
		b.grants++
		w.granted = true
		close(w.ready)
	}
}

// callCounts are a bulkhead's calls by outcome, for its metrics.
type callCounts struct {
	admitted, waited, rejected, timedOut, canceled int64
}

// counts reads the calls by outcome. Each count only grows from one read
// to the next: acquired and grants are read under mu, so no handing-over
// is seen half done.
func (b *Bulkhead) counts() callCounts {
	b.mu.Lock()
	admitted := b.acquired.Load() - b.grants
	b.mu.Unlock()
	return callCounts{
		admitted: admitted,
		waited:   b.waited.Load(),
		rejected: b.rejected.Load(),
		timedOut: b.timedOut.Load(),
		canceled: b.canceled.Load(),
	}
}

// waiter is a call queued for a slot.
type waiter struct {
	prev, next *waiter
	ready      chan struct{} // closed when the call is handed a slot
	granted    bool          // under the bulkhead's mu
}

// waitQueue is a first-in, first-out list of waiters, linked through them
// so that leaving it from the middle (a timeout, a cancellation) costs
// nothing.
type waitQueue struct{ head, tail *waiter }

func (q *waitQueue) push(w *waiter) {
	w.prev = q.tail
	if q.tail != nil {
		q.tail.next = w
	} else {
		q.head = w
	}
	q.tail = w
}

func (q *waitQueue) remove(w *waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		q.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		q.tail = w.prev
	}
	w.prev, w.next = nil, nil
}
