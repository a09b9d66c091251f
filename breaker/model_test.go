package breaker_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/resilience"
)

// This file checks the breaker against a reference model of the state
// machine in DESIGN.md: a plain struct, one goroutine, no atomics, written to
// be obviously right. Random programs of calls (succeeding, failing, ending
// by caller cancellation, panicking, failing with an error WithIsFailure or
// WithIsIgnored names), calls whose context is done before they start, nil
// functions, calls held in flight, concurrent bursts, time passing, State
// reads, ForceOpen and Reset run against both; after every step the
// breaker's State, its Counts and the changes its listener saw must match the
// model, and every call must have been admitted or rejected as the model
// says. rapid drives it here; FuzzBreakerStateMachine drives the same
// modelHarness from fuzz bytes.
//
// Every program runs in a testing/synctest bubble, on the time path
// production runs: time passes with time.Sleep, the breaker's own open timer
// makes it half-open (at exactly the end of the open period), and
// synctest.Wait lets the timer, the calls and the listener's delivery
// goroutine run before anything is compared.

// modelOutcome is how a guarded function ends.
type modelOutcome uint8

const (
	endSuccess    modelOutcome = iota // returns a value and no error
	endFailure                        // returns errModelDependency
	endCanceled                       // the caller's ctx is canceled; returns ctx.Err()
	endPanic                          // panics with a value unique to the call
	endNotCounted                     // returns errModelNotFound, which WithIsFailure does not count (when installed)
	endIgnored                        // returns errModelIgnored, which WithIsIgnored names (when installed)
	numModelOutcomes
)

func (k modelOutcome) String() string {
	return [...]string{"success", "failure", "canceled", "panic", "not-counted", "ignored"}[k]
}

var (
	errModelDependency = errors.New("dependency failed")
	errModelNotFound   = errors.New("not found")
	// errModelIgnored wraps errModelNotFound, so that with both predicates
	// installed it shows that WithIsIgnored is asked first: it is ignored,
	// not a success.
	errModelIgnored = fmt.Errorf("bad request: %w", errModelNotFound)
)

// modelValue is what a guarded function returns on success, so the Policy
// path can check the value comes through.
const modelValue = 42

// modelHorizon bounds how far a program moves the bubble's clock: the
// runtime's timers cannot be set past about 262 years after the bubble's
// start (2000-01-01), so an advance that would pass this horizon is not
// made. Open timeouts longer than it simply never end within a program.
const modelHorizon = 200 * 365 * 24 * time.Hour

// ---------------------------------------------------------------------------
// The reference model.

// modelRule is the trip rule of a program's breaker.
type modelRule uint8

const (
	ruleConsecutive  modelRule = iota // WithFailureThreshold (the default)
	ruleFailureRate                   // WithFailureRate
	ruleSlowCallRate                  // WithSlowCallRate
	ruleCustom                        // WithTripRule(modelTripRule)
)

func (r modelRule) telemetryValue() string {
	return [...]string{"consecutive_failures", "failure_rate", "slow_call_rate", "custom"}[r]
}

// modelTripRule is the WithTripRule function of the programs that use one:
// it reads every field of the counts.
func modelTripRule(c breaker.WindowCounts) bool {
	return c.ConsecutiveFailures >= 3 || c.Calls >= 3 && 2*c.Failures >= c.Calls || c.SlowCalls >= 2 && c.Failures >= 1
}

// modelBackoff is WithOpenBackoff with WithJitterSeed.
type modelBackoff struct {
	factor float64
	max    time.Duration
	jitter float64
	seed   uint64
}

// modelConfig is the breaker's settings, as the model sees them. Zero values
// of the fields after withIsIgnored leave the setting at its default.
type modelConfig struct {
	threshold     int
	openTimeout   time.Duration
	withIsFailure bool // errModelNotFound (and errModelIgnored) count as successes
	withIsIgnored bool // errModelIgnored counts as neither success nor failure

	rule         modelRule
	ratio        float64 // of WithFailureRate, WithSlowCallRate
	minCalls     int     // WithMinCalls; 0 for the default
	countWindow  int     // WithCountWindow
	timeWindow   time.Duration
	buckets      int           // WithTimeWindow(timeWindow, buckets)
	slowDuration time.Duration // WithSlowCallDuration
	// WithHalfOpen(halfOpenProbes, halfOpenSuccesses)
	halfOpenProbes    int
	halfOpenSuccesses int
	backoff           *modelBackoff
	shadow            bool // WithShadowMode
}

// options returns the breaker options of cfg, but for the listener.
func (cfg modelConfig) options() []breaker.Option {
	opts := []breaker.Option{breaker.WithOpenTimeout(cfg.openTimeout)}
	switch cfg.rule {
	case ruleConsecutive:
		opts = append(opts, breaker.WithFailureThreshold(cfg.threshold))
	case ruleFailureRate:
		opts = append(opts, breaker.WithFailureRate(cfg.ratio))
	case ruleSlowCallRate:
		opts = append(opts, breaker.WithSlowCallRate(cfg.ratio))
	case ruleCustom:
		opts = append(opts, breaker.WithTripRule(modelTripRule))
	}
	if cfg.minCalls > 0 {
		opts = append(opts, breaker.WithMinCalls(cfg.minCalls))
	}
	if cfg.countWindow > 0 {
		opts = append(opts, breaker.WithCountWindow(cfg.countWindow))
	}
	if cfg.timeWindow > 0 {
		opts = append(opts, breaker.WithTimeWindow(cfg.timeWindow, cfg.buckets))
	}
	if cfg.slowDuration > 0 {
		opts = append(opts, breaker.WithSlowCallDuration(cfg.slowDuration))
	}
	if cfg.halfOpenProbes > 0 {
		opts = append(opts, breaker.WithHalfOpen(cfg.halfOpenProbes, cfg.halfOpenSuccesses))
	}
	if bo := cfg.backoff; bo != nil {
		opts = append(opts, breaker.WithOpenBackoff(bo.factor, bo.max, bo.jitter), breaker.WithJitterSeed(bo.seed))
	}
	if cfg.shadow {
		opts = append(opts, breaker.WithShadowMode())
	}
	if cfg.withIsFailure {
		opts = append(opts, breaker.WithIsFailure(func(err error) bool { return !errors.Is(err, errModelNotFound) }))
	}
	if cfg.withIsIgnored {
		opts = append(opts, breaker.WithIsIgnored(func(err error) bool { return errors.Is(err, errModelIgnored) }))
	}
	return opts
}

