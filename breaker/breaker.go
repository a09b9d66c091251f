package breaker

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
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
// Instead of a streak, a breaker may trip on a rate over a window of its
// recent calls: WithCountWindow or WithTimeWindow, with WithFailureRate,
// WithSlowCallRate (with WithSlowCallDuration) or a rule of your own,
// WithTripRule; WithMinCalls keeps a few calls from deciding. WithHalfOpen
// lets several probes through and asks several to succeed; WithOpenBackoff
// lengthens the open period on each reopening; shadow mode
// (SetShadowMode) computes and reports everything but rejects nothing.
//
// A call whose caller's context has ended counts neither way: it says
// nothing about the dependency (in HalfOpen it frees the probe slot), and
// neither do the errors WithIsIgnored names. A panic in the guarded function
// counts as a failure and propagates unchanged.
//
// Use Call for functions that return only an error, and Policy to put the
// breaker in a resilience pipeline; one breaker may guard calls of many result
// types. ForceOpen and Reset are for operators in an incident. Follow and
// WithHalfOpenGate let a coordinator share one decision among many breakers
// (leveeredis's fleet breaker, one per instance of a service).
//
// A Breaker is safe for concurrent use by any number of goroutines and starts
// no goroutine per call. A call through a closed breaker takes no lock and
// allocates nothing, and reads no clock unless WithSlowCallDuration or
// WithCallDurationHistogram asks it to time its calls. Create one with New;
// the zero value is not usable. A Breaker nobody references any more is
// garbage, its timers and metrics registration included.
type Breaker struct {
	// current is the period the breaker is in. It is replaced, never
	// changed in place, at each transition; the closed fast path is one
	// load of it.
	current atomic.Pointer[period]
	// counts are striped across cache lines of their own, allocated
	// apart, so nothing here is written on the hot path.
	counts outcomeCounts
	// shadow is read only by a call the breaker would reject.
	shadow atomic.Bool
	// shadowSeen is set once shadow mode has been on: from then on the
	// shadow_rejected series is reported.
	shadowSeen atomic.Bool

	// mu serialises transitions. It is never held while user code or
	// telemetry runs.
	mu sync.Mutex

	name             string
	rule             tripRule
	failureThreshold int64
	// timed is set when the breaker reads the clock around each call it
	// runs: for slow calls, or the duration histogram.
	timed           bool
	openTimeout     time.Duration
	retryAfterLimit time.Duration
	isFailure       func(error) bool
	isIgnored       func(error) bool
	listeners       *notifier // nil without listeners
	// halfOpenGate, when set, is asked by the open timer whether the
	// breaker may half-open (WithHalfOpenGate).
	halfOpenGate func() time.Duration
	tel          *instruments
	// rules holds the settings beyond the consecutive-failures rule:
	// defaultRules, shared, for a breaker that uses none of them.
	rules *rules
}

// rules are the settings of the trip rules other than the default one, the
// window, slow calls, half-open probing and the open backoff. They never
// change after New.
type rules struct {
	failureRate       float64
	slowCallRate      float64
	minCalls          int64
	tripFunc          func(WindowCounts) bool
	countWindow       int64         // the size of a count window, 0 without one
	timeWindow        time.Duration // the span of a time window, 0 without one
	timeBuckets       int
	slowCallDuration  time.Duration // 0: no call is slow
	halfOpenProbes    int
	halfOpenSuccesses int64
	backoff           openBackoff
}

// defaultRules are the rules of a breaker that sets none: one probe, one
// success, no window.
var defaultRules = rules{halfOpenProbes: 1, halfOpenSuccesses: 1}

// windowed reports whether the breaker has a window.
func (r *rules) windowed() bool { return r.countWindow > 0 || r.timeWindow > 0 }

