package breaker

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"go.opentelemetry.io/otel/trace"

	"github.com/levee-go/levee/internal/emit"
)

// Breaker is a circuit breaker: it guards calls to one dependency and stops
// calling it while it is failing, so that a broken dependency costs its
// callers nothing but a fast error.
//
// A Breaker starts Closed and lets every call through, counting consecutive
// failures; a success resets the count. When the count reaches the failure
// threshold (3 by default) the breaker opens: every call is rejected at once
// with an *OpenError matching ErrOpen, and the guarded function is not run.
// When the open timeout (30s by default) has passed, a timer makes the
// breaker HalfOpen: it lets one probe call through at a time, rejecting the
// others; the probe's success closes the breaker, its failure opens it
// again for a fresh timeout. A probe still in flight after another open
// timeout no longer holds the breaker: the next call probes instead, and the
// late probe's result is ignored.
//
// A call whose caller's context has ended counts neither way: it says
// nothing about the dependency (in HalfOpen it frees the probe slot), and
// neither do the errors WithIsIgnored names. A panic in the guarded function
// counts as a failure and propagates unchanged.
//
// Use Call for functions that return only an error, and Policy to put the
// breaker in a resilience pipeline; one breaker may guard calls of many result
// types. ForceOpen and Reset are for operators in an incident.
//
// A Breaker is safe for concurrent use by any number of goroutines and starts
// no goroutine per call. A call through a closed breaker takes no lock, reads
// no clock and allocates nothing. Create one with New; the zero value is not
// usable. A Breaker nobody references any more is garbage, its metrics
// registration included.
type Breaker struct {
	// current is the period the breaker is in. It is replaced, never
	// changed in place, at each transition; the closed fast path is one
	// load of it.
	current atomic.Pointer[period]
	// counts are striped across cache lines of their own, allocated
	// apart, so nothing here is written on the hot path.
	counts outcomeCounts

	// mu serialises transitions. It is never held while user code or
	// telemetry runs.
	mu sync.Mutex

	name             string
	failureThreshold int64
	openTimeout      time.Duration
	retryAfterLimit  time.Duration
	isFailure        func(error) bool
	isIgnored        func(error) bool
	listeners        *notifier // nil without listeners
	tel              *instruments
}

// period is one stay of the breaker in one state. Its fields other than the
// atomics never change after it is published.
type period struct {
	state   State
	forced  bool
	openErr *OpenError  // Open, HalfOpen: the error every rejection returns
	timer   *time.Timer // Open: makes the breaker half-open
	// openedBy is the span of the call that opened the breaker: the
	// timer's half-open transition links to it.
	openedBy trace.SpanContext

	_ [cacheLine]byte
	// failures counts consecutive failures while Closed. Writers touch it
	// only on failures, and readers skip the store when it is zero already.
	failures atomic.Int64
	// probeSince is when the HalfOpen probe in flight was admitted
	// (UnixNano), 0 while the probe slot is free.
	probeSince atomic.Int64
}