func (cfg modelConfig) windowed() bool { return cfg.countWindow > 0 || cfg.timeWindow > 0 }

// modelEvent is a call that counted in a closed period's window.
type modelEvent struct {
	at           time.Time // when it ended
	failed, slow bool
}

// modelProbe is a probe in flight in a half-open period.
type modelProbe struct {
	id    int
	since time.Time
}

// refModel is the state machine of DESIGN.md and issue 12, sequential and
// explicit.
type refModel struct {
	name string
	modelConfig

	now        time.Time
	state      breaker.State
	forced     bool      // Open by ForceOpen: no probe until Reset
	failures   int       // consecutive failures while Closed
	until      time.Time // Open, not forced: when the open timer makes it half-open
	halfOpenAt time.Time // HalfOpen: when it became half-open
	period     int       // bumped at every new period; a call's outcome only counts in its own period
	opens      int       // Open, HalfOpen: open periods in a row since the breaker was last closed
	rng        *rand.Rand

	closedAt time.Time    // Closed: when the period began, the time window's origin
	events   []modelEvent // Closed: the calls of the period that counted
	frozen   breaker.WindowCounts

	probes    []modelProbe // HalfOpen: the probes in flight
	successes int          // HalfOpen: the probes that succeeded
	probeIDs  int
	shadow    bool

	counts  breaker.Counts
	changes []breaker.StateChange
}

// modelAdmission is the model's decision on one call.
type modelAdmission struct {
	admitted bool
	shadow   bool // admitted by shadow mode: its result changes nothing
	period   int
	state    breaker.State // the state that admitted the call, or rejected it
	probe    int           // the probe's id, for a half-open admission
	start    time.Time
}

func newRefModel(name string, cfg modelConfig, now time.Time) *refModel {
	m := &refModel{name: name, modelConfig: cfg, now: now, closedAt: now, shadow: cfg.shadow}
	if m.halfOpenProbes == 0 {
		m.halfOpenProbes, m.halfOpenSuccesses = 1, 1
	}
	if m.minCalls == 0 {
		m.minCalls = breaker.DefaultMinCalls
		if m.countWindow > 0 {
			m.minCalls = min(m.minCalls, m.countWindow)
		}
	}
	if bo := cfg.backoff; bo != nil {
		m.rng = rand.New(rand.NewPCG(bo.seed, bo.seed))
	}
	return m
}

// window returns the counts of the closed period's window now: the last
// countWindow calls, or those of the time window's last buckets (a call
// counts in the bucket it ended in, numbered from the period's start).
func (m *refModel) window() breaker.WindowCounts {
	if m.state != breaker.Closed {
		return m.frozen
	}
	c := breaker.WindowCounts{ConsecutiveFailures: int64(m.failures)}
	events := m.events
	switch {
	case m.countWindow > 0:
		events = events[max(0, len(events)-m.countWindow):]
	case m.timeWindow > 0:
		width := m.timeWindow / time.Duration(m.buckets)
		current := int64(m.now.Sub(m.closedAt) / width)
		var in []modelEvent
		for _, e := range events {
			if int64(e.at.Sub(m.closedAt)/width) > current-int64(m.buckets) {
				in = append(in, e)
			}
		}
		events = in
	default:
		return c
	}
	for _, e := range events {
		c.Calls++
		if e.failed {
			c.Failures++
		}
		if e.slow {
			c.SlowCalls++
		}
	}
	return c
}

// openDuration is WithOpenBackoff's rule for the opens-th open period.
func (m *refModel) openDuration(opens int) time.Duration {
	bo := m.backoff
	if bo == nil || opens <= 1 {
		return m.openTimeout
	}
	grown := min(float64(m.openTimeout)*math.Pow(bo.factor, float64(opens-1)), float64(bo.max))
	if bo.jitter > 0 {
		grown *= 1 - bo.jitter*m.rng.Float64()
	}
	return max(time.Duration(grown), m.openTimeout)
}

// transition starts a new period in state to and records the change; a
// trip from Closed names its rule and carries the window's counts.
func (m *refModel) transition(to breaker.State, consecutiveFailures int, forced, tripped bool) {
	change := breaker.StateChange{
		Name: m.name, From: m.state, To: to, At: m.now,
		ConsecutiveFailures: consecutiveFailures, Forced: forced,
	}
	if m.state == breaker.Closed {
		m.frozen = m.window()
		m.frozen.ConsecutiveFailures = 0
		if tripped {
			change.TripRule = m.rule.telemetryValue()
			if m.windowed() {
				change.Window = m.window()
			}
		}
	}
	m.forced = forced && to == breaker.Open
	m.until = time.Time{}
	switch to {
	case breaker.Open:
		if !m.forced {
			if m.state == breaker.HalfOpen {
				m.opens++
			} else {
				m.opens = 1
			}
			change.OpenFor = m.openDuration(m.opens)
			m.until = m.now.Add(change.OpenFor)
		}
	case breaker.HalfOpen:
		m.halfOpenAt = m.now
	case breaker.Closed:
		m.closedAt = m.now
		m.events = nil
		m.frozen = breaker.WindowCounts{}
	}
	m.changes = append(m.changes, change)
	m.state = to
	m.failures = 0
	m.probes = nil
	m.successes = 0
	m.period++
}

// advance lets d pass. The open timer is the only way Open becomes
// HalfOpen, and it fires at exactly the end of the open period.
func (m *refModel) advance(d time.Duration) {
	target := m.now.Add(d)
	if m.state == breaker.Open && !m.forced && !m.until.After(target) {
		m.now = m.until
		m.transition(breaker.HalfOpen, 0, false, false)
	}
	m.now = target
}

// admit decides a call that reaches the breaker with a live context.
func (m *refModel) admit() modelAdmission {
	switch m.state {
	case breaker.Closed:
		return modelAdmission{admitted: true, period: m.period, state: breaker.Closed, start: m.now}
	case breaker.HalfOpen:
		if len(m.probes) == m.halfOpenProbes {
			oldest := m.probes[0].since
			for _, p := range m.probes {
				if p.since.Before(oldest) {
					oldest = p.since
				}
			}
			if !m.now.Before(oldest.Add(m.openTimeout)) {
				// The oldest probe in flight has outlived the open
				// timeout: the probes no longer hold the breaker. A fresh
				// half-open period (not a transition: nothing is
				// reported) admits this call, and the late probes'
				// results, their successes included, will be stale.
				m.period++
				m.probes = nil
				m.successes = 0
			}
		}
		if len(m.probes) < m.halfOpenProbes {
			m.probeIDs++
			m.probes = append(m.probes, modelProbe{id: m.probeIDs, since: m.now})
			return modelAdmission{admitted: true, period: m.period, state: breaker.HalfOpen, probe: m.probeIDs, start: m.now}
		}
	}
	if m.shadow {
		m.counts.ShadowRejected++
		return modelAdmission{admitted: true, shadow: true, period: m.period, state: m.state, start: m.now}
	}
	m.counts.Rejected++
	return modelAdmission{period: m.period, state: m.state}
}