// period is one stay of the breaker in one state. Its fields other than the
// atomics never change after it is published.
type period struct {
	state State
	// opens is, in Open and HalfOpen, how many open periods in a row this
	// one is part of, since the breaker was last closed (1 for the first;
	// it stops growing at its maximum, long after any backoff's).
	opens  uint16
	forced bool
	// plain is set for a closed period whose calls need nothing but the
	// consecutive-failure count: no window, no clock. Its calls take the
	// fast path. windowed is set for a closed period with a window and no
	// clock: its calls take a path as short but for the window's count.
	// Every other period's calls take the full path.
	plain, windowedOnly bool
	openErr             *OpenError  // Open, HalfOpen: the error every rejection returns
	timer               *time.Timer // Open: makes the breaker half-open
	// openedBy is the span of the call that opened the breaker, if it had
	// one: the timer's half-open transition links to it.
	openedBy *trace.SpanContext
	// The window: of a closed period, where its calls are counted (one of
	// the two, or neither); of an open or half-open period, the window of
	// the closed period that ended, kept as it was for the gauges.
	countWindow *countWindow
	timeWindow  *timeWindow
	// moreProbes are, in HalfOpen, the probe places after the first of a
	// breaker WithHalfOpen gives several; nil for one.
	moreProbes *[]atomic.Int64

	_ [cacheLine]byte
	// failures counts consecutive failures while Closed. Writers touch it
	// only on failures, and readers skip the store when it is zero already.
	failures atomic.Int64
	// successes counts, in HalfOpen, the probes that succeeded.
	successes atomic.Int64
	// probe is, in HalfOpen, when the probe in the first place was
	// admitted (UnixNano), 0 while the place is free.
	probe atomic.Int64
}

// places returns how many probes a half-open period lets through at once.
func (p *period) places() int {
	if p.moreProbes == nil {
		return 1
	}
	return 1 + len(*p.moreProbes)
}

// place returns the i-th probe place: when its probe was admitted, 0 if free.
func (p *period) place(i int) *atomic.Int64 {
	if i == 0 {
		return &p.probe
	}
	return &(*p.moreProbes)[i-1]
}

// windowed reports whether the period has a window.
func (p *period) windowed() bool { return p.countWindow != nil || p.timeWindow != nil }

// windowCounts returns the counts of the period's window now, and the
// current streak of failures while closed.
func (p *period) windowCounts() WindowCounts {
	var c WindowCounts
	switch {
	case p.countWindow != nil:
		c = p.countWindow.counts()
	case p.timeWindow != nil:
		c = p.timeWindow.countsNow()
	}
	if p.state == Closed {
		c.ConsecutiveFailures = p.failures.Load()
	}
	return c
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
	// the streak of failures when it tripped from Closed (at least the
	// threshold under the consecutive-failures rule, more when failures
	// arrive at once), 1 for a failed probe; 0 for other changes.
	ConsecutiveFailures int
	// Forced is true for a change made by ForceOpen or Reset.
	Forced bool
	// TripRule names the rule that opened the breaker from Closed:
	// "consecutive_failures", "failure_rate", "slow_call_rate" or
	// "custom" (the telemetry.TripRule* values); "" for other changes.
	TripRule string
	// Window holds the counts of the breaker's window when a trip rule
	// opened it (zero without a window, and for other changes).
	Window WindowCounts
	// OpenFor is how long the open period this change starts lasts
	// before the breaker half-opens: the open timeout, grown by
	// WithOpenBackoff, lengthened by WithRetryAfter. 0 for other changes,
	// and for ForceOpen, which holds the breaker open until Reset.
	OpenFor time.Duration
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
		failureThreshold:  DefaultFailureThreshold,
		openTimeout:       DefaultOpenTimeout,
		rule:              ruleConsecutive,
		halfOpenProbes:    1,
		halfOpenSuccesses: 1,
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
	cfg.check()
	if len(cfg.problems) > 0 {
		panic("levee: breaker.New(" + strconv.Quote(name) + "): " + strings.Join(cfg.problems, "; "))
	}
	minCalls := cfg.minCalls
	if minCalls == 0 {
		minCalls = DefaultMinCalls
		if cfg.countWindow > 0 {
			minCalls = min(minCalls, cfg.countWindow)
		}
	}
	r := rules{
		failureRate:       cfg.failureRate,
		slowCallRate:      cfg.slowCallRate,
		minCalls:          int64(minCalls),
		tripFunc:          cfg.tripFunc,
		countWindow:       int64(cfg.countWindow),
		timeWindow:        cfg.timeWindow,
		timeBuckets:       cfg.timeBuckets,
		slowCallDuration:  cfg.slowDuration,
		halfOpenProbes:    cfg.halfOpenProbes,
		halfOpenSuccesses: int64(cfg.halfOpenSuccesses),
		backoff:           cfg.backoff,
	}
	if cfg.jitterSeed != nil {
		r.backoff.rng = rand.New(rand.NewPCG(*cfg.jitterSeed, *cfg.jitterSeed))
	}
	b := &Breaker{
		name:             name,
		rule:             cfg.rule,
		failureThreshold: int64(cfg.failureThreshold),
		timed:            cfg.slowDuration > 0 || cfg.callDuration,
		openTimeout:      cfg.openTimeout,
		retryAfterLimit:  cfg.retryAfterLimit,
		isFailure:        cfg.isFailure,
		isIgnored:        cfg.isIgnored,
		halfOpenGate:     cfg.halfOpenGate,
		counts:           newOutcomeCounts(),
		rules:            &defaultRules,
	}
	if cfg.rule != ruleConsecutive || len(cfg.windows) > 0 || cfg.halfOpenProbes > 1 || cfg.backoffGiven {
		b.rules = &r
	}
	if cfg.shadow {
		b.shadow.Store(true)
		b.shadowSeen.Store(true)
	}
	if len(cfg.listeners) > 0 {
		b.listeners = &notifier{name: name, listeners: cfg.listeners}
	}
	b.current.Store(b.newClosed(time.Now()))
	b.tel = newInstruments(b, cfg.tracerProvider, cfg.meterProvider, cfg.callDuration)
	return b
}

