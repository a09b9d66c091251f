package hedge

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/levee-go/levee/internal/budget"
	"github.com/levee-go/levee/internal/emit"
	"github.com/levee-go/levee/resilience"
)

// DefaultName is the levee.policy.name of a hedge applied outside any
// pipeline (its Apply called directly); in a pipeline it reports under the
// pipeline's name (see resilience.WrapWith and resilience.Named).
const DefaultName = "hedge"

// Policy returns a policy that hedges slow calls: when the call's attempt
// has not answered after delay, it starts another, the same function with
// the same context values, and then another after each further delay, up
// to WithMaxHedges (1 by default), as long as no attempt has succeeded and
// one is still running. The first success is the call's result. Once it is
// known the other attempts are cancelled through their context, and their
// results dropped (WithRelease releases the successful ones). If every
// attempt fails, the call returns an *Error holding each attempt's error;
// a call that started no hedge returns its one attempt's result as it is.
// A failure is not a reason to hedge: retries are retry.Policy's job.
//
// Hedge reads, and other calls that are safe to make twice. Send the
// hedge to another replica (a load balancer does), so that a slow server
// does not answer both. A fixed delay suits a known latency; for one that
// moves, WithQuantileDelay hedges at a recent quantile, p95 in The Tail at
// Scale, where it cut a 1,000-key read's 99.9th percentile from 1,800 ms to
// 74 ms for 2% more requests. WithBudget bounds hedges and retries
// together.
//
// The first attempt runs in the caller's goroutine, hedges in goroutines of
// their own that live only as long as their attempt. Every attempt gets one
// context, derived from the caller's and cancelled when the call returns:
// a result must not need its attempt's context afterwards. The call
// returns as soon as it is decided, leaving losing hedges to end on their
// own once cancelled; but it cannot return before its first attempt does,
// so, as with resilience.Timeout, hedging relies on the function honouring
// its context. A panic in an attempt is raised again in the caller, with
// the same value; one in a hedge that lost is reported to otel.Handle. A
// call whose context is already done runs nothing and returns ctx.Err(),
// and one whose caller's context ends while hedges run returns at once.
//
// The hedge reports under its pipeline's Telemetry (levee.hedge.started,
// levee.hedge.wins, levee.hedge.budget_exhausted and a span event per
// hedge; see docs/telemetry.md). A call whose first attempt answers within
// the delay does no telemetry and makes one allocation, its attempts'
// context: the timer that would have started its hedge is stopped and
// kept for the next call (outside testing/synctest bubbles; in one, each
// call makes its own, so that one pipeline may serve calls in bubbles and
// outside them). The context makes its Done channel, as a
// context.WithCancel of the caller's, only when an attempt asks for it.
// delay must be positive and the options valid; Policy panics otherwise,
// naming the setting. The policy is safe for concurrent use; one policy
// value may be shared by many pipelines.
func Policy[T any](delay time.Duration, opts ...Option) resilience.Policy[T] {
	cfg := config{maxHedges: DefaultMaxHedges}
	if delay <= 0 {
		cfg.refuse("delay must be positive, got %v", delay)
	}
	for i, opt := range opts {
		if opt == nil {
			cfg.refuse("option %d is nil", i)
			continue
		}
		opt(&cfg)
	}
	release := releaseFor[T](&cfg)
	if len(cfg.problems) > 0 {
		panic("levee: hedge.Policy: " + strings.Join(cfg.problems, "; "))
	}
	return &policy[T]{cfg: cfg, delay: delay, release: release}
}

type policy[T any] struct {
	cfg     config
	delay   time.Duration
	release func(T)
}

func (p *policy[T]) Apply(next resilience.Func[T]) resilience.Func[T] {
	return p.ApplyWith(resilience.Telemetry{}, next)
}

