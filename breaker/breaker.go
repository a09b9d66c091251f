package breaker

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Breaker is a circuit breaker: it guards calls to one dependency and stops
// calling it while it is failing, so that a broken dependency costs its
// callers nothing but a fast error.
//
// A Breaker starts Closed and lets every call through, counting consecutive
// failures; a success resets the count. When the count reaches the failure
// threshold (3 by default) the breaker opens: every call is rejected at once
// with an *OpenError matching ErrOpen, and the guarded function is not run.
// Once the open timeout (30s by default) has passed the breaker is HalfOpen
// and lets one probe call through at a time, rejecting the others; the
// probe's success closes the breaker, its failure opens it again for a fresh
// timeout.
//
// A call whose caller's context has ended counts neither way: it says
// nothing about the dependency (in HalfOpen it frees the probe slot). A panic
// in the guarded function counts as a failure and propagates unchanged.
//
// Use Call for functions that return only an error, and Policy to put the
// breaker in a resilience pipeline; one breaker may guard calls of many result
// types. ForceOpen and Reset are for operators in an incident.
//
// A Breaker is safe for concurrent use by any number of goroutines and starts
// no goroutine per call. A call through a closed breaker takes no lock, reads
// no clock and allocates nothing. Create one with New; the zero value is not
// usable.
type Breaker struct {
	// current is the period the breaker is in. It is replaced, never
	// changed in place, at each transition; the closed fast path is one
	// load of it.
	current atomic.Pointer[period]
	// counts are striped across cache lines of their own, allocated
	// apart, so nothing here is written on the hot path.
	counts outcomeCounts

	// mu serialises transitions and the queue of changes for listeners.
	// It is never held while user code or telemetry runs.
	mu         sync.Mutex
	pending    []StateChange
	delivering bool

	name             string
	failureThreshold int64
	openTimeout      time.Duration
	retryAfterLimit  time.Duration
	now              func() time.Time
	realClock        bool
	isFailure        func(error) bool
	listeners        []func(StateChange)
	tel              *instruments
}

// period is one stay of the breaker in one state. Its fields other than the
// atomics never change after it is published.
type period struct {
	state   State
	forced  bool
	until   time.Time  // Open: when a probe may go through
	openErr *OpenError // Open, HalfOpen: the error every rejection returns
	timer   *time.Timer

	_ [cacheLine]byte
	// failures counts consecutive failures while Closed. Writers touch it
	// only on failures, and readers skip the store when it is zero already.
	failures atomic.Int64
	// probe is true while a HalfOpen probe is in flight.
	probe atomic.Bool
}

// StateChange describes one transition of a breaker, for listeners.
type StateChange struct {
	// Name is the breaker's name.
	Name string
	// From and To are the states left and entered.
	From, To State
	// At is when the change was made, by the breaker's clock.
	At time.Time
	// ConsecutiveFailures is the failure count that opened the breaker:
	// at least the threshold from Closed (more when failures arrive at
	// once), 1 for a failed probe; 0 for other changes.
	ConsecutiveFailures int
	// Forced is true for a change made by ForceOpen or Reset.
	Forced bool
}

// New returns a closed Breaker named name. The name identifies it in errors
// and telemetry (levee.policy.name) and must not be empty.
//
// Invalid settings are programming errors: New panics with a message naming
// the setting (an empty name, WithFailureThreshold below 1, WithOpenTimeout
// or WithRetryAfter not positive, a nil clock, predicate, listener or
// provider). It registers the breaker with the meter provider, so its state
// is reported from construction on. The provider reports the breaker for as
// long as the provider lives: create breakers per dependency, at start-up,
// not per request, and give each breaker of one provider its own name.
func New(name string, opts ...Option) *Breaker {
	cfg := config{
		failureThreshold: DefaultFailureThreshold,
		openTimeout:      DefaultOpenTimeout,
		now:              time.Now,
	}
	if name == "" {
		cfg.refuse("name must not be empty")
	}
	for i, opt := range opts {
		if opt == nil {
			cfg.refuse("option %d is nil", i)
			continue
		}
		opt(&cfg)
	}
	if len(cfg.problems) > 0 {
		panic("levee: breaker.New(" + quote(name) + "): " + strings.Join(cfg.problems, "; "))
	}
	b := &Breaker{
		name:             name,
		failureThreshold: int64(cfg.failureThreshold),
		openTimeout:      cfg.openTimeout,
		retryAfterLimit:  cfg.retryAfterLimit,
		now:              cfg.now,
		realClock:        !cfg.clockSet,
		isFailure:        cfg.isFailure,
		listeners:        cfg.listeners,
		counts:           newOutcomeCounts(),
	}
	b.current.Store(&period{state: Closed})
	b.tel = newInstruments(b, cfg.tracerProvider, cfg.meterProvider)
	return b
}

// Name returns the name the breaker was created with.
func (b *Breaker) Name() string { return b.name }