// newClosed returns a fresh closed period starting at now, with an empty
// window of its own.
func (b *Breaker) newClosed(now time.Time) *period {
	p := &period{state: Closed}
	switch r := b.rules; {
	case r.countWindow > 0:
		p.countWindow = newCountWindow(r.countWindow, r.slowCallDuration > 0)
	case r.timeWindow > 0:
		p.timeWindow = newTimeWindow(now, r.timeWindow, r.timeBuckets, r.slowCallDuration > 0)
	}
	p.plain = !p.windowed() && !b.timed
	p.windowedOnly = p.windowed() && !b.timed
	return p
}

// newHalfOpen returns a fresh half-open period that follows from, with
// every probe place free; openErr is the error its rejections return.
func (b *Breaker) newHalfOpen(from *period, openErr *OpenError) *period {
	p := &period{state: HalfOpen, openErr: openErr, opens: from.opens, countWindow: from.countWindow, timeWindow: from.timeWindow}
	if n := b.rules.halfOpenProbes; n > 1 {
		more := make([]atomic.Int64, n-1)
		p.moreProbes = &more
	}
	return p
}

// Name returns the name the breaker was created with.
func (b *Breaker) Name() string { return b.name }

// State returns the breaker's state now. It only reads: the open timer, not
// State, moves an open breaker to HalfOpen. A breaker held open by ForceOpen
// reports Open until Reset.
func (b *Breaker) State() State { return b.current.Load().state }

// Window returns the counts of the breaker's window now (WithCountWindow,
// WithTimeWindow): while closed, its recent calls; while open or
// half-open, the window as it was when the breaker left Closed. Without a
// window only ConsecutiveFailures is counted. The counts are read one
// after another, not as one snapshot.
func (b *Breaker) Window() WindowCounts { return b.current.Load().windowCounts() }

// SetShadowMode switches shadow mode on or off, at once for every call that
// comes after; it is safe to call at any time from any goroutine. In shadow
// mode the breaker computes its state, reports every transition, and
// rejects nothing: a call it would have rejected (open, forced open
// included, or half-open with every probe place taken) runs anyway, counts
// as "shadow_rejected" (Counts.ShadowRejected, levee.outcome =
// shadow_rejected) and its result changes nothing, while the probes of a
// half-open breaker still decide as they would. It lets a team try a
// breaker's thresholds on production traffic before enforcing them
// (resilience4j's metrics-only state). Default: off, or on with
// WithShadowMode.
func (b *Breaker) SetShadowMode(on bool) {
	if on {
		b.shadowSeen.Store(true)
	}
	b.shadow.Store(on)
}