// ApplyWith builds the hedge of one pipeline, reporting under tel.
func (p *policy[T]) ApplyWith(tel resilience.Telemetry, next resilience.Func[T]) resilience.Func[T] {
	c := &core[T]{
		delay:     p.delay,
		maxHedges: p.cfg.maxHedges,
		release:   p.release,
		tel:       newInstruments(tel, p.cfg.maxHedges),
	}
	if p.cfg.budget != nil {
		c.budget = (*budget.Budget)(p.cfg.budget)
	}
	if p.cfg.quantile > 0 {
		c.latencies = newLatencies(p.cfg.quantile, p.cfg.window, p.delay)
	}
	return func(ctx context.Context) (T, error) { return c.do(ctx, next) }
}

// core is one pipeline's hedge.
type core[T any] struct {
	delay     time.Duration
	maxHedges int
	release   func(T)
	budget    *budget.Budget
	latencies *latencies // nil without WithQuantileDelay
	tel       *instruments
	// calls holds the state of calls that started no hedge, with their
	// stopped timers, for reuse: no goroutine and no timer refer to them
	// any more. Only calls made outside any testing/synctest bubble go in
	// and come out (see inBubble).
	calls sync.Pool
}

// call is the state of one hedged call. Its fields from core to timer are
// set by the caller before the first timer is armed and read-only after.
type call[T any] struct {
	core *core[T]
	fire func() // startHedge
	// ctx is every attempt's context, cancelled when the call is decided
	// or returns.
	ctx    *attemptCtx
	caller context.Context // the caller's own, for its end and its span
	next   resilience.Func[T]
	delay  time.Duration
	// timer starts the first hedge. It stays with the call when the call
	// is reused, stopped, and is armed again by Reset: outside a bubble a
	// call that answers within the delay allocates only its context.
	timer *time.Timer

	mu       sync.Mutex
	started  int // attempts started, the first included
	running  int
	decided  bool
	winner   int // the number of the attempt that succeeded, 0 for none
	v        T
	errs     []error   // by attempt number - 1
	panicked *panicked // an attempt's panic, raised again in the caller
	gaveUp   error     // the caller's context's error, when it ended first
	pending  *time.Timer
	waiting  chan struct{} // closed when decided, made when the caller waits
}

type panicked struct{ value any }

// errGoexit is the error of a hedge whose function called runtime.Goexit.
var errGoexit = errors.New("levee: hedge: the attempt called runtime.Goexit")

func (c *core[T]) do(ctx context.Context, next resilience.Func[T]) (T, error) {
	if err := ctx.Err(); err != nil {
		var zero T
		return zero, err
	}
	if c.budget != nil {
		c.budget.Deposit()
	}
	// One clock read tells a synctest bubble apart (and is the start of
	// the call's latency): a timer made outside a bubble must not serve a
	// call in one, where it would fire on real time, nor one made in a
	// bubble a call in another or outside, where using it is fatal.
	now := time.Now()
	bubbled := inBubble(now)
	var h *call[T]
	if !bubbled {
		h, _ = c.calls.Get().(*call[T])
	}
	if h == nil {
		h = &call[T]{core: c}
		h.fire = h.startHedge // bound once: arming the timer allocates no closure
	}
	h.ctx = newAttemptCtx(ctx)
	h.caller, h.next = ctx, next
	h.started, h.running = 1, 1
	h.delay = c.delay
	if c.latencies != nil {
		h.delay = c.latencies.delay()
	}
	if h.timer == nil {
		h.timer = time.AfterFunc(h.delay, h.fire)
	} else {
		h.timer.Reset(h.delay)
	}
	returned := false
	defer func() {
		if !returned {
			h.firstPanicked()
		}
	}()
	v, err := next(h.ctx)
	returned = true
	if h.timer.Stop() {
		// No hedge started and none will: the first attempt is the call.
		h.ctx.cancel()
		if err == nil && c.latencies != nil {
			c.latencies.record(time.Since(now))
		}
		if !bubbled {
			h.recycle()
		}
		return v, err
	}
	return h.firstReturned(now, v, err)
}

// inBubble reports whether now, just read from time.Now, was read in a
// testing/synctest bubble: there, and only there, time.Now carries no
// monotonic clock reading (TestInBubble holds the runtime to it), and a
// Time without one is equal to itself rounded by Round(0), which strips it.
func inBubble(now time.Time) bool { return now == now.Round(0) }