// State returns the breaker's state now. Once the open timeout has passed,
// State reports HalfOpen even if no call has arrived since (making that
// transition, with its telemetry, if no call has). A breaker held open by
// ForceOpen reports Open until Reset.
func (b *Breaker) State() State {
	p := b.current.Load()
	if p.state == Open && !p.forced && !b.now().Before(p.until) {
		if next := b.transition(context.Background(), p, HalfOpen, transitionCause{}); next != nil {
			return next.state
		}
		return b.current.Load().state
	}
	return p.state
}

// peekState is State without the side effect: it reports HalfOpen once the
// open timeout has passed but makes no transition. The metrics callback uses
// it, so that collection never runs listeners or starts spans.
func (b *Breaker) peekState() State {
	p := b.current.Load()
	if p.state == Open && !p.forced && !b.now().Before(p.until) {
		return HalfOpen
	}
	return p.state
}

// Call runs fn through the breaker: at once with an *OpenError if the breaker
// rejects the call, otherwise fn(ctx), whose error is returned unchanged.
func (b *Breaker) Call(ctx context.Context, fn func(context.Context) error) error {
	_, err := execute(b, ctx, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, fn(ctx)
	})
	return err
}

// execute is the one implementation of a guarded call, for Call and Policy.
// The closed path is kept short enough to read at a glance: one load of the
// period, the call, one add to the success count, and one load of the
// failure count, stored only when it is not zero already.
func execute[T any](b *Breaker, ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	p := b.current.Load()
	if p.state != Closed {
		var err error
		if p, err = b.admit(ctx, p); err != nil {
			var zero T
			return zero, err
		}
	}
	returned := false
	defer func() {
		if !returned {
			// fn or the WithIsFailure predicate panicked (or called
			// runtime.Goexit): a failure, so that no probe slot stays
			// taken. The panic goes on unchanged once this returns.
			b.record(ctx, p, outcomeFailure, nil)
		}
	}()
	v, err := fn(ctx)
	if err == nil && p.state == Closed {
		returned = true
		b.counts.add(outcomeSuccess)
		if p.failures.Load() != 0 {
			p.failures.Store(0)
		}
		return v, nil
	}
	o := b.classify(ctx, err)
	returned = true
	b.record(ctx, p, o, err)
	return v, err
}

// admit decides a call that found the breaker not closed. It returns the
// period the call runs in, or the error that rejects it.
func (b *Breaker) admit(ctx context.Context, p *period) (*period, error) {
	for {
		switch p.state {
		case Closed:
			return p, nil
		case HalfOpen:
			if p.probe.CompareAndSwap(false, true) {
				if b.current.Load() == p {
					return p, nil
				}
				// An operator moved the breaker on meanwhile: decide
				// again against the new period.
				p.probe.Store(false)
				p = b.current.Load()
				continue
			}
		case Open:
			// With the real clock a timer makes the half-open
			// transition, so a rejection reads no clock.
			// The half-open period starts with its probe slot free and
			// the caller takes it like any other: listeners run inside
			// transition, and one that blocks or ends its goroutine must
			// not be holding the slot.
			if !p.forced && !b.realClock && !b.now().Before(p.until) {
				b.transition(ctx, p, HalfOpen, transitionCause{})
				p = b.current.Load()
				continue
			}
		}
		b.counts.add(outcomeRejected)
		b.tel.rejected(ctx, p.state)
		return nil, p.openErr
	}
}

func (b *Breaker) classify(ctx context.Context, err error) outcome {
	switch {
	case err == nil:
		return outcomeSuccess
	case ctx.Err() != nil:
		return outcomeIgnored
	case b.isFailure != nil && !b.isFailure(err):
		return outcomeSuccess
	}
	return outcomeFailure
}

// record applies the outcome of a call that ran in period p; err is the
// call's error, nil after a panic.
func (b *Breaker) record(ctx context.Context, p *period, o outcome, err error) {
	b.counts.add(o)
	switch p.state {
	case Closed:
		switch o {
		case outcomeSuccess:
			if p.failures.Load() != 0 {
				p.failures.Store(0)
			}
		case outcomeFailure:
			if n := p.failures.Add(1); n >= b.failureThreshold {
				b.transition(ctx, p, Open, transitionCause{failures: n, openFor: b.openFor(err)})
			}
		}
	case HalfOpen:
		switch o {
		case outcomeSuccess:
			b.transition(ctx, p, Closed, transitionCause{})
		case outcomeFailure:
			b.transition(ctx, p, Open, transitionCause{failures: 1, openFor: b.openFor(err)})
		case outcomeIgnored:
			p.probe.Store(false)
		}
	}
}

// transitionCause says why a transition is made.
type transitionCause struct {
	failures int64 // the consecutive failures that opened the breaker
	forced   bool  // ForceOpen or Reset
	// openFor is how long a transition to Open stays open when the
	// failure asked for longer than the open timeout (WithRetryAfter).
	openFor time.Duration
}

// retryAfterHint is implemented by errors that say how long to wait before
// trying again: leveehttp's response errors, a downstream breaker's
// OpenError.
type retryAfterHint interface{ RetryAfter() time.Duration }