// ShadowMode reports whether the breaker is in shadow mode.
func (b *Breaker) ShadowMode() bool { return b.shadow.Load() }

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
// The path of a plain closed breaker (the consecutive-failures rule, no
// window, no clock) is kept short enough to read at a glance: one load of
// the period, the call, one load of the failure count, stored only when it
// is not zero already, and one add to the success count. Every other call
// takes executeFull.
func execute[T any](b *Breaker, ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		b.counts.add(outcomeIgnored)
		return zero, err
	}
	p := b.current.Load()
	if !p.plain {
		switch {
		case p.state == Open && !b.shadow.Load():
			return zero, b.reject(ctx, p) // as fast as before the other paths were
		case p.windowedOnly:
			return executeWindowed(b, ctx, p, fn)
		}
		return executeFull(b, ctx, p, fn)
	}
	returned := false
	defer func() {
		if !returned {
			// fn or a predicate panicked (or called runtime.Goexit): a
			// failure. The panic goes on unchanged once this returns.
			b.recordClosed(ctx, p, outcomeFailure, false, nil)
		}
	}()
	v, err := fn(ctx)
	if err == nil {
		returned = true
		// The failure count is loaded before the success count's atomic
		// add, not after: on amd64 a LOCK XADD completes every earlier
		// store and load before any later load runs, so a load after it
		// waits for it.
		if p.failures.Load() != 0 {
			p.failures.Store(0)
		}
		b.counts.add(outcomeSuccess)
		return v, nil
	}
	o := b.classify(ctx, err)
	returned = true
	b.recordClosed(ctx, p, o, false, err)
	return v, err
}

// executeWindowed runs a call through a closed breaker with a window and no
// clock to read: the plain path, and one more count for a success, on the
// same stripe as the breaker's counts. A success of a period that has
// ended counts in no window.
func executeWindowed[T any](b *Breaker, ctx context.Context, p *period, fn func(context.Context) (T, error)) (T, error) {
	returned := false
	defer func() {
		if !returned {
			b.recordClosed(ctx, p, outcomeFailure, false, nil)
		}
	}()
	v, err := fn(ctx)
	if err == nil {
		returned = true
		stripe := b.counts.stripe()
		b.counts.addAt(stripe, outcomeSuccess)
		if p.failures.Load() != 0 {
			p.failures.Store(0)
		}
		if b.current.Load() == p {
			if w := p.countWindow; w != nil {
				w.calls.addAt(stripe)
			} else {
				p.timeWindow.addSuccess(stripe)
			}
		}
		return v, nil
	}
	o := b.classify(ctx, err)
	returned = true
	b.recordClosed(ctx, p, o, false, err)
	return v, err
}

// executeFull runs a call that found the breaker not closed, or closed with
// a clock to read.
func executeFull[T any](b *Breaker, ctx context.Context, p *period, fn func(context.Context) (T, error)) (T, error) {
	slot := -1
	if p.state != Closed {
		var err error
		if p, slot, err = b.admit(ctx, p); err != nil {
			var zero T
			return zero, err
		}
		if p == nil {
			return executeShadowed(b, ctx, fn)
		}
	}
	var start time.Time
	if b.timed {
		start = time.Now()
	}
	returned := false
	defer func() {
		if !returned {
			// A panic, or runtime.Goexit: a failure, so that no probe
			// place stays taken.
			b.record(ctx, p, slot, outcomeFailure, nil, b.took(start))
		}
	}()
	v, err := fn(ctx)
	o := outcomeSuccess
	if err != nil {
		o = b.classify(ctx, err)
	}
	returned = true
	b.record(ctx, p, slot, o, err, b.took(start))
	return v, err
}

// executeShadowed runs a call that the breaker would have rejected and
// shadow mode lets through: it was counted when admitted, and its result
// changes nothing.
func executeShadowed[T any](b *Breaker, ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	if b.tel.callDuration != nil {
		start := time.Now()
		defer func() { b.tel.recordDuration(ctx, outcomeShadowRejected, time.Since(start)) }()
	}
	return fn(ctx)
}

// took returns how long the call that started at start has run, when the
// breaker reads the clock; 0 otherwise.
func (b *Breaker) took(start time.Time) time.Duration {
	if !b.timed {
		return 0
	}
	return time.Since(start)
}