type modelVerdict uint8

const (
	modelVerdictSuccess modelVerdict = iota
	modelVerdictFailure
	modelVerdictIgnored
)

func (m *refModel) classify(k modelOutcome) modelVerdict {
	switch k {
	case endSuccess:
		return modelVerdictSuccess
	case endCanceled:
		return modelVerdictIgnored
	case endIgnored:
		if m.withIsIgnored {
			return modelVerdictIgnored
		}
		if m.withIsFailure {
			return modelVerdictSuccess // it wraps errModelNotFound
		}
	case endNotCounted:
		if m.withIsFailure {
			return modelVerdictSuccess
		}
	}
	return modelVerdictFailure // endFailure, endPanic, and the errors no predicate names
}

// trips reports whether the rule opens the breaker after a call that failed
// or was slow left the window with counts c.
func (m *refModel) trips(c breaker.WindowCounts, failed, slow bool) bool {
	atLeast := func(part int64, ratio float64) bool { return float64(part) >= ratio*float64(c.Calls) }
	switch m.rule {
	case ruleFailureRate:
		return failed && c.Calls >= int64(m.minCalls) && atLeast(c.Failures, m.ratio)
	case ruleSlowCallRate:
		return slow && c.Calls >= int64(m.minCalls) && atLeast(c.SlowCalls, m.ratio)
	case ruleCustom:
		return (failed || slow) && modelTripRule(c)
	}
	return failed && m.failures >= m.threshold
}

// finish applies the outcome of an admitted call. A call admitted in a
// period that has ended since changes nothing: a closed-period call is
// counted by its outcome, a half-open probe is counted as ignored. A call
// shadow mode let through was counted when admitted and changes nothing.
func (m *refModel) finish(a modelAdmission, k modelOutcome) {
	if a.shadow {
		return
	}
	v := m.classify(k)
	if a.period != m.period && a.state == breaker.HalfOpen {
		m.counts.Ignored++
		return
	}
	switch v {
	case modelVerdictSuccess:
		m.counts.Success++
	case modelVerdictFailure:
		m.counts.Failure++
	case modelVerdictIgnored:
		m.counts.Ignored++
	}
	if a.period != m.period {
		return
	}
	slow := m.slowDuration > 0 && m.now.Sub(a.start) > m.slowDuration && v != modelVerdictIgnored
	switch m.state {
	case breaker.Closed:
		if v == modelVerdictIgnored {
			return
		}
		failed := v == modelVerdictFailure
		if failed {
			m.failures++
		} else {
			m.failures = 0
		}
		if m.windowed() {
			m.events = append(m.events, modelEvent{at: m.now, failed: failed, slow: slow})
		}
		if m.trips(m.window(), failed, slow) {
			m.transition(breaker.Open, m.failures, false, true)
		}
	case breaker.HalfOpen:
		if v == modelVerdictSuccess && slow && m.rule == ruleSlowCallRate {
			v = modelVerdictFailure // under the slow-call rule a slow probe fails
		}
		switch v {
		case modelVerdictSuccess:
			m.successes++
			if m.successes >= m.halfOpenSuccesses {
				m.transition(breaker.Closed, 0, false, false)
				return
			}
			m.dropProbe(a.probe)
		case modelVerdictFailure:
			m.transition(breaker.Open, 1, false, false)
		case modelVerdictIgnored:
			m.dropProbe(a.probe)
		}
	}
}

func (m *refModel) dropProbe(id int) {
	m.probes = slices.DeleteFunc(m.probes, func(p modelProbe) bool { return p.id == id })
}

// doneAtEntry is a call whose context was done before it reached the
// breaker: it runs nothing and counts as ignored, whatever the state.
func (m *refModel) doneAtEntry() { m.counts.Ignored++ }

func (m *refModel) forceOpen() {
	if m.state == breaker.Open && m.forced {
		return
	}
	m.transition(breaker.Open, 0, true, false)
}

// reset starts a fresh closed period from every state. Closed -> Closed
// reports no change, but the calls admitted before it still count for
// nothing after it, and the window starts empty.
func (m *refModel) reset() {
	if m.state == breaker.Closed {
		m.failures = 0
		m.period++
		m.closedAt = m.now
		m.events = nil
		return
	}
	m.transition(breaker.Closed, 0, true, false)
}

// rejection is what an *OpenError from a rejection in state s must say.
func (m *refModel) rejection(s breaker.State) (until time.Time, retryAfter time.Duration) {
	switch {
	case s == breaker.HalfOpen:
		return m.halfOpenAt, 0
	case m.forced:
		return time.Time{}, m.openTimeout
	}
	return m.until, m.until.Sub(m.now)
}

// ---------------------------------------------------------------------------
// The modelHarness: one breaker, its model, and the calls held in flight.
// It must run inside a synctest bubble.

// modelMaxInFlight bounds the calls held at once, so programs stay cheap.
const modelMaxInFlight = 12

type modelHarness struct {
	t    rapid.TB
	m    *refModel
	b    *breaker.Breaker
	born time.Time // the bubble's time when the harness was built

	mu      sync.Mutex
	changes []breaker.StateChange // as the listener saw them

	inflight []*modelCall
	calls    int
}

// modelCall is a call running in its own goroutine whose function waits to
// be told how to end.
type modelCall struct {
	id        int
	viaPolicy bool
	ctx       context.Context
	cancel    context.CancelFunc
	token     *modelPanic
	entered   chan struct{}     // closed when the breaker runs the function
	release   chan modelOutcome // how the function is to end
	done      chan modelResult  // what the caller got
	adm       modelAdmission
}

// modelPanic is the value a function panics with: unique per call, so the
// test can tell the very same value was re-panicked.
type modelPanic struct{ call int }

type modelResult struct {
	value    int
	err      error
	panicked any
	ran      bool // the function was called
}

