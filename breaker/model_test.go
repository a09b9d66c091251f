package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/internal/fakeclock"
	"github.com/levee-go/levee/resilience"
)

// This file checks the breaker against a reference model of the state
// machine in DESIGN.md: a plain struct, one goroutine, no atomics, written to
// be obviously right. Random programs of calls (succeeding, failing, ending
// by caller cancellation, panicking, failing with an error WithIsFailure does
// not count), calls held in flight, concurrent bursts, clock advances, State
// reads, ForceOpen and Reset run against both; after every step the
// breaker's State, its Counts and the changes its listener saw must match the
// model, and every call must have been admitted or rejected as the model
// says. rapid drives it here; FuzzBreakerStateMachine drives the same modelHarness
// from fuzz bytes.

// modelOutcome is how a guarded function ends.
type modelOutcome uint8

const (
	endSuccess    modelOutcome = iota // returns a value and no error
	endFailure                        // returns errModelDependency
	endCanceled                       // the caller's ctx is canceled; returns ctx.Err()
	endPanic                          // panics with a value unique to the call
	endNotCounted                     // returns errModelNotFound, which WithIsFailure does not count (when installed)
	numModelOutcomes
)

func (k modelOutcome) String() string {
	return [...]string{"success", "failure", "canceled", "panic", "not-counted"}[k]
}

var (
	errModelDependency = errors.New("dependency failed")
	errModelNotFound   = errors.New("not found")
)

// modelValue is what a guarded function returns on success, so the Policy
// path can check the value comes through.
const modelValue = 42

// ---------------------------------------------------------------------------
// The reference model.

// refModel is the state machine of DESIGN.md, sequential and explicit.
type refModel struct {
	name          string
	threshold     int
	openTimeout   time.Duration
	countNotFound bool // no WithIsFailure: errModelNotFound is a failure like any error

	now        time.Time
	state      breaker.State
	forced     bool      // Open by ForceOpen: no probe until Reset
	failures   int       // consecutive failures while Closed
	until      time.Time // Open, not forced: when a probe may go through
	since      time.Time // when the current period began
	period     int       // bumped at every transition; a call's outcome only counts in its own period
	probeTaken bool      // HalfOpen: the probe is in flight

	counts  breaker.Counts
	changes []breaker.StateChange
}

// modelAdmission is the model's decision on one call.
type modelAdmission struct {
	admitted bool
	period   int
	state    breaker.State // the state that admitted the call, or rejected it
}

func newRefModel(name string, threshold int, openTimeout time.Duration, countNotFound bool, now time.Time) *refModel {
	return &refModel{name: name, threshold: threshold, openTimeout: openTimeout, countNotFound: countNotFound, now: now, since: now}
}

func (m *refModel) transition(to breaker.State, consecutiveFailures int, forced bool) {
	m.changes = append(m.changes, breaker.StateChange{
		Name: m.name, From: m.state, To: to, At: m.now,
		ConsecutiveFailures: consecutiveFailures, Forced: forced,
	})
	m.state = to
	m.forced = forced && to == breaker.Open
	m.failures = 0
	m.probeTaken = false
	m.until = time.Time{}
	if to == breaker.Open && !m.forced {
		m.until = m.now.Add(m.openTimeout)
	}
	m.since = m.now
	m.period++
}

// expired reports whether the open timeout has passed, so that the next
// look at the breaker (a call or State) makes it half-open.
func (m *refModel) expired() bool {
	return m.state == breaker.Open && !m.forced && !m.now.Before(m.until)
}

func (m *refModel) readState() breaker.State {
	if m.expired() {
		m.transition(breaker.HalfOpen, 0, false)
	}
	return m.state
}

func (m *refModel) admit() modelAdmission {
	if m.expired() {
		m.transition(breaker.HalfOpen, 0, false)
		m.probeTaken = true
		return modelAdmission{admitted: true, period: m.period, state: breaker.HalfOpen}
	}
	switch {
	case m.state == breaker.Closed:
		return modelAdmission{admitted: true, period: m.period, state: breaker.Closed}
	case m.state == breaker.HalfOpen && !m.probeTaken:
		m.probeTaken = true
		return modelAdmission{admitted: true, period: m.period, state: breaker.HalfOpen}
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
	case endNotCounted:
		if !m.countNotFound {
			return modelVerdictSuccess
		}
	}
	return modelVerdictFailure // endFailure, endPanic, and errModelNotFound without a predicate
}