// admit decides a call that found the breaker not closed. It returns the
// period the call runs in and, for a half-open probe, its place; or a nil
// period for a call that shadow mode lets through; or the error that
// rejects it. An open breaker rejects without reading the clock: its timer
// makes it half-open.
func (b *Breaker) admit(ctx context.Context, p *period) (*period, int, error) {
	for p.state == HalfOpen {
		now := time.Now().UnixNano()
		places := p.places()
		for i := range places {
			if p.place(i).CompareAndSwap(0, now) {
				return p, i, nil // a probe (a Reset or ForceOpen racing it makes its result stale)
			}
		}
		oldest := int64(0)
		for i := range places {
			if since := p.place(i).Load(); since != 0 && (oldest == 0 || since < oldest) {
				oldest = since
			} else if since == 0 {
				oldest = -1 // a place was freed meanwhile: try again
				break
			}
		}
		if oldest == -1 {
			continue
		}
		if now-oldest < int64(b.openTimeout) {
			break // the probes in flight hold every place
		}
		// The oldest probe has outlived the open timeout: the probes give
		// way to a fresh half-open period, and their results are stale.
		b.mu.Lock()
		if b.current.Load() == p {
			b.current.Store(b.newHalfOpen(p, p.openErr))
		}
		b.mu.Unlock()
		p = b.current.Load()
	}
	if p.state == Closed {
		return p, -1, nil
	}
	if b.shadow.Load() {
		b.counts.add(outcomeShadowRejected)
		b.tel.rejected(ctx, p.state, true)
		return nil, -1, nil
	}
	return nil, -1, b.reject(ctx, p)
}

// reject counts and reports a rejection by p, and returns its error.
func (b *Breaker) reject(ctx context.Context, p *period) error {
	b.counts.add(outcomeRejected)
	b.tel.rejected(ctx, p.state, false)
	return p.openErr
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

// record applies the outcome of a call that ran in period p: slot is its
// probe place in a half-open period, took how long it ran (when the breaker
// reads the clock), err its error (nil after a panic). A result from a
// period that is no longer current (after a Reset, or a probe that outlived
// its place) changes nothing but the counts.
func (b *Breaker) record(ctx context.Context, p *period, slot int, o outcome, err error, took time.Duration) {
	if b.tel.callDuration != nil {
		b.tel.recordDuration(ctx, o, took)
	}
	slow := b.rules.slowCallDuration > 0 && took > b.rules.slowCallDuration // an ignored call counts in no window
	switch p.state {
	case Closed:
		b.recordClosed(ctx, p, o, slow, err)
	case HalfOpen:
		if b.current.Load() != p {
			b.counts.add(outcomeIgnored) // a stale probe
			return
		}
		b.counts.add(o)
		if o == outcomeSuccess && slow && b.rule == ruleSlowCallRate {
			o = outcomeFailure // under the slow-call rule a slow probe fails
		}
		switch o {
		case outcomeSuccess:
			if p.successes.Add(1) >= b.rules.halfOpenSuccesses {
				b.transition(ctx, p, Closed, transitionCause{})
			} else {
				p.place(slot).Store(0)
			}
		case outcomeFailure:
			b.transition(ctx, p, Open, transitionCause{failures: 1, hint: b.openFor(err)})
		case outcomeIgnored:
			p.place(slot).Store(0)
		}
	}
}

// recordClosed applies the outcome of a call that ran in the closed period
// p, and trips the breaker if its rule says so. A window counts only the
// calls of its own period: a call admitted before a transition or a Reset
// counts in none.
func (b *Breaker) recordClosed(ctx context.Context, p *period, o outcome, slow bool, err error) {
	b.counts.add(o)
	var consecutive int64
	switch o {
	case outcomeSuccess:
		if p.failures.Load() != 0 {
			p.failures.Store(0)
		}
	case outcomeFailure:
		consecutive = p.failures.Add(1)
	default:
		return
	}
	failed := o == outcomeFailure
	if !p.windowed() {
		// The consecutive-failures rule, the only one without a window:
		// kept as short as it was before there were others.
		if failed && consecutive >= b.failureThreshold {
			b.transition(ctx, p, Open, transitionCause{rule: ruleConsecutive, failures: consecutive, hint: b.openFor(err)})
		}
		return
	}
	if b.current.Load() != p {
		return
	}
	var c WindowCounts
	switch {
	case p.countWindow != nil:
		if !failed && !slow {
			p.countWindow.addSuccess()
			return
		}
		p.countWindow.add(failed, slow)
		c = p.countWindow.counts()
	default:
		word, ok := p.timeWindow.add(failed, slow)
		if !ok || !failed && !slow {
			return
		}
		c = p.timeWindow.countsAt(word)
	}
	c.ConsecutiveFailures = consecutive
	if b.trips(c, failed, slow) {
		b.transition(ctx, p, Open, transitionCause{rule: b.rule, failures: consecutive, window: c, hint: b.openFor(err)})
	}
}

// transitionCause says why a transition is made.
type transitionCause struct {
	failures int64    // the consecutive failures when the breaker opened
	rule     tripRule // the rule that tripped it from Closed, ruleNone otherwise
	window   WindowCounts
	forced   bool // ForceOpen or Reset
	// hint is how long the failure that opened the breaker asked it to
	// stay open (WithRetryAfter), 0 for none.
	hint time.Duration
}

// retryAfterHint is implemented by errors that say how long to wait before
// trying again: leveehttp's response errors, a downstream breaker's
// OpenError.
type retryAfterHint interface {
	error
	RetryAfter() time.Duration
}

// openFor returns how long the failure err asks the breaker to stay open:
// its RetryAfter hint when WithRetryAfter is set, capped at the limit; 0
// otherwise. The transition keeps it only when it is longer than the open
// period would be. A hint that panics is no hint: the panic is reported to
// otel.Handle.
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
	var next *period
	var openFor time.Duration
	switch to {
	case Closed:
		next = b.newClosed(now)
	case Open:
		next = &period{state: Open, forced: cause.forced, countWindow: from.countWindow, timeWindow: from.timeWindow}
		next.openErr = &OpenError{name: b.name, state: Open, forced: next.forced, openTimeout: b.openTimeout}
		if !next.forced {
			next.opens = 1
			if from.state == HalfOpen && from.opens < math.MaxUint16 {
				next.opens = from.opens + 1
			}
			openFor = max(b.openDuration(int(next.opens)), cause.hint)
			next.openErr.until = now.Add(openFor)
			if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
				next.openedBy = &sc
			}
			// The timer holds the breaker weakly: a dropped breaker is
			// garbage even while open, and its timer then does nothing.
			self := weak.Make(b)
			next.timer = time.AfterFunc(openFor, func() {
				if b := self.Value(); b != nil && !b.gateHolds(next) {
					b.transition(context.Background(), next, HalfOpen, transitionCause{})
				}
			})
		}
	case HalfOpen:
		next = b.newHalfOpen(from, &OpenError{name: b.name, state: HalfOpen, until: now, probes: b.rules.halfOpenProbes})
	}
	if from.timer != nil {
		from.timer.Stop()
	}
	if from.state == Closed && from.timeWindow != nil {
		from.timeWindow.freeze(now)
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
		TripRule:            cause.rule.telemetryValue(),
		Window:              cause.window,
		OpenFor:             openFor,
	}
	if b.listeners != nil {
		b.listeners.enqueue(change) // under mu: changes queue in the order they were made
	}
	b.mu.Unlock()

	b.tel.transitioned(ctx, change, from.openedBy, b.rules.windowed())
	return next
}