func newModelHarness(t rapid.TB, cfg modelConfig) *modelHarness {
	now := time.Now()
	h := &modelHarness{t: t, born: now}
	h.m = newRefModel("model", cfg, now)
	opts := append(cfg.options(), breaker.WithStateChangeListener(func(c breaker.StateChange) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.changes = append(h.changes, c)
	}))
	h.b = breaker.New("model", opts...)
	return h
}

// launch starts a call in its own goroutine; it waits for gate, when not
// nil, before calling the breaker. A call made with doneCtx has its context
// canceled before it starts.
func (h *modelHarness) launch(viaPolicy, doneCtx bool, gate <-chan struct{}) *modelCall {
	h.calls++
	ctx, cancel := context.WithCancel(context.Background())
	if doneCtx {
		cancel()
	}
	c := &modelCall{
		id: h.calls, viaPolicy: viaPolicy, ctx: ctx, cancel: cancel,
		token:   &modelPanic{call: h.calls},
		entered: make(chan struct{}),
		release: make(chan modelOutcome, 1),
		done:    make(chan modelResult, 1),
	}
	var ran bool
	fn := func(ctx context.Context) (int, error) {
		ran = true
		close(c.entered)
		switch <-c.release {
		case endFailure:
			return 0, errModelDependency
		case endNotCounted:
			return 0, errModelNotFound
		case endIgnored:
			return 0, errModelIgnored
		case endCanceled:
			c.cancel()
			return 0, ctx.Err()
		case endPanic:
			panic(c.token)
		}
		return modelValue, nil
	}
	b := h.b
	go func() {
		var res modelResult
		defer func() {
			res.panicked = recover()
			res.ran = ran
			c.done <- res
		}()
		if gate != nil {
			<-gate
		}
		if viaPolicy {
			res.value, res.err = resilience.Wrap(fn, breaker.Policy[int](b))(ctx)
			return
		}
		res.err = b.Call(ctx, func(ctx context.Context) error {
			v, err := fn(ctx)
			res.value = v
			return err
		})
	}()
	return c
}

// settle waits until every goroutine of the bubble is blocked, then tells
// whether the call runs its function (admitted) or has returned without
// running it (rejected, its result in res). Neither is a stuck breaker.
func (h *modelHarness) settle(c *modelCall) (admitted bool, res modelResult) {
	h.t.Helper()
	select {
	case <-c.entered:
		return true, modelResult{}
	case res := <-c.done:
		return false, res
	default:
	}
	h.t.Fatalf("call %d neither ran its function nor returned, and every goroutine of the bubble is blocked: the breaker is stuck", c.id)
	panic("unreachable")
}

// checkRejected checks a rejected call's result against the model's
// decision: an *OpenError naming the state that rejected it.
func (h *modelHarness) checkRejected(c *modelCall, res modelResult, by breaker.State) {
	h.t.Helper()
	c.cancel()
	require.Nil(h.t, res.panicked, "call %d: rejected call panicked", c.id)
	require.False(h.t, res.ran, "call %d: a rejected call must not run its function", c.id)
	require.ErrorIs(h.t, res.err, breaker.ErrOpen, "call %d: the model rejects it in %v", c.id, by)
	var oe *breaker.OpenError
	require.ErrorAs(h.t, res.err, &oe, "call %d", c.id)
	until, retryAfter := h.m.rejection(by)
	assert.Equal(h.t, "model", oe.Name(), "call %d: OpenError.Name", c.id)
	assert.Equal(h.t, by, oe.State(), "call %d: OpenError.State", c.id)
	assert.True(h.t, until.Equal(oe.Until()), "call %d: OpenError.Until = %v, model %v", c.id, oe.Until(), until)
	assert.Equal(h.t, retryAfter, oe.RetryAfter(), "call %d: RetryAfter", c.id)
	assert.Zero(h.t, res.value, "call %d: a rejected call returns the zero value", c.id)
}

// start begins one call and leaves it in flight when the model admits it.
func (h *modelHarness) start(viaPolicy bool) {
	h.t.Helper()
	c := h.launch(viaPolicy, false, nil)
	synctest.Wait()
	admitted, res := h.settle(c)
	if admitted {
		h.inflight = append(h.inflight, c) // released at the end even if a check fails
	}
	c.adm = h.m.admit()
	require.Equal(h.t, c.adm.admitted, admitted,
		"call %d: admitted by the breaker = %v, by the model = %v (model state %v)", c.id, admitted, c.adm.admitted, h.m.state)
	if !admitted {
		h.checkRejected(c, res, c.adm.state)
	}
}

// finish releases the i-th call in flight with outcome k and checks that its
// caller gets exactly what the function returned or raised.
func (h *modelHarness) finish(i int, k modelOutcome) {
	h.t.Helper()
	c := h.inflight[i]
	h.inflight = append(h.inflight[:i:i], h.inflight[i+1:]...)
	c.release <- k
	synctest.Wait()
	var res modelResult
	select {
	case res = <-c.done:
	default:
		h.t.Fatalf("call %d did not return after its function was released, and every goroutine of the bubble is blocked: the breaker is stuck", c.id)
	}
	c.cancel()
	h.m.finish(c.adm, k)
	if k == endPanic {
		require.Same(h.t, c.token, res.panicked, "call %d: the breaker must re-panic the function's own value", c.id)
		return
	}
	require.Nil(h.t, res.panicked, "call %d panicked", c.id)
	switch k {
	case endSuccess:
		require.NoError(h.t, res.err, "call %d", c.id)
		assert.Equal(h.t, modelValue, res.value, "call %d: the function's value", c.id)
	case endFailure:
		require.Same(h.t, errModelDependency, res.err, "call %d: the function's error, unchanged", c.id)
	case endNotCounted:
		require.Same(h.t, errModelNotFound, res.err, "call %d: the function's error, unchanged", c.id)
	case endIgnored:
		require.Same(h.t, errModelIgnored, res.err, "call %d: the function's error, unchanged", c.id)
	case endCanceled:
		require.Same(h.t, context.Canceled, res.err, "call %d: the function's error, unchanged", c.id)
	}
}

// call makes one call from start to end.
func (h *modelHarness) call(k modelOutcome, viaPolicy bool) {
	h.t.Helper()
	h.start(viaPolicy)
	if n := len(h.inflight); n > 0 && h.inflight[n-1].id == h.calls {
		h.finish(n-1, k)
	}
}