// finish applies the outcome of an admitted call. A call admitted in a period
// that has ended since is counted but changes nothing.
func (m *refModel) finish(a modelAdmission, k modelOutcome) {
	v := m.classify(k)
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
	switch m.state {
	case breaker.Closed:
		switch v {
		case modelVerdictSuccess:
			m.failures = 0
		case modelVerdictFailure:
			m.failures++
			if m.failures >= m.threshold {
				m.transition(breaker.Open, m.failures, false)
			}
		}
	case breaker.HalfOpen:
		switch v {
		case modelVerdictSuccess:
			m.transition(breaker.Closed, 0, false)
		case modelVerdictFailure:
			m.transition(breaker.Open, 1, false)
		case modelVerdictIgnored:
			m.probeTaken = false
		}
	}
}

func (m *refModel) forceOpen() {
	if m.state == breaker.Open && m.forced {
		return
	}
	m.transition(breaker.Open, 0, true)
}

func (m *refModel) reset() {
	if m.state == breaker.Closed {
		m.failures = 0
		return
	}
	m.transition(breaker.Closed, 0, true)
}

// rejection is what an *OpenError from a rejection in state s must say.
func (m *refModel) rejection(s breaker.State) (until time.Time, retryAfter time.Duration) {
	switch {
	case s == breaker.HalfOpen:
		return m.since, 0
	case m.forced:
		return time.Time{}, m.openTimeout
	}
	return m.until, m.until.Sub(m.now)
}

// ---------------------------------------------------------------------------
// The modelHarness: one breaker, its model, and the calls held in flight.

// modelWaitBound is how long the modelHarness waits for a call to reach its function
// or return before it calls the breaker deadlocked.
const modelWaitBound = 10 * time.Second

// modelMaxInFlight bounds the calls held at once, so programs stay cheap.
const modelMaxInFlight = 12

type modelHarness struct {
	t     rapid.TB
	m     *refModel
	clock *fakeclock.Clock
	b     *breaker.Breaker

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
}

func newModelHarness(t rapid.TB, threshold int, openTimeout time.Duration, withPredicate bool) *modelHarness {
	clock := fakeclock.New()
	h := &modelHarness{t: t, clock: clock}
	h.m = newRefModel("model", threshold, openTimeout, !withPredicate, clock.Now())
	opts := []breaker.Option{
		breaker.WithFailureThreshold(threshold),
		breaker.WithOpenTimeout(openTimeout),
		breaker.WithClock(clock.Now),
		breaker.WithStateChangeListener(func(c breaker.StateChange) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.changes = append(h.changes, c)
		}),
	}
	if withPredicate {
		opts = append(opts, breaker.WithIsFailure(func(err error) bool { return !errors.Is(err, errModelNotFound) }))
	}
	h.b = breaker.New("model", opts...)
	return h
}