// recycle puts back a call that started no hedge, with its stopped timer,
// for the next call.
func (h *call[T]) recycle() {
	h.ctx, h.caller, h.next = nil, nil, nil
	h.core.calls.Put(h)
}

// firstReturned ends a call whose first attempt returned v, err after the
// first hedge's timer fired: hedges may be running.
func (h *call[T]) firstReturned(start time.Time, v T, err error) (T, error) {
	var ran time.Duration
	if h.core.latencies != nil {
		ran = time.Since(start)
	}
	h.mu.Lock()
	out := h.ended(1, v, err, nil)
	if !h.decided {
		// The first attempt failed while hedges run: wait for them, or
		// for the caller to give up.
		h.waiting = make(chan struct{})
		h.mu.Unlock()
		select {
		case <-h.waiting:
		case <-h.caller.Done():
			h.mu.Lock()
			if !h.decided {
				h.gaveUp = h.caller.Err()
				out.settled = h.settle(0)
			}
			h.mu.Unlock()
		}
		h.mu.Lock()
	}
	winner, result, panicked := h.winner, h.v, h.panicked
	callErr := h.errorLocked()
	h.mu.Unlock()
	h.ctx.cancel()
	h.report(out)
	if c := h.core; c.latencies != nil && (err == nil || (out.late && winner > 1)) {
		// A first attempt that lost, cancelled when a hedge won, counts
		// with the time it ran: a lower bound of its latency, and past the
		// delay. One that failed on its own does not count.
		c.latencies.record(ran)
	}
	if panicked != nil {
		panic(panicked.value)
	}
	if winner > 0 {
		return result, nil
	}
	if callErr == nil { // the only attempt
		return v, err
	}
	var zero T
	return zero, callErr
}

// firstPanicked ends a call whose first attempt panicked, in the caller's
// goroutine, on the panic's way up: the hedges are cancelled and their
// results dropped.
func (h *call[T]) firstPanicked() {
	h.timer.Stop()
	h.mu.Lock()
	h.running--
	if !h.decided {
		h.settle(0)
	}
	h.mu.Unlock()
	h.ctx.cancel()
}

// startHedge starts the next hedge, on the timer's goroutine, and runs it
// there, unless the call is decided or the budget refuses. (A call none of
// whose attempts is running is decided: the last to fail decides it, for a
// failure is no reason to hedge.)
func (h *call[T]) startHedge() {
	h.mu.Lock()
	if h.decided {
		h.mu.Unlock()
		return
	}
	if b := h.core.budget; b != nil && !b.TryWithdraw() {
		h.mu.Unlock()
		h.core.tel.budgetRefused(h.caller)
		return
	}
	h.started++
	h.running++
	attempt := h.started
	if attempt <= h.core.maxHedges { // hedges so far: attempt - 1
		h.pending = time.AfterFunc(h.delay, h.fire)
	}
	h.mu.Unlock()
	h.core.tel.hedgeStarted(h.caller, attempt, h.delay)
	h.run(attempt)
}

// run runs attempt number attempt, a hedge, in its own goroutine, and hands
// what it came to (a result, an error, a panic) to the call.
func (h *call[T]) run(attempt int) {
	var (
		v        T
		err      error
		p        *panicked
		returned bool
	)
	defer func() {
		if !returned {
			if r := recover(); r != nil {
				p = &panicked{value: r}
			} else {
				err = errGoexit
			}
		}
		h.mu.Lock()
		out := h.ended(attempt, v, err, p)
		h.mu.Unlock()
		h.report(out)
		if p != nil && out.late {
			emit.Handle(fmt.Errorf("levee: hedge %s: attempt %d panicked after the call was decided: %v", strconv.Quote(h.core.tel.name), attempt, p.value))
		}
	}()
	v, err = h.next(h.ctx)
	returned = true
}