// callDone makes a call whose context is done before it reaches the
// breaker: it must return ctx.Err() at once without running the function,
// whatever the state (not a rejection, even when open), and take no probe
// slot.
func (h *modelHarness) callDone(viaPolicy bool) {
	h.t.Helper()
	c := h.launch(viaPolicy, true, nil)
	synctest.Wait()
	admitted, res := h.settle(c)
	if admitted {
		h.inflight = append(h.inflight, c)
	}
	require.False(h.t, admitted, "call %d with its context done at entry ran its function (state %v)", c.id, h.m.state)
	h.m.doneAtEntry()
	require.Nil(h.t, res.panicked, "call %d panicked", c.id)
	require.Same(h.t, context.Canceled, res.err, "call %d with its context done at entry: ctx.Err(), not a rejection (state %v)", c.id, h.m.state)
	assert.Zero(h.t, res.value, "call %d: the zero value", c.id)
}

// callNil calls Call with a nil function: refused with an error, not a
// rejection, and counted nowhere.
func (h *modelHarness) callNil() {
	h.t.Helper()
	err := h.b.Call(context.Background(), nil)
	require.Error(h.t, err, "Call(ctx, nil) is refused")
	require.NotErrorIs(h.t, err, breaker.ErrOpen, "Call(ctx, nil) is a programming error, not a rejection")
}

// burst makes n calls at once, released together. Whatever the interleaving,
// the model decides as if they came one after another: all admitted while
// Closed; exactly one (the probe) admitted when the breaker is HalfOpen with
// no probe in flight (or only a stale one); none otherwise. Admitted calls
// stay in flight. In shadow mode every call is admitted, but in HalfOpen the
// probes and the calls shadow mode lets through cannot be told apart from
// outside, and they end differently: no burst is made then.
func (h *modelHarness) burst(n int, policyMask uint64) {
	h.t.Helper()
	if h.m.shadow && h.m.state == breaker.HalfOpen {
		return
	}
	gate := make(chan struct{})
	calls := make([]*modelCall, n)
	for i := range calls {
		calls[i] = h.launch(policyMask&(1<<i) != 0, false, gate)
	}
	close(gate)
	synctest.Wait()
	var admitted []*modelCall
	var rejected []*modelCall
	results := make(map[*modelCall]modelResult)
	for _, c := range calls {
		ok, res := h.settle(c)
		if ok {
			admitted = append(admitted, c)
		} else {
			rejected = append(rejected, c)
			results[c] = res
		}
	}
	var want []modelAdmission
	var wantRejectedBy []breaker.State
	for range n {
		a := h.m.admit()
		if a.admitted {
			want = append(want, a)
		} else {
			wantRejectedBy = append(wantRejectedBy, a.state)
		}
	}
	h.inflight = append(h.inflight, admitted...)
	require.Len(h.t, admitted, len(want), "burst of %d: calls admitted (model state %v)", n, h.m.state)
	for i, c := range admitted {
		c.adm = want[i]
	}
	for i, c := range rejected {
		h.checkRejected(c, results[c], wantRejectedBy[i])
	}
}

// advance lets d pass on the bubble's clock, and the model's: the open
// timer fires on the way if the open period ends, and synctest.Wait lets its
// transition and the listener run.
func (h *modelHarness) advance(d time.Duration) {
	h.t.Helper()
	if d <= 0 || h.m.now.Add(d).Sub(h.born) > modelHorizon {
		return
	}
	time.Sleep(d)
	synctest.Wait()
	h.m.advance(d)
	require.True(h.t, h.m.now.Equal(time.Now()), "the bubble's clock is at %v, the model's at %v", time.Now(), h.m.now)
}

// advanceKind picks how far to move the clock: 0 a random bit (frac/255 of
// the open timeout), 1 exactly to the end of the open period (or of the
// oldest probe's hold on the breaker), 2 one nanosecond short of it, 3 one
// nanosecond past it, 4 a whole open timeout; with a time window, 5 exactly
// to the end of the current bucket, 6 one nanosecond short of it, 7 a
// random bit (frac/255) of the whole window.
func (h *modelHarness) advanceKind(kind int, frac uint8) {
	h.t.Helper()
	remaining := h.m.openTimeout
	switch {
	case h.m.state == breaker.Open && !h.m.forced:
		remaining = h.m.until.Sub(h.m.now)
	case h.m.state == breaker.HalfOpen && len(h.m.probes) > 0:
		oldest := h.m.probes[0].since
		for _, p := range h.m.probes {
			if p.since.Before(oldest) {
				oldest = p.since
			}
		}
		remaining = oldest.Add(h.m.openTimeout).Sub(h.m.now)
	}
	var toBucketEnd, window time.Duration
	if h.m.timeWindow > 0 && h.m.state == breaker.Closed {
		width := h.m.timeWindow / time.Duration(h.m.buckets)
		toBucketEnd = width - h.m.now.Sub(h.m.closedAt)%width
		window = h.m.timeWindow
	}
	var d time.Duration
	switch kind {
	case 0:
		d = h.m.openTimeout / 255 * time.Duration(frac)
	case 1:
		d = remaining
	case 2:
		d = remaining - 1
	case 3:
		d = remaining + 1
	case 5:
		d = toBucketEnd
	case 6:
		d = toBucketEnd - 1
	case 7:
		d = window / 255 * time.Duration(frac)
	default:
		d = h.m.openTimeout
	}
	h.advance(max(d, 0))
}

// slowCall makes a call that takes the slow-call duration, a nanosecond
// less or a nanosecond more (by), and ends with k: the clock moves while it
// is in flight.
func (h *modelHarness) slowCall(k modelOutcome, by int, viaPolicy bool) {
	h.t.Helper()
	h.start(viaPolicy)
	n := len(h.inflight)
	if n == 0 || h.inflight[n-1].id != h.calls {
		return // rejected
	}
	d := h.m.slowDuration
	if d == 0 {
		d = h.m.openTimeout / 4
	}
	h.advance(d + time.Duration(by))
	h.finish(n-1, k)
}

// setShadow switches shadow mode.
func (h *modelHarness) setShadow(on bool) {
	h.m.shadow = on
	h.b.SetShadowMode(on)
	require.Equal(h.t, on, h.b.ShadowMode(), "ShadowMode()")
}

func (h *modelHarness) readState() {
	h.t.Helper()
	require.Equal(h.t, h.m.state, h.b.State(), "State()")
}

func (h *modelHarness) forceOpen() {
	h.m.forceOpen()
	h.b.ForceOpen(context.Background())
}

func (h *modelHarness) reset() {
	h.m.reset()
	h.b.Reset(context.Background())
}