// launch starts a call in its own goroutine; it waits for gate, when not
// nil, before calling the breaker.
func (h *modelHarness) launch(viaPolicy bool, gate <-chan struct{}) *modelCall {
	h.calls++
	ctx, cancel := context.WithCancel(context.Background())
	c := &modelCall{
		id: h.calls, viaPolicy: viaPolicy, ctx: ctx, cancel: cancel,
		token:   &modelPanic{call: h.calls},
		entered: make(chan struct{}),
		release: make(chan modelOutcome, 1),
		done:    make(chan modelResult, 1),
	}
	fn := func(ctx context.Context) (int, error) {
		close(c.entered)
		switch <-c.release {
		case endFailure:
			return 0, errModelDependency
		case endNotCounted:
			return 0, errModelNotFound
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

// awaitAdmission waits until the call either runs its function (admitted)
// or returns without running it (rejected, its result in res).
func (h *modelHarness) awaitAdmission(c *modelCall) (admitted bool, res modelResult) {
	h.t.Helper()
	timer := time.NewTimer(modelWaitBound)
	defer timer.Stop()
	select {
	case <-c.entered:
		return true, modelResult{}
	case res := <-c.done:
		return false, res
	case <-timer.C:
		h.t.Fatalf("call %d neither ran its function nor returned within %v: the breaker is stuck", c.id, modelWaitBound)
	}
	panic("unreachable")
}

func (h *modelHarness) awaitDone(c *modelCall) modelResult {
	h.t.Helper()
	timer := time.NewTimer(modelWaitBound)
	defer timer.Stop()
	select {
	case res := <-c.done:
		return res
	case <-timer.C:
		h.t.Fatalf("call %d did not return within %v after its function was released: the breaker is stuck", c.id, modelWaitBound)
	}
	panic("unreachable")
}

// checkRejected checks a rejected call's result against the model's
// decision: an *OpenError naming the state that rejected it.
func (h *modelHarness) checkRejected(c *modelCall, res modelResult, by breaker.State) {
	h.t.Helper()
	c.cancel()
	require.Nil(h.t, res.panicked, "call %d: rejected call panicked", c.id)
	require.ErrorIs(h.t, res.err, breaker.ErrOpen, "call %d: the model rejects it in %v", c.id, by)
	var oe *breaker.OpenError
	require.ErrorAs(h.t, res.err, &oe, "call %d", c.id)
	until, retryAfter := h.m.rejection(by)
	assert.Equal(h.t, "model", oe.Name, "call %d: OpenError.Name", c.id)
	assert.Equal(h.t, by, oe.State, "call %d: OpenError.State", c.id)
	assert.True(h.t, until.Equal(oe.Until), "call %d: OpenError.Until = %v, model %v", c.id, oe.Until, until)
	assert.Equal(h.t, retryAfter, oe.RetryAfter(), "call %d: RetryAfter", c.id)
	assert.Zero(h.t, res.value, "call %d: a rejected call returns the zero value", c.id)
}

// start begins one call and leaves it in flight when the model admits it.
func (h *modelHarness) start(viaPolicy bool) {
	h.t.Helper()
	c := h.launch(viaPolicy, nil)
	admitted, res := h.awaitAdmission(c)
	c.adm = h.m.admit()
	require.Equal(h.t, c.adm.admitted, admitted,
		"call %d: admitted by the breaker = %v, by the model = %v (model state %v)", c.id, admitted, c.adm.admitted, h.m.state)
	if !admitted {
		h.checkRejected(c, res, c.adm.state)
		return
	}
	h.inflight = append(h.inflight, c)
}

// finish releases the i-th call in flight with outcome k and checks that its
// caller gets exactly what the function returned or raised.
func (h *modelHarness) finish(i int, k modelOutcome) {
	h.t.Helper()
	c := h.inflight[i]
	h.inflight = append(h.inflight[:i:i], h.inflight[i+1:]...)
	c.release <- k
	res := h.awaitDone(c)
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

// burst makes n calls at once, released together. Whatever the interleaving,
// the model decides as if they came one after another: all admitted while
// Closed; exactly one (the probe) admitted when the breaker is or becomes
// HalfOpen with no probe in flight; none otherwise. Admitted calls stay in
// flight.
func (h *modelHarness) burst(n int, policyMask uint64) {
	h.t.Helper()
	gate := make(chan struct{})
	calls := make([]*modelCall, n)
	for i := range calls {
		calls[i] = h.launch(policyMask&(1<<i) != 0, gate)
	}
	close(gate)
	var admitted []*modelCall
	var rejected []*modelCall
	results := make(map[*modelCall]modelResult)
	for _, c := range calls {
		ok, res := h.awaitAdmission(c)
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
	require.Len(h.t, admitted, len(want), "burst of %d: calls admitted (model state %v)", n, h.m.state)
	for i, c := range admitted {
		c.adm = want[i]
		h.inflight = append(h.inflight, c)
	}
	for i, c := range rejected {
		h.checkRejected(c, results[c], wantRejectedBy[i])
	}
}

// advance moves the clock, and the model's, forward by d.
func (h *modelHarness) advance(d time.Duration) {
	h.clock.Advance(d)
	h.m.now = h.m.now.Add(d)
}

// advanceKind picks how far to move the clock: 0 a random bit (frac/255 of
// the open timeout), 1 exactly to the end of the open period, 2 one
// nanosecond short of it, 3 one nanosecond past it, 4 a whole open timeout.
func (h *modelHarness) advanceKind(kind int, frac uint8) {
	remaining := h.m.openTimeout
	if h.m.state == breaker.Open && !h.m.forced {
		remaining = h.m.until.Sub(h.m.now)
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
	default:
		d = h.m.openTimeout
	}
	h.advance(max(d, 0))
}

func (h *modelHarness) readState() {
	h.t.Helper()
	want := h.m.readState()
	require.Equal(h.t, want, h.b.State(), "State()")
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
// listener saw, and State. State is read only when reading it changes
// nothing (the open timeout has not passed), so that the lazy
// Open -> HalfOpen transition stays for a call or an explicit read to make.
func (h *modelHarness) check() {
	h.t.Helper()
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
	if !h.m.expired() {
		require.Equal(h.t, h.m.state, h.b.State(), "State()")
	}
}

// releaseAll lets every call still in flight end, so that no goroutine
// outlives the program; it checks nothing.
func (h *modelHarness) releaseAll() {
	for _, c := range h.inflight {
		c.release <- endSuccess
		select {
		case <-c.done:
		case <-time.After(modelWaitBound):
		}
		c.cancel()
	}
	h.inflight = nil
}

func (h *modelHarness) String() string {
	return fmt.Sprintf("threshold=%d openTimeout=%v state=%v inflight=%d", h.m.threshold, h.m.openTimeout, h.m.state, len(h.inflight))
}

// ---------------------------------------------------------------------------
// The rapid property.

func TestBreaker_MatchesReferenceModel(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		threshold := rapid.IntRange(1, 5).Draw(t, "threshold")
		openTimeout := time.Duration(rapid.Int64Range(1, int64(time.Hour)).Draw(t, "openTimeout"))
		withPredicate := rapid.Bool().Draw(t, "withPredicate")
		h := newModelHarness(t, threshold, openTimeout, withPredicate)
		defer h.releaseAll()

		outcomes := rapid.SampledFrom([]modelOutcome{endSuccess, endFailure, endCanceled, endPanic, endNotCounted})
		t.Repeat(map[string]func(*rapid.T){
			"call": func(t *rapid.T) {
				h.call(outcomes.Draw(t, "outcome"), rapid.Bool().Draw(t, "viaPolicy"))
			},
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
				h.advanceKind(rapid.IntRange(0, 4).Draw(t, "kind"), rapid.Uint8().Draw(t, "frac"))
			},
			"state": func(*rapid.T) { h.readState() },
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
}

// TestBreaker_ReferenceModelScenarios pins scenarios the random programs
// must keep covering, through the same modelHarness.
func TestBreaker_ReferenceModelScenarios(t *testing.T) {
	t.Parallel()
	t.Run("a probe held in flight rejects a burst, then its failure reopens", func(t *testing.T) {
		t.Parallel()
		h := newModelHarness(t, 2, time.Second, true)
		defer h.releaseAll()
		h.call(endFailure, false)
		h.call(endFailure, true)
		h.check()
		h.advanceKind(1, 0)
		h.start(false) // the probe
		require.Len(t, h.inflight, 1)
		h.burst(8, 0x0f)
		h.check()
		assert.Equal(t, int64(8), h.b.Counts().Rejected)
		h.finish(0, endFailure)
		h.check()
		assert.Equal(t, breaker.Open, h.b.State())
	})
	t.Run("stale calls from an earlier closed period change nothing", func(t *testing.T) {
		t.Parallel()
		h := newModelHarness(t, 1, time.Second, false)
		defer h.releaseAll()
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
	t.Run("a canceled probe frees the slot and a panicking one reopens", func(t *testing.T) {
		t.Parallel()
		h := newModelHarness(t, 1, time.Minute, true)
		defer h.releaseAll()
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
}