// outcome is what ended did, for report to act on outside the lock.
type outcome[T any] struct {
	late    bool // the call was decided before this attempt ended
	drop    bool // release v: a success that lost
	v       T
	settled settled
}

// settled is what deciding the call leaves to report.
type settled struct {
	winner int  // the attempt that won a hedged call, 0 if none
	done   bool // this attempt decided the call
}

// ended records the end of attempt number attempt: v, err, or a panic p.
// It decides the call when it can: on a success, on a panic, or when every
// attempt started has failed. h.mu is held.
func (h *call[T]) ended(attempt int, v T, err error, p *panicked) outcome[T] {
	h.running--
	if h.decided {
		return outcome[T]{late: true, drop: err == nil && p == nil, v: v}
	}
	var out outcome[T]
	switch {
	case p != nil:
		h.panicked = p
		out.settled = h.settle(0)
	case err == nil:
		h.v = v
		out.settled = h.settle(attempt)
	default:
		for len(h.errs) < attempt {
			h.errs = append(h.errs, nil)
		}
		h.errs[attempt-1] = err
		if h.running == 0 {
			out.settled = h.settle(0)
		}
	}
	return out
}

// settle decides the call, won by attempt number winner (0: none), stops
// the next hedge and wakes the caller if it waits. The goroutine that
// settles cancels the attempts still running once it has let go of h.mu,
// so that no context's cancellation runs under the lock. h.mu is held.
func (h *call[T]) settle(winner int) settled {
	h.decided = true
	h.winner = winner
	if h.pending != nil {
		h.pending.Stop()
	}
	if h.waiting != nil {
		close(h.waiting)
	}
	if winner > 0 && h.started > 1 {
		return settled{winner: winner, done: true}
	}
	return settled{done: true}
}

// report cancels the other attempts of a call out decided, releases a
// dropped result and counts a win, outside the lock.
func (h *call[T]) report(out outcome[T]) {
	if out.settled.done {
		h.ctx.cancel()
	}
	if out.drop && h.core.release != nil {
		emit.Guard("hedge "+strconv.Quote(h.core.tel.name)+": releasing a dropped result", func() { h.core.release(out.v) })
	}
	if out.settled.winner > 0 {
		h.core.tel.won(h.caller, out.settled.winner)
	}
}

// errorLocked returns the error of a call no attempt won: nil when its only
// attempt's error is to be returned as it is. h.mu is held.
func (h *call[T]) errorLocked() error {
	if h.winner > 0 || h.panicked != nil || (h.started == 1 && h.gaveUp == nil) {
		return nil
	}
	errs := make([]error, 0, len(h.errs))
	for _, err := range h.errs {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return &Error{Name: h.core.tel.name, Attempts: h.started, Errs: errs, gaveUp: h.gaveUp}
}

// Error is the error of a hedged call no attempt of which succeeded. It
// holds the error of each attempt that ended, in the order the attempts
// started, and errors.Is and errors.As find each one. When the caller's
// context ended while attempts still ran, it matches that context's error
// too.
type Error struct {
	// Name is the name the hedge reports under: its pipeline's.
	Name string
	// Attempts is how many attempts were started, the first included.
	Attempts int
	// Errs are the errors of the attempts that ended, in attempt order.
	Errs []error

	gaveUp error
}

// Error names the hedge and lists the attempts' errors.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("levee: hedge ")
	b.WriteString(strconv.Quote(e.Name))
	if e.gaveUp != nil {
		fmt.Fprintf(&b, ": %v while %d of %d attempts ran", e.gaveUp, e.Attempts-len(e.Errs), e.Attempts)
	} else {
		fmt.Fprintf(&b, ": all %d attempts failed", e.Attempts)
	}
	for i, err := range e.Errs {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(err.Error())
	}
	return b.String()
}

// Unwrap returns the attempts' errors, and the caller's context's error
// when it ended first.
func (e *Error) Unwrap() []error {
	if e.gaveUp != nil {
		return append([]error{e.gaveUp}, e.Errs...)
	}
	return e.Errs
}