// gateHolds asks the half-open gate, if the breaker has one, whether the
// open period p, whose timer has fired, must go on. When it must, the timer
// is set to ask again after the wait the gate returned.
func (b *Breaker) gateHolds(p *period) bool {
	if b.halfOpenGate == nil || b.current.Load() != p {
		return false
	}
	var wait time.Duration
	emit.Guard("circuit breaker "+strconv.Quote(b.name)+": the half-open gate", func() { wait = b.halfOpenGate() })
	if wait <= 0 {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.current.Load() != p {
		return true // moved on meanwhile: nothing to half-open
	}
	p.timer.Reset(wait) // under mu: the timer was set under it
	return true
}

// Follow moves the breaker to state to because something outside it
// decided so: a coordinator that shares one decision among many breakers,
// such as leveeredis's fleet breaker. Open starts an open period as a trip
// would (the open timeout, WithOpenBackoff, the half-open gate) from Closed
// or HalfOpen; HalfOpen ends an open period now, letting probes through;
// Closed starts a fresh closed period from Open or HalfOpen. The change is
// reported like any other, with Forced false, no TripRule and
// ConsecutiveFailures 0 (that is how a listener tells it from a trip or a
// failed probe); ctx parents its span.
//
// Follow reports whether it changed the state. It changes nothing when the
// breaker is in state to already, when it is held open by ForceOpen (an
// operator's decision wins until Reset), and for HalfOpen unless the
// breaker is Open. It is safe for concurrent use; calls in flight finish in
// the period they started in, and their results are stale after it.
func (b *Breaker) Follow(ctx context.Context, to State) bool {
	for {
		p := b.current.Load()
		if p.state == to || p.forced {
			return false
		}
		switch {
		case to == HalfOpen && p.state != Open, to != Open && to != Closed && to != HalfOpen:
			return false
		}
		if b.transition(ctx, p, to, transitionCause{}) != nil {
			return true
		}
	}
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