// StateChange describes one transition of a breaker, for listeners.
type StateChange struct {
	// Name is the breaker's name.
	Name string
	// From and To are the states left and entered.
	From, To State
	// At is when the change was made.
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
// or WithRetryAfter not positive, a nil predicate or listener, a nil
// provider). It registers the breaker with the meter provider, so its state
// is reported from construction on, for as long as the breaker is
// referenced. Give each breaker of one provider its own name.
func New(name string, opts ...Option) *Breaker {
	cfg := config{
		failureThreshold: DefaultFailureThreshold,
		openTimeout:      DefaultOpenTimeout,
	}
	if name == "" {
		cfg.refuse("name must not be empty")
	}
	for i, opt := range opts {
		if opt == nil {
			cfg.refuse("option " + strconv.Itoa(i) + " is nil")
			continue
		}
		opt(&cfg)
	}
	if len(cfg.problems) > 0 {
		panic("levee: breaker.New(" + strconv.Quote(name) + "): " + strings.Join(cfg.problems, "; "))
	}
	b := &Breaker{
		name:             name,
		failureThreshold: int64(cfg.failureThreshold),
		openTimeout:      cfg.openTimeout,
		retryAfterLimit:  cfg.retryAfterLimit,
		isFailure:        cfg.isFailure,
		isIgnored:        cfg.isIgnored,
		counts:           newOutcomeCounts(),
	}
	if len(cfg.listeners) > 0 {
		b.listeners = &notifier{name: name, listeners: cfg.listeners}
	}
	b.current.Store(&period{state: Closed})
	b.tel = newInstruments(b, cfg.tracerProvider, cfg.meterProvider)
	return b
}

// Name returns the name the breaker was created with.
func (b *Breaker) Name() string { return b.name }

// State returns the breaker's state now. It only reads: the open timer, not
// State, moves an open breaker to HalfOpen. A breaker held open by ForceOpen
// reports Open until Reset.
func (b *Breaker) State() State { return b.current.Load().state }

// errNilFunc refuses Call(ctx, nil): a programming error, not a failure of
// the dependency.
var errNilFunc = errors.New("levee: breaker.Call: fn must not be nil")

// Call runs fn through the breaker: at once with an *OpenError if the breaker
// rejects the call, otherwise fn(ctx), whose error is returned unchanged. A
// call whose ctx is already done returns ctx.Err() at once without running
// fn, whatever the state, and counts as ignored. A nil fn is refused with an
// error, and counts nothing.
func (b *Breaker) Call(ctx context.Context, fn func(context.Context) error) error {
	if fn == nil {
		return errNilFunc
	}
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
	var zero T
	if err := ctx.Err(); err != nil {
		b.counts.add(outcomeIgnored)
		return zero, err
	}
	p := b.current.Load()
	if p.state != Closed {
		var err error
		if p, err = b.admit(ctx, p); err != nil {
			return zero, err
		}
	}
	returned := false
	defer func() {
		if !returned {
			// fn or a predicate panicked (or called runtime.Goexit): a
			// failure, so that no probe slot stays taken. The panic goes
			// on unchanged once this returns.
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
// period the call runs in, or the error that rejects it. An open breaker
// rejects without reading the clock: its timer makes it half-open.
func (b *Breaker) admit(ctx context.Context, p *period) (*period, error) {
	for p.state == HalfOpen {
		now := time.Now().UnixNano()
		if p.probeSince.CompareAndSwap(0, now) {
			return p, nil // the probe (a Reset or ForceOpen racing it makes its result stale)
		}
		since := p.probeSince.Load()
		if since != 0 && now-since < int64(b.openTimeout) {
			break // the probe in flight holds the slot
		}
		if since != 0 {
			// The probe in flight has outlived the open timeout: it gives
			// way to a fresh half-open period, and its result is stale.
			b.mu.Lock()
			if b.current.Load() == p {
				b.current.Store(&period{state: HalfOpen, openErr: p.openErr})
			}
			b.mu.Unlock()
		}
		p = b.current.Load()
	}
	if p.state == Closed {
		return p, nil
	}
	b.counts.add(outcomeRejected)
	b.tel.rejected(ctx, p.state)
	return nil, p.openErr
}

func (b *Breaker) classify(ctx context.Context, err error) outcome {
	switch {
	case err == nil:
		return outcomeSuccess
	case ctx.Err() != nil:
		return outcomeIgnored
	case b.isIgnored != nil && b.isIgnored(err) || isMarkedIgnored(err):
		return outcomeIgnored
	case b.isFailure != nil && !b.isFailure(err):
		return outcomeSuccess
	}
	return outcomeFailure
}

// record applies the outcome of a call that ran in period p; err is the
// call's error, nil after a panic. A result from a period that is no longer
// current (after a Reset, or a probe that outlived its slot) changes nothing
// but the counts.
func (b *Breaker) record(ctx context.Context, p *period, o outcome, err error) {
	switch p.state {
	case Closed:
		b.counts.add(o)
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
		if b.current.Load() != p {
			b.counts.add(outcomeIgnored) // a stale probe
			return
		}
		b.counts.add(o)
		switch o {
		case outcomeSuccess:
			b.transition(ctx, p, Closed, transitionCause{})
		case outcomeFailure:
			b.transition(ctx, p, Open, transitionCause{failures: 1, openFor: b.openFor(err)})
		case outcomeIgnored:
			p.probeSince.Store(0)
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
type retryAfterHint interface {
	error
	RetryAfter() time.Duration
}

// openFor returns how long the failure err keeps the breaker open: its
// RetryAfter hint when WithRetryAfter is set and the hint is longer than the
// open timeout, capped at the limit; 0 (the open timeout) otherwise. A hint
// that panics is no hint: the panic is reported to otel.Handle.
func (b *Breaker) openFor(err error) (d time.Duration) {
	if b.retryAfterLimit <= 0 || err == nil {
		return 0
	}
	hint, ok := errors.AsType[retryAfterHint](err)
	if !ok {
		return 0
	}
	emit.Guard("circuit breaker "+strconv.Quote(b.name)+": the RetryAfter method of a failure", func() {
		d = min(hint.RetryAfter(), b.retryAfterLimit)
	})
	if d <= b.openTimeout {
		return 0
	}
	return d
}

// transition moves the breaker from period from to a new period in state to,
// if from is still current, and reports the change. It returns the new
// period, or nil when another goroutine changed the state first. A Reset of
// a closed breaker starts a fresh period but reports no change.
func (b *Breaker) transition(ctx context.Context, from *period, to State, cause transitionCause) *period {
	b.mu.Lock()
	if b.current.Load() != from {
		b.mu.Unlock()
		return nil
	}
	now := time.Now()
	next := &period{state: to, forced: cause.forced && to == Open}
	switch to {
	case Open:
		next.openErr = &OpenError{name: b.name, state: Open, forced: next.forced, openTimeout: b.openTimeout}
		if !next.forced {
			openFor := b.openTimeout
			if cause.openFor > 0 {
				openFor = cause.openFor
			}
			next.openErr.until = now.Add(openFor)
			next.openedBy = trace.SpanContextFromContext(ctx)
			// The timer holds the breaker weakly: a dropped breaker is
			// garbage even while open, and its timer then does nothing.
			self := weak.Make(b)
			next.timer = time.AfterFunc(openFor, func() {
				if b := self.Value(); b != nil {
					b.transition(context.Background(), next, HalfOpen, transitionCause{})
				}
			})
		}
	case HalfOpen:
		next.openErr = &OpenError{name: b.name, state: HalfOpen, until: now}
	}
	if from.timer != nil {
		from.timer.Stop()
	}
	b.current.Store(next)
	if from.state == Closed && to == Closed {
		b.mu.Unlock()
		return next
	}
	change := StateChange{
		Name:                b.name,
		From:                from.state,
		To:                  to,
		At:                  now,
		ConsecutiveFailures: int(cause.failures),
		Forced:              cause.forced,
	}
	if b.listeners != nil {
		b.listeners.enqueue(change) // under mu: changes queue in the order they were made
	}
	b.mu.Unlock()

	b.tel.transitioned(ctx, change, from.openedBy)
	return next
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

// Reset starts a fresh closed period from any state, including one forced
// open, with its consecutive-failure count at zero: calls admitted before
// the Reset change nothing after it, whatever they return. It is for an
// operator who knows the dependency is back. A reset of a closed breaker
// reports no transition; ctx parents the transition's span otherwise.
func (b *Breaker) Reset(ctx context.Context) {
	for b.transition(ctx, b.current.Load(), Closed, transitionCause{forced: true}) == nil {
	}
}