// check compares what is observable at rest: the counts, the changes the
// listener saw (once its delivery goroutine has run), and State.
func (h *modelHarness) check() {
	h.t.Helper()
	synctest.Wait()
	require.Equal(h.t, h.m.counts, h.b.Counts(), "Counts()")
	h.mu.Lock()
	got := append([]breaker.StateChange(nil), h.changes...)
	h.mu.Unlock()
	require.Equal(h.t, len(h.m.changes), len(got), "state changes seen by the listener: %v, model %v", got, h.m.changes)
	for i, want := range h.m.changes {
		require.True(h.t, want.At.Equal(got[i].At), "change %d: At = %v, model %v", i, got[i].At, want.At)
		got[i].At = want.At
		require.Equal(h.t, want, got[i], "change %d", i)
	}
	require.Equal(h.t, h.m.state, h.b.State(), "State()")
	require.Equal(h.t, h.m.window(), h.b.Window(), "Window()")
}

// releaseAll lets every call still in flight end, so that no goroutine
// outlives the program and the bubble can end; it checks nothing.
func (h *modelHarness) releaseAll() {
	for _, c := range h.inflight {
		c.release <- endSuccess
		c.cancel()
	}
	h.inflight = nil
	synctest.Wait()
}

func (h *modelHarness) String() string {
	return fmt.Sprintf("config=%+v state=%v inflight=%d", h.m.modelConfig, h.m.state, len(h.inflight))
}

// ---------------------------------------------------------------------------
// The rapid property.

func TestBreaker_MatchesReferenceModel(t *testing.T) {
	t.Parallel()
	// rapid runs each program in a bubble of its own (rapid.SyncTest); the
	// watchdog bounds them all in real time, as boundedSyncTest does one.
	checks := 100
	if f := flag.Lookup("rapid.checks"); f != nil {
		checks, _ = strconv.Atoi(f.Value.String())
	}
	defer realTimeWatchdog(t.Name(), bubbleBound+time.Duration(checks)*100*time.Millisecond)()
	rapid.Check(t, func(t *rapid.T) {
		// One bubble per program: its clock starts afresh, and it ends
		// only once every goroutine the program started has.
		rapid.SyncTest(t, func(t *rapid.T) {
			h := newModelHarness(t, drawModelConfig(t))
			defer h.releaseAll()

			outcomes := rapid.SampledFrom([]modelOutcome{endSuccess, endFailure, endCanceled, endPanic, endNotCounted, endIgnored})
			t.Repeat(map[string]func(*rapid.T){
				"call": func(t *rapid.T) {
					h.call(outcomes.Draw(t, "outcome"), rapid.Bool().Draw(t, "viaPolicy"))
				},
				"callDone": func(t *rapid.T) { h.callDone(rapid.Bool().Draw(t, "viaPolicy")) },
				"callNil":  func(*rapid.T) { h.callNil() },
				"start": func(t *rapid.T) {
					if len(h.inflight) >= modelMaxInFlight {
						t.Skip("enough calls in flight")
					}
					h.start(rapid.Bool().Draw(t, "viaPolicy"))
				},
				"finish": func(t *rapid.T) {
					if len(h.inflight) == 0 {
						t.Skip("no call in flight")
					}
					i := rapid.IntRange(0, len(h.inflight)-1).Draw(t, "which")
					h.finish(i, outcomes.Draw(t, "outcome"))
				},
				"burst": func(t *rapid.T) {
					room := modelMaxInFlight - len(h.inflight)
					if room < 2 {
						t.Skip("no room for a burst")
					}
					n := rapid.IntRange(2, min(room, 8)).Draw(t, "size")
					h.burst(n, rapid.Uint64().Draw(t, "viaPolicyMask"))
				},
				"advance": func(t *rapid.T) {
					h.advanceKind(rapid.IntRange(0, 7).Draw(t, "kind"), rapid.Uint8().Draw(t, "frac"))
				},
				"slowCall": func(t *rapid.T) {
					if len(h.inflight) >= modelMaxInFlight {
						t.Skip("enough calls in flight")
					}
					h.slowCall(outcomes.Draw(t, "outcome"), rapid.IntRange(-1, 1).Draw(t, "by"), rapid.Bool().Draw(t, "viaPolicy"))
				},
				"shadow": func(t *rapid.T) { h.setShadow(rapid.Bool().Draw(t, "on")) },
				"state":  func(*rapid.T) { h.readState() },
				"operator": func(t *rapid.T) {
					if rapid.Bool().Draw(t, "forceOpen") {
						h.forceOpen()
					} else {
						h.reset()
					}
				},
				"": func(*rapid.T) { h.check() },
			})
		})
	})
}

// drawModelConfig draws a breaker's settings: every trip rule, a count
// window, a time window or none, slow calls, several probes, a growing open
// period, shadow mode, each with its defaults or not.
func drawModelConfig(t *rapid.T) modelConfig {
	cfg := modelConfig{
		threshold:     rapid.IntRange(1, 5).Draw(t, "threshold"),
		openTimeout:   time.Duration(rapid.Int64Range(1, int64(time.Hour)).Draw(t, "openTimeout")),
		withIsFailure: rapid.Bool().Draw(t, "withIsFailure"),
		withIsIgnored: rapid.Bool().Draw(t, "withIsIgnored"),
		rule:          rapid.SampledFrom([]modelRule{ruleConsecutive, ruleFailureRate, ruleSlowCallRate, ruleCustom}).Draw(t, "rule"),
		shadow:        rapid.IntRange(0, 3).Draw(t, "shadow") == 0,
	}
	window := rapid.IntRange(0, 2).Draw(t, "window") // none, count, time
	if cfg.rule != ruleConsecutive && window == 0 {
		window = 1 + rapid.IntRange(0, 1).Draw(t, "windowKind")
	}
	switch window {
	case 1:
		cfg.countWindow = rapid.IntRange(1, 8).Draw(t, "countWindow")
	case 2:
		cfg.buckets = rapid.IntRange(1, 5).Draw(t, "buckets")
		cfg.timeWindow = time.Duration(cfg.buckets) * time.Duration(rapid.Int64Range(int64(time.Millisecond), int64(time.Minute)).Draw(t, "bucketWidth"))
	}
	if cfg.rule == ruleFailureRate || cfg.rule == ruleSlowCallRate {
		cfg.ratio = rapid.SampledFrom([]float64{0.2, 0.25, 1.0 / 3, 0.5, 2.0 / 3, 0.75, 1}).Draw(t, "ratio")
		maxMin := 6
		if cfg.countWindow > 0 {
			maxMin = cfg.countWindow
		}
		cfg.minCalls = rapid.IntRange(1, maxMin).Draw(t, "minCalls")
	}
	if cfg.rule == ruleSlowCallRate || window > 0 && rapid.Bool().Draw(t, "withSlowCalls") {
		cfg.slowDuration = time.Duration(rapid.Int64Range(1, int64(cfg.openTimeout)).Draw(t, "slowDuration"))
	}
	if rapid.Bool().Draw(t, "withHalfOpen") {
		cfg.halfOpenProbes = rapid.IntRange(1, 3).Draw(t, "halfOpenProbes")
		cfg.halfOpenSuccesses = rapid.IntRange(1, cfg.halfOpenProbes).Draw(t, "halfOpenSuccesses")
	}
	if rapid.Bool().Draw(t, "withBackoff") {
		cfg.backoff = &modelBackoff{
			factor: rapid.SampledFrom([]float64{1, 1.5, 2, 3}).Draw(t, "factor"),
			max:    cfg.openTimeout * time.Duration(rapid.IntRange(1, 8).Draw(t, "maxTimes")),
			jitter: rapid.SampledFrom([]float64{0, 0.25, 0.5, 0.9}).Draw(t, "jitter"),
			seed:   rapid.Uint64().Draw(t, "seed"),
		}
	}
	return cfg
}