// openFor returns how long the failure err keeps the breaker open: its
// RetryAfter hint when WithRetryAfter is set and the hint is longer than the
// open timeout, capped at the limit; 0 (the open timeout) otherwise.
func (b *Breaker) openFor(err error) time.Duration {
	if b.retryAfterLimit <= 0 || err == nil {
		return 0
	}
	var hint retryAfterHint
	if !errors.As(err, &hint) {
		return 0
	}
	d := min(hint.RetryAfter(), b.retryAfterLimit)
	if d <= b.openTimeout {
		return 0
	}
	return d
}

// transition moves the breaker from period from to a new period in state to,
// if from is still current, and reports the change. It returns the new
// period, or nil when another goroutine changed the state first.
func (b *Breaker) transition(ctx context.Context, from *period, to State, cause transitionCause) *period {
	b.mu.Lock()
	if b.current.Load() != from {
		b.mu.Unlock()
		return nil
	}
	now := b.now()
	next := &period{state: to, forced: cause.forced && to == Open}
	switch to {
	case Open:
		next.openErr = &OpenError{Name: b.name, State: Open, forced: next.forced, openTimeout: b.openTimeout, now: b.now}
		if !next.forced {
			openFor := b.openTimeout
			if cause.openFor > 0 {
				openFor = cause.openFor
			}
			next.until = now.Add(openFor)
			next.openErr.Until = next.until
			if b.realClock {
				next.timer = time.AfterFunc(openFor, func() { b.expire(next) })
			}
		}
	case HalfOpen:
		next.openErr = &OpenError{Name: b.name, State: HalfOpen, Until: now, now: b.now}
	}
	if from.timer != nil {
		from.timer.Stop()
	}
	b.current.Store(next)
	change := StateChange{
		Name:                b.name,
		From:                from.state,
		To:                  to,
		At:                  now,
		ConsecutiveFailures: int(cause.failures),
		Forced:              cause.forced,
	}
	deliver := len(b.listeners) > 0 && !b.delivering
	if len(b.listeners) > 0 {
		b.pending = append(b.pending, change)
		b.delivering = true
	}
	b.mu.Unlock()

	b.tel.transitioned(ctx, change)
	if deliver {
		b.deliverChanges()
	}
	return next
}

// expire is the timer's half-open transition for an open period. No call is
// behind it, so its span is a root span.
func (b *Breaker) expire(p *period) {
	b.transition(context.Background(), p, HalfOpen, transitionCause{})
}

// deliverChanges hands queued changes to the listeners, in order, without
// holding the lock while they run. Only one goroutine delivers at a time;
// changes queued meanwhile are delivered by it before it returns.
func (b *Breaker) deliverChanges() {
	var batch []StateChange
	current := 0 // the change being delivered
	delivered := false
	defer func() {
		if delivered {
			return
		}
		// A listener called runtime.Goexit (t.FailNow, say): this
		// goroutine is ending. Hand the changes not yet delivered back
		// to the queue, so that the next transition delivers them,
		// rather than leaving the breaker marked as delivering forever.
		b.mu.Lock()
		if current+1 < len(batch) {
			b.pending = append(batch[current+1:len(batch):len(batch)], b.pending...)
		}
		b.delivering = false
		b.mu.Unlock()
	}()
	for {
		b.mu.Lock()
		batch = b.pending
		b.pending = nil
		if len(batch) == 0 {
			b.delivering = false
			b.mu.Unlock()
			delivered = true
			return
		}
		b.mu.Unlock()
		for i, change := range batch {
			current = i
			for _, listener := range b.listeners {
				b.notify(listener, change)
			}
		}
	}
}

func (b *Breaker) notify(listener func(StateChange), change StateChange) {
	defer func() {
		if r := recover(); r != nil {
			b.tel.listenerPanicked(change, r)
		}
	}()
	listener(change)
}

// ForceOpen opens the breaker and holds it open until Reset: every call is
// rejected, and no probe is let through however long it stays open. It is
// for an operator isolating a dependency during an incident. The transition
// is reported like any other, marked forced; ctx parents its span. Forcing a
// breaker already open on its timeout reports an open -> open change, as the
// period becomes one held open. Forcing a breaker that is already forced open
// does nothing.
func (b *Breaker) ForceOpen(ctx context.Context) {
	for {
		p := b.current.Load()
		if p.state == Open && p.forced {
			return
		}
		if b.transition(ctx, p, Open, transitionCause{forced: true}) != nil {
			return
		}
	}
}

// Reset closes the breaker and clears its consecutive-failure count, from any
// state, including one forced open. It is for an operator who knows the
// dependency is back. A reset of a closed breaker only clears its count and
// reports no transition; ctx parents the transition's span.
func (b *Breaker) Reset(ctx context.Context) {
	for {
		p := b.current.Load()
		if p.state == Closed {
			b.mu.Lock()
			if b.current.Load() != p {
				b.mu.Unlock()
				continue
			}
			// A count at the threshold means a failure's transition to
			// Open is waiting for the lock: a fresh period makes it find
			// its period gone instead of opening the breaker just reset.
			if p.failures.Swap(0) >= b.failureThreshold {
				b.current.Store(&period{state: Closed})
			}
			b.mu.Unlock()
			return
		}
		if b.transition(ctx, p, Closed, transitionCause{forced: true}) != nil {
			return
		}
	}
}