// TestBreaker_ReferenceModelScenarios pins scenarios the random programs
// must keep covering, through the same modelHarness, each in a bubble.
func TestBreaker_ReferenceModelScenarios(t *testing.T) {
	t.Parallel()
	scenario := func(name string, cfg modelConfig, body func(t *testing.T, h *modelHarness)) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			boundedSyncTest(t, bubbleBound, func(t *testing.T) {
				h := newModelHarness(t, cfg)
				defer h.releaseAll()
				body(t, h)
			})
		})
	}
	scenario("a probe held in flight rejects a burst, then its failure reopens",
		modelConfig{threshold: 2, openTimeout: time.Second, withIsFailure: true},
		func(t *testing.T, h *modelHarness) {
			h.call(endFailure, false)
			h.call(endFailure, true)
			h.check()
			h.advanceKind(1, 0) // the open timer fires
			h.check()
			require.Equal(t, breaker.HalfOpen, h.b.State())
			h.start(false) // the probe
			require.Len(t, h.inflight, 1)
			h.burst(8, 0x0f)
			h.check()
			assert.Equal(t, int64(8), h.b.Counts().Rejected)
			h.finish(0, endFailure)
			h.check()
			assert.Equal(t, breaker.Open, h.b.State())
		})
	scenario("stale calls from an earlier closed period change nothing",
		modelConfig{threshold: 1, openTimeout: time.Second},
		func(t *testing.T, h *modelHarness) {
			h.burst(4, 0)
			require.Len(t, h.inflight, 4)
			h.finish(0, endFailure) // opens
			h.check()
			h.advanceKind(3, 0)
			h.start(true) // the probe of the new half-open period
			h.finish(0, endFailure)
			h.finish(0, endSuccess)
			h.finish(0, endNotCounted)
			h.check()
			assert.Equal(t, breaker.HalfOpen, h.b.State(), "stale outcomes must not touch the half-open period")
			h.finish(0, endSuccess)
			h.check()
			assert.Equal(t, breaker.Closed, h.b.State())
		})
	scenario("a canceled probe frees the slot and a panicking one reopens",
		modelConfig{threshold: 1, openTimeout: time.Minute, withIsFailure: true},
		func(t *testing.T, h *modelHarness) {
			h.call(endPanic, false)
			h.advanceKind(1, 0)
			h.call(endCanceled, true)
			h.check()
			h.call(endPanic, true)
			h.check()
			assert.Equal(t, breaker.Open, h.b.State())
			h.forceOpen()
			h.advanceKind(4, 0)
			h.call(endSuccess, false)
			h.reset()
			h.call(endNotCounted, false)
			h.check()
			assert.Equal(t, breaker.Closed, h.b.State())
		})
	scenario("the open timer alone makes the breaker half-open, at the end of the open period",
		modelConfig{threshold: 1, openTimeout: time.Minute},
		func(t *testing.T, h *modelHarness) {
			h.call(endFailure, false)
			h.advanceKind(2, 0) // a nanosecond short
			h.check()
			require.Equal(t, breaker.Open, h.b.State())
			h.advanceKind(1, 0) // exactly there, with no call and no State read
			h.check()
			require.Equal(t, breaker.HalfOpen, h.b.State())
			require.Len(t, h.m.changes, 2)
			assert.True(t, h.m.changes[1].At.Equal(h.m.changes[0].At.Add(time.Minute)), "half-open at exactly the end of the open period")
		})
	scenario("Reset of a closed breaker starts a fresh period: earlier calls count for nothing after it",
		modelConfig{threshold: 2, openTimeout: time.Second},
		func(t *testing.T, h *modelHarness) {
			h.call(endFailure, false)
			h.burst(2, 0b10)
			h.reset() // closed -> closed: no change reported
			h.finish(0, endFailure)
			h.finish(0, endFailure)
			h.check()
			assert.Equal(t, breaker.Closed, h.b.State(), "failures admitted before the Reset do not count after it")
			assert.Empty(t, h.m.changes)
			h.call(endFailure, true)
			h.call(endFailure, false)
			h.check()
			assert.Equal(t, breaker.Open, h.b.State(), "two failures of the fresh period open it")
		})
	scenario("a call whose context is done at entry counts ignored in every state and takes no probe slot",
		modelConfig{threshold: 1, openTimeout: time.Second},
		func(t *testing.T, h *modelHarness) {
			h.callDone(false)
			h.call(endFailure, false)
			h.callDone(true) // open: not a rejection
			h.advanceKind(1, 0)
			h.callDone(false) // half-open: the slot stays free
			h.call(endSuccess, true)
			h.check()
			assert.Equal(t, breaker.Closed, h.b.State())
			assert.Equal(t, breaker.Counts{Success: 1, Failure: 1, Ignored: 3}, h.b.Counts())
		})
	scenario("WithIsIgnored errors are neither success nor failure, and WithIsIgnored is asked first",
		modelConfig{threshold: 2, openTimeout: time.Second, withIsFailure: true, withIsIgnored: true},
		func(t *testing.T, h *modelHarness) {
			h.call(endFailure, false)
			h.call(endIgnored, false) // does not reset the count
			h.call(endFailure, true)
			h.check()
			require.Equal(t, breaker.Open, h.b.State())
			h.advanceKind(1, 0)
			h.call(endIgnored, true) // a neutral probe frees the slot
			h.check()
			require.Equal(t, breaker.HalfOpen, h.b.State())
			h.call(endNotCounted, false) // a success by WithIsFailure closes it
			h.check()
			assert.Equal(t, breaker.Closed, h.b.State())
			assert.Equal(t, breaker.Counts{Success: 1, Failure: 2, Ignored: 2}, h.b.Counts())
		})
	scenario("a count window trips on the rate of its last calls, after the minimum",
		modelConfig{rule: ruleFailureRate, ratio: 0.5, minCalls: 3, countWindow: 4, openTimeout: time.Second},
		func(t *testing.T, h *modelHarness) {
			h.call(endFailure, false)
			h.call(endFailure, true) // 2 of 2: under the minimum
			h.check()
			require.Equal(t, breaker.Closed, h.b.State())
			h.call(endSuccess, false) // 2 of 3: a success never trips
			h.call(endSuccess, false)
			h.call(endSuccess, false) // F S S S: the first failure slid out
			h.call(endFailure, false) // S S S F
			h.check()
			require.Equal(t, breaker.Closed, h.b.State())
			h.call(endFailure, true) // S S F F
			h.check()
			assert.Equal(t, breaker.Open, h.b.State())
			assert.Equal(t, "failure_rate", h.m.changes[0].TripRule)
		})
	scenario("a time window's bucket leaves at its end, a nanosecond late being too late",
		modelConfig{rule: ruleFailureRate, ratio: 1, minCalls: 2, timeWindow: 3 * time.Second, buckets: 3, openTimeout: time.Minute},
		func(t *testing.T, h *modelHarness) {
			h.call(endFailure, false)
			h.advanceKind(5, 0) // the first bucket ends
			h.advanceKind(5, 0)
			h.advanceKind(6, 0) // a nanosecond before the first bucket leaves the window
			h.check()
			h.call(endFailure, false)
			h.check()
			require.Equal(t, breaker.Open, h.b.State(), "2 failures in the window")
		})
	scenario("slow calls, held in flight on the bubble's clock, trip the slow-call rule",
		modelConfig{rule: ruleSlowCallRate, ratio: 0.5, minCalls: 2, countWindow: 4, slowDuration: time.Second, openTimeout: time.Minute},
		func(t *testing.T, h *modelHarness) {
			h.slowCall(endSuccess, 0, false) // exactly the duration: not slow
			h.slowCall(endSuccess, 1, true)  // 1 of 2
			h.check()
			assert.Equal(t, breaker.Open, h.b.State())
			h.advanceKind(1, 0)
			h.slowCall(endSuccess, 1, false) // a slow probe fails
			h.check()
			assert.Equal(t, breaker.Open, h.b.State())
		})
	scenario("several probes, several successes, and probes that give way together",
		modelConfig{threshold: 1, openTimeout: time.Second, halfOpenProbes: 3, halfOpenSuccesses: 2},
		func(t *testing.T, h *modelHarness) {
			h.call(endFailure, false)
			h.advanceKind(1, 0)
			h.burst(5, 0b10101) // three probes: every place held
			require.Len(t, h.inflight, 3)
			h.advanceKind(2, 0)
			h.start(false)      // a nanosecond short: rejected
			h.advanceKind(1, 0) // the oldest probe has held its place an open timeout
			h.start(true)
			require.Len(t, h.inflight, 4, "three late probes and a fresh one")
			h.finish(0, endSuccess) // stale
			h.finish(0, endSuccess) // stale
			h.finish(0, endFailure) // stale
			h.check()
			require.Equal(t, breaker.HalfOpen, h.b.State())
			assert.Equal(t, int64(3), h.b.Counts().Ignored)
			h.call(endSuccess, false)
			h.check()
			require.Equal(t, breaker.HalfOpen, h.b.State(), "one success of two")
			h.finish(0, endSuccess)
			h.check()
			assert.Equal(t, breaker.Closed, h.b.State())
		})
	scenario("open periods grow on each failed probe, jittered, and closing resets them",
		modelConfig{threshold: 1, openTimeout: time.Second, backoff: &modelBackoff{factor: 2, max: 5 * time.Second, jitter: 0.5, seed: 12}},
		func(t *testing.T, h *modelHarness) {
			h.call(endFailure, false)
			for range 4 {
				h.advanceKind(1, 0)
				h.call(endFailure, true)
				h.check()
			}
			h.advanceKind(1, 0)
			h.call(endSuccess, false)
			h.call(endFailure, false)
			h.check()
			last := h.m.changes[len(h.m.changes)-1]
			assert.Equal(t, time.Second, last.OpenFor)
		})
	scenario("shadow mode runs what it would reject, and switches at run time",
		modelConfig{threshold: 2, openTimeout: time.Second, shadow: true},
		func(t *testing.T, h *modelHarness) {
			h.call(endFailure, false)
			h.call(endFailure, false)
			h.burst(4, 0b0110) // open: all run, shadowed
			require.Len(t, h.inflight, 4)
			h.finish(0, endSuccess)
			h.finish(0, endPanic)
			h.check()
			h.setShadow(false)
			h.start(false) // rejected
			h.advanceKind(1, 0)
			h.setShadow(true)
			h.start(true)  // the probe
			h.start(false) // shadowed
			h.finish(len(h.inflight)-1, endFailure)
			h.check()
			require.Equal(t, breaker.HalfOpen, h.b.State())
			h.finish(len(h.inflight)-1, endSuccess)
			h.check()
			assert.Equal(t, breaker.Closed, h.b.State())
		})
	scenario("a probe in flight longer than the open timeout no longer holds the breaker, and its result is ignored",
		modelConfig{threshold: 1, openTimeout: time.Second},
		func(t *testing.T, h *modelHarness) {
			h.call(endFailure, false)
			h.advanceKind(1, 0)
			h.start(false) // the probe, held
			h.advanceKind(2, 0)
			h.start(true) // a nanosecond short: rejected
			require.Len(t, h.inflight, 1)
			h.advanceKind(1, 0)
			h.start(true) // the probe has held it an open timeout: this call probes
			require.Len(t, h.inflight, 2)
			h.finish(0, endFailure) // the late probe: ignored, changes nothing
			h.check()
			require.Equal(t, breaker.HalfOpen, h.b.State())
			assert.Equal(t, int64(1), h.b.Counts().Ignored)
			h.finish(0, endSuccess)
			h.check()
			assert.Equal(t, breaker.Closed, h.b.State())
		})
}
