package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/breaker"
)

// fuzzOpenTimeouts are the open timeouts a program's second byte chooses
// from: from the smallest valid one to the default and beyond (the last one
// is past modelHorizon: it never ends within a program).
var fuzzOpenTimeouts = [...]time.Duration{
	1, time.Microsecond, time.Millisecond, 250 * time.Millisecond,
	time.Second, breaker.DefaultOpenTimeout, time.Hour, 1<<62 - 1,
}

// fuzzMaxOps bounds the operations run from one input, so a long input costs
// no more than a long rapid program.
const fuzzMaxOps = 256

// Operations of a fuzz program: each is two bytes, an opcode and an
// argument.
const (
	fzCall      = iota // arg: outcome ((arg&0x7f)%numModelOutcomes), via Policy (arg&0x80)
	fzStart            // arg: via Policy (arg&1)
	fzFinish           // arg: which call in flight (arg>>3), outcome ((arg&7)%numModelOutcomes)
	fzBurst            // arg: size 2 + arg%7, via Policy mask (arg)
	fzAdvance          // arg: kind (arg%5, or arg%8 with a time window: see advanceKind), fraction (arg)
	fzState            // State()
	fzForceOpen        // ForceOpen
	fzReset            // Reset
	fzCallDone         // arg: via Policy (arg&1); the call's context is done before it starts
	fzCallNil          // Call(ctx, nil)
	fzSlowCall         // arg: outcome ((arg&7)%numModelOutcomes), the slow-call duration -1, +0 or +1 ns ((arg>>3)%3), via Policy (arg&0x80)
	fzShadow           // arg: SetShadowMode(arg&1 == 1)
	fzNumOps
)

// Flags of a program's third byte.
const (
	fzFlagIsFailure = 1 << iota // WithIsFailure: errModelNotFound is a success
	fzFlagIsIgnored             // WithIsIgnored: errModelIgnored is neither
	fzFlagRules                 // fzRulesLen bytes of issue 12's settings follow the header
)

// fzRulesLen is the length of the settings block fzFlagRules announces:
//
//	0: the trip rule (b%4: consecutive, failure rate, slow-call rate,
//	   custom) and the window ((b>>2)%3: none, count, time; a rule other
//	   than consecutive failures gets a count or a time window)
//	1: the ratio (b%7 of fuzzRatios) and the minimum calls (1 + (b>>3) % at
//	   most the count window, or 6)
//	2: the count window's size (1 + b%8) or the time window's buckets (1 + b%5)
//	3: a time window's bucket width (b%6 of fuzzBucketWidths)
//	4: slow calls (b&1, always for the slow-call rule): a slow-call duration
//	   of (1 + (b>>1)%8) eighths of the open timeout, at least 1 ns
//	5: half-open: 0 the default; otherwise 1 + b%3 probes and 1 + (b>>2) %
//	   probes successes
//	6: an open backoff (b&1): factor (b>>1)%4 of fuzzFactors, jitter
//	   (b>>3)%4 of fuzzJitters, max 1 + (b>>5)%8 open timeouts
//	7: shadow mode (b&1), and the backoff's jitter seed (b>>1)
const fzRulesLen = 8

var (
	fuzzRatios       = [...]float64{0.2, 0.25, 1.0 / 3, 0.5, 2.0 / 3, 0.75, 1}
	fuzzBucketWidths = [...]time.Duration{time.Millisecond, 7 * time.Millisecond, 100 * time.Millisecond, time.Second, 10 * time.Second, time.Minute}
	fuzzFactors      = [...]float64{1, 1.5, 2, 3}
	fuzzJitters      = [...]float64{0, 0.25, 0.5, 0.9}
)

// fuzzModelConfig decodes a program's header and, with fzFlagRules, the
// settings block after it; it returns the settings and the rest of the
// program, its operations.
func fuzzModelConfig(program []byte) (modelConfig, []byte) {
	header := [3]byte{2, 4, fzFlagIsFailure}
	copy(header[:], program)
	cfg := modelConfig{
		threshold:     1 + int(header[0]%5),
		openTimeout:   fuzzOpenTimeouts[int(header[1])%len(fuzzOpenTimeouts)],
		withIsFailure: header[2]&fzFlagIsFailure != 0,
		withIsIgnored: header[2]&fzFlagIsIgnored != 0,
	}
	ops := program[min(len(program), len(header)):]
	if header[2]&fzFlagRules == 0 {
		return cfg, ops
	}
	var r [fzRulesLen]byte
	copy(r[:], ops)
	ops = ops[min(len(ops), fzRulesLen):]

	cfg.rule = modelRule(r[0] % 4)
	window := (r[0] >> 2) % 3 // none, count, time
	if cfg.rule != ruleConsecutive && window == 0 {
		window = 1 + (r[0]>>4)%2
	}
	switch window {
	case 1:
		cfg.countWindow = 1 + int(r[2]%8)
	case 2:
		cfg.buckets = 1 + int(r[2]%5)
		cfg.timeWindow = time.Duration(cfg.buckets) * fuzzBucketWidths[int(r[3])%len(fuzzBucketWidths)]
	}
	if cfg.rule == ruleFailureRate || cfg.rule == ruleSlowCallRate {
		cfg.ratio = fuzzRatios[int(r[1])%len(fuzzRatios)]
		maxMin := 6
		if cfg.countWindow > 0 {
			maxMin = cfg.countWindow
		}
		cfg.minCalls = 1 + int(r[1]>>3)%maxMin
	}
	if cfg.rule == ruleSlowCallRate || window > 0 && r[4]&1 != 0 {
		cfg.slowDuration = max(cfg.openTimeout/8*time.Duration(1+(r[4]>>1)%8), 1)
	}
	if r[5] != 0 {
		cfg.halfOpenProbes = 1 + int(r[5]%3)
		cfg.halfOpenSuccesses = 1 + int(r[5]>>2)%cfg.halfOpenProbes
	}
	if r[6]&1 != 0 {
		maxOpen := cfg.openTimeout
		if times := time.Duration(1 + (r[6]>>5)%8); cfg.openTimeout <= math.MaxInt64/times {
			maxOpen = cfg.openTimeout * times
		}
		cfg.backoff = &modelBackoff{
			factor: fuzzFactors[(r[6]>>1)%4],
			max:    maxOpen,
			jitter: fuzzJitters[(r[6]>>3)%4],
			seed:   uint64(r[7] >> 1),
		}
	}
	cfg.shadow = r[7]&1 != 0
	return cfg, ops
}

// runFuzzProgram runs program against the breaker and the reference model of
// model_test.go, in a synctest bubble of its own. Byte 0 chooses the
// threshold (1 + b%5), byte 1 the open timeout, byte 2 the predicates
// (fzFlagIsFailure, fzFlagIsIgnored) and whether issue 12's settings follow
// (fzFlagRules, see fzRulesLen); the rest is pairs of opcode and argument.
// After every step the breaker must match the model, and hold the
// invariants of fuzzInvariants, which do not depend on the model.
func runFuzzProgram(t *testing.T, program []byte) {
	boundedSyncTest(t, bubbleBound, func(t *testing.T) {
		cfg, ops := fuzzModelConfig(program)
		h := newModelHarness(t, cfg)
		defer h.releaseAll()
		ops = ops[:min(len(ops), 2*fuzzMaxOps)]
		inv := &fuzzInvariants{last: breaker.Closed}
		h.check()
		inv.check(t, h)
		for i := 0; i+1 < len(ops); i += 2 {
			op, arg := ops[i]%fzNumOps, ops[i+1]
			switch op {
			case fzCall:
				inv.admitting(t, h, 1, func() { h.call(modelOutcome((arg&0x7f)%uint8(numModelOutcomes)), arg&0x80 != 0) })
			case fzStart:
				if len(h.inflight) < modelMaxInFlight {
					inv.admitting(t, h, 1, func() { h.start(arg&1 == 1) })
				}
			case fzFinish:
				if len(h.inflight) > 0 {
					h.finish(int(arg>>3)%len(h.inflight), modelOutcome((arg&7)%uint8(numModelOutcomes)))
				}
			case fzBurst:
				if n := min(2+int(arg%7), modelMaxInFlight-len(h.inflight)); n >= 2 {
					inv.admitting(t, h, n, func() { h.burst(n, uint64(arg)) })
				}
			case fzAdvance:
				kinds := uint8(5)
				if h.m.timeWindow > 0 {
					kinds = 8
				}
				h.advanceKind(int(arg%kinds), arg)
			case fzState:
				h.readState()
			case fzForceOpen:
				h.forceOpen()
			case fzReset:
				h.reset()
			case fzCallDone:
				h.callDone(arg&1 == 1)
			case fzCallNil:
				h.callNil()
			case fzSlowCall:
				if len(h.inflight) < modelMaxInFlight {
					by := int((arg>>3)%3) - 1
					inv.admitting(t, h, 1, func() { h.slowCall(modelOutcome((arg&7)%uint8(numModelOutcomes)), by, arg&0x80 != 0) })
				}
			case fzShadow:
				h.setShadow(arg&1 == 1)
			}
			h.check()
			inv.check(t, h)
		}
	})
}

// fuzzInvariants are what must hold after every step whatever the model
// says: every state change is one the state machine allows, following the
// one before; counts never go down and add up to the calls made; the
// window's counts are consistent; and an open breaker not in shadow mode
// admits no call.
type fuzzInvariants struct {
	counts breaker.Counts
	last   breaker.State // the state the last change entered
	seen   int           // the listener's changes checked so far
}

// legalTransition reports whether c is a change the state machine makes:
// closed -> open by a trip rule, open -> half-open by the timer, half-open
// -> closed or open by the probes; and forced, open from any state
// (ForceOpen) or closed from open or half-open (Reset).
func legalTransition(c breaker.StateChange) bool {
	switch {
	case c.Forced:
		return c.TripRule == "" && (c.To == breaker.Open || c.To == breaker.Closed && c.From != breaker.Closed)
	case c.From == breaker.Closed && c.To == breaker.Open:
		return c.TripRule != ""
	case c.From == breaker.Open && c.To == breaker.HalfOpen,
		c.From == breaker.HalfOpen && (c.To == breaker.Closed || c.To == breaker.Open):
		return c.TripRule == ""
	}
	return false
}

func (inv *fuzzInvariants) check(t *testing.T, h *modelHarness) {
	t.Helper()
	c := h.b.Counts()
	prev := inv.counts
	require.True(t, c.Success >= prev.Success && c.Failure >= prev.Failure && c.Rejected >= prev.Rejected &&
		c.Ignored >= prev.Ignored && c.ShadowRejected >= prev.ShadowRejected, "counts went down: %+v after %+v", c, prev)
	inv.counts = c
	total := c.Success + c.Failure + c.Rejected + c.Ignored + c.ShadowRejected
	require.LessOrEqual(t, total, int64(h.calls), "more calls counted (%+v) than made (%d)", c, h.calls)
	require.GreaterOrEqual(t, total, int64(h.calls-len(h.inflight)), "a call that returned is not counted: %+v, %d made, %d in flight", c, h.calls, len(h.inflight))

	w := h.b.Window()
	require.True(t, w.Calls >= w.Failures && w.Calls >= w.SlowCalls && w.Failures >= 0 && w.SlowCalls >= 0 && w.ConsecutiveFailures >= 0,
		"inconsistent window counts %+v", w)
	if n := h.m.countWindow; n > 0 {
		require.LessOrEqual(t, w.Calls, int64(n), "a count window of %d holds %+v", n, w)
	}

	h.mu.Lock()
	changes := append([]breaker.StateChange(nil), h.changes[inv.seen:]...)
	h.mu.Unlock()
	for _, change := range changes {
		require.Equal(t, inv.last, change.From, "change %d leaves %v, but the breaker was %v", inv.seen, change.From, inv.last)
		require.True(t, legalTransition(change), "change %d is no transition of the state machine: %+v", inv.seen, change)
		inv.last = change.To
		inv.seen++
	}
	require.Equal(t, inv.last, h.b.State(), "State() is not the state the last change entered")
}

// admitting runs op, which makes n calls, and checks that an open breaker
// not in shadow mode rejected them all: n more rejections and nothing else
// counted, nothing left in flight, the breaker still open.
func (inv *fuzzInvariants) admitting(t *testing.T, h *modelHarness, n int, op func()) {
	t.Helper()
	open := h.b.State() == breaker.Open && !h.b.ShadowMode()
	before, inflight := h.b.Counts(), len(h.inflight)
	op()
	if !open {
		return
	}
	synctest.Wait()
	want := before
	want.Rejected += int64(n)
	require.Equal(t, want, h.b.Counts(), "an open breaker not in shadow mode admitted a call")
	require.Len(t, h.inflight, inflight, "an open breaker not in shadow mode let a call run")
	require.Equal(t, breaker.Open, h.b.State())
}

// fuzzProgram builds a program from a header and operations, for seeds.
func fuzzProgram(threshold, timeoutIndex, flags byte, ops ...byte) []byte {
	return append([]byte{threshold - 1, timeoutIndex, flags}, ops...)
}

// FuzzBreakerStateMachine interprets its input as a program of calls, time
// passing, State reads and operator actions, and checks the breaker against
// the reference model after every step, each input in a synctest bubble.
// Its seeds in testdata/fuzz/FuzzBreakerStateMachine run with every go
// test.
func FuzzBreakerStateMachine(f *testing.F) {
	// Opens after three failures, rejects, recovers through a probe.
	f.Add(fuzzProgram(3, 4, fzFlagIsFailure,
		fzCall, byte(endFailure), fzCall, byte(endFailure), fzCall, byte(endFailure)|0x80,
		fzCall, byte(endSuccess), fzAdvance, 1, fzCall, byte(endSuccess), fzState, 0))
	// A probe in flight rejects a burst; its failure reopens for a fresh timeout.
	f.Add(fuzzProgram(1, 2, 0,
		fzCall, byte(endPanic), fzAdvance, 3, fzStart, 0, fzBurst, 6, fzFinish, byte(endFailure),
		fzAdvance, 2, fzState, 0, fzAdvance, 1, fzState, 0))
	// A canceled probe frees the slot for the next caller.
	f.Add(fuzzProgram(2, 0, fzFlagIsFailure,
		fzCall, byte(endFailure), fzCall, byte(endNotCounted), fzCall, byte(endFailure), fzCall, byte(endFailure),
		fzAdvance, 4, fzStart, 1, fzFinish, byte(endCanceled), fzStart, 0, fzFinish, byte(endSuccess)))
	// Operators: forced open ignores the timeout; Reset starts afresh from anywhere.
	f.Add(fuzzProgram(1, 5, 0,
		fzStart, 0, fzForceOpen, 0, fzAdvance, 4, fzCall, 0, fzFinish, byte(endFailure),
		fzReset, 0, fzReset, 0, fzForceOpen, 0, fzForceOpen, 0, fzReset, 0, fzCall, byte(endFailure)))
	// Calls done at entry and nil functions count as nothing but ignored,
	// in every state; ignored errors free the probe slot.
	f.Add(fuzzProgram(1, 4, fzFlagIsFailure|fzFlagIsIgnored,
		fzCallDone, 0, fzCallNil, 0, fzCall, byte(endIgnored), fzCall, byte(endFailure), fzCallDone, 1,
		fzAdvance, 1, fzCallDone, 0, fzStart, 0, fzFinish, byte(endIgnored), fzCall, byte(endNotCounted)))
	// A probe held past the open timeout gives way to the next call.
	f.Add(fuzzProgram(1, 1, 0,
		fzCall, byte(endFailure), fzAdvance, 1, fzStart, 0, fzAdvance, 2, fzStart, 1, fzAdvance, 1,
		fzStart, 1, fzFinish, byte(endFailure), fzFinish, byte(endSuccess)))
	// Issue 12's rules, each chosen by a settings block (fuzzRulesSeeds).
	for _, seed := range fuzzRulesSeeds {
		f.Add(seed.program)
	}
	f.Fuzz(runFuzzProgram)
}

// fuzzRulesProgram builds a program whose header announces a settings
// block (fzFlagRules and flags), for seeds.
func fuzzRulesProgram(threshold, timeoutIndex, flags byte, rules [fzRulesLen]byte, ops ...byte) []byte {
	return append(append([]byte{threshold - 1, timeoutIndex, flags | fzFlagRules}, rules[:]...), ops...)
}

// fuzzRulesSeeds are the seeds of issue 12's rules, also committed in
// testdata/fuzz/FuzzBreakerStateMachine under their names.
var fuzzRulesSeeds = []struct {
	name    string
	program []byte
}{
	// A failure rate of 1/2 over the last 4 calls, at least 3 of them,
	// trips; shadow mode, switched on, lets a call through and counts it.
	{"failure_rate_count_window_shadow", fuzzRulesProgram(1, 4, fzFlagIsFailure,
		[fzRulesLen]byte{1 | 1<<2, 17, 3, 0, 0, 0, 0, 0},
		fzCall, byte(endFailure), fzCall, byte(endSuccess), fzCall, byte(endFailure), fzCall, byte(endFailure),
		fzShadow, 1, fzCall, byte(endSuccess), fzBurst, 3, fzShadow, 0, fzCall, byte(endSuccess),
		fzAdvance, 1, fzCall, byte(endSuccess), fzState, 0)},
	// Slow calls (half the open timeout) over a time window of three
	// buckets trip at a rate of 1/2; three probes, two successes to close;
	// the open period grows on a reopening.
	{"slow_call_rate_time_window_probes_backoff", fuzzRulesProgram(1, 4, 0,
		[fzRulesLen]byte{2 | 2<<2, 10, 2, 3, 1 | 3<<1, 5, 1 | 2<<1 | 1<<3 | 3<<5, 5 << 1},
		fzSlowCall, byte(endSuccess)|2<<3, fzSlowCall, byte(endSuccess)|2<<3,
		fzAdvance, 1, fzStart, 0, fzStart, 1, fzStart, 0, fzCall, byte(endSuccess), fzFinish, byte(endFailure),
		fzAdvance, 1, fzStart, 0, fzStart, 0, fzFinish, byte(endSuccess), fzSlowCall, byte(endSuccess)|1<<3,
		fzFinish, byte(endSuccess), fzSlowCall, byte(endSuccess), fzState, 0)},
	// A custom rule over a time window of two 1 ms buckets, slow calls
	// counted, in shadow mode from the start: buckets expire at their
	// boundaries, and operators act.
	{"custom_rule_buckets_expire_shadow", fuzzRulesProgram(1, 3, fzFlagIsIgnored,
		[fzRulesLen]byte{3 | 2<<2, 0, 1, 0, 1, 0, 0, 1},
		fzCall, byte(endFailure), fzAdvance, 5, fzCall, byte(endFailure), fzAdvance, 6,
		fzSlowCall, byte(endFailure)|2<<3, fzAdvance, 7+8*30, fzCall, byte(endFailure), fzCall, byte(endIgnored),
		fzShadow, 0, fzCall, byte(endFailure), fzCall, byte(endFailure), fzCall, byte(endFailure),
		fzForceOpen, 0, fzCall, byte(endSuccess), fzReset, 0, fzCallDone, 0, fzState, 0)},
}

func TestLegalTransition_AllowsTheStateMachinesChangesOnly(t *testing.T) {
	t.Parallel()
	c, o, h := breaker.Closed, breaker.Open, breaker.HalfOpen
	for _, tc := range []struct {
		from, to breaker.State
		forced   bool
		rule     string
		legal    bool
	}{
		{c, o, false, "failure_rate", true},
		{c, o, false, "", false}, // a trip names its rule
		{o, h, false, "", true},
		{h, c, false, "", true},
		{h, o, false, "", true},
		{h, o, false, "consecutive_failures", false}, // a failed probe is no trip
		{c, h, false, "", false},
		{o, c, false, "", false},
		{h, h, false, "", false},
		{c, c, false, "", false},
		{c, o, true, "", true},
		{o, o, true, "", true},
		{h, o, true, "", true},
		{o, c, true, "", true},
		{h, c, true, "", true},
		{c, c, true, "", false}, // a Reset of a closed breaker reports nothing
		{o, h, true, "", false},
		{c, o, true, "custom", false},
	} {
		change := breaker.StateChange{From: tc.from, To: tc.to, Forced: tc.forced, TripRule: tc.rule}
		assert.Equal(t, tc.legal, legalTransition(change), "%+v", change)
	}
}

// The committed corpus holds every seed of fuzzRulesSeeds, so that a fuzz
// run starts from them and TestFuzzSeedsCoverEveryOperation sees them.
func TestFuzzRulesSeedsAreCommitted(t *testing.T) {
	t.Parallel()
	for _, seed := range fuzzRulesSeeds {
		data, err := os.ReadFile(filepath.Join("testdata/fuzz/FuzzBreakerStateMachine", seed.name))
		require.NoError(t, err, "commit the seed %s", seed.name)
		assert.Equal(t, "go test fuzz v1\n[]byte("+strconv.Quote(string(seed.program))+")\n", string(data), seed.name)
	}
}

// fuzzTimeHorizon is the longest open timeout FuzzBreakerConfig lets pass
// on the bubble's clock (see modelHorizon); a longer one is only checked to
// hold the breaker open that long.
const fuzzTimeHorizon = modelHorizon

// FuzzBreakerConfig feeds arbitrary settings to New: it either panics with a
// message naming every invalid setting, or returns a breaker that opens after
// exactly threshold consecutive failures and whose open timer makes it
// half-open after exactly the open timeout, in a synctest bubble.
func FuzzBreakerConfig(f *testing.F) {
	f.Add("dep", 3, int64(30*time.Second), uint16(3))
	f.Add("dep", 1, int64(1), uint16(0))
	f.Add("", 0, int64(0), uint16(1))
	f.Add("db", -7, int64(-1), uint16(9))
	f.Add("db", 9, int64(1<<63-1), uint16(20))
	f.Fuzz(func(t *testing.T, name string, threshold int, openTimeout int64, failures uint16) {
		boundedSyncTest(t, bubbleBound, func(t *testing.T) { fuzzConfig(t, name, threshold, time.Duration(openTimeout), failures) })
	})
}

func fuzzConfig(t *testing.T, name string, threshold int, openTimeout time.Duration, failures uint16) {
	var want []string
	if name == "" {
		want = append(want, "name")
	}
	if threshold < 1 {
		want = append(want, "WithFailureThreshold")
	}
	if openTimeout <= 0 {
		want = append(want, "WithOpenTimeout")
	}
	var b *breaker.Breaker
	msg := fuzzPanicMessage(func() {
		b = breaker.New(name,
			breaker.WithFailureThreshold(threshold),
			breaker.WithOpenTimeout(openTimeout))
	})
	if len(want) > 0 {
		require.NotEmpty(t, msg, "New must refuse %v", want)
		for _, setting := range want {
			assert.Contains(t, msg, setting, "the panic must name %s", setting)
		}
		return
	}
	require.Empty(t, msg, "valid settings must not panic")
	require.Equal(t, name, b.Name())

	ctx := context.Background()
	boom := errors.New("boom")
	ran := 0
	for i := range int(failures) {
		err := b.Call(ctx, func(context.Context) error { ran++; return boom })
		if i < threshold {
			require.Same(t, boom, err, "failure %d of threshold %d runs the function", i+1, threshold)
		} else {
			require.ErrorIs(t, err, breaker.ErrOpen, "call %d after the breaker opened at %d", i+1, threshold)
		}
	}
	assert.Equal(t, min(int(failures), threshold), ran, "the function runs until the threshold is reached")
	if int(failures) < threshold {
		assert.Equal(t, breaker.Closed, b.State(), "%d failures below threshold %d", failures, threshold)
		return
	}
	require.Equal(t, breaker.Open, b.State(), "%d failures reach threshold %d", failures, threshold)
	var openErr *breaker.OpenError
	require.ErrorAs(t, b.Call(ctx, func(context.Context) error { return nil }), &openErr)
	assert.Equal(t, openTimeout, openErr.RetryAfter())
	if openTimeout > fuzzTimeHorizon {
		time.Sleep(fuzzTimeHorizon)
		synctest.Wait()
		assert.Equal(t, breaker.Open, b.State(), "%v into an open timeout of %v", fuzzTimeHorizon, openTimeout)
		return
	}
	time.Sleep(openTimeout - 1)
	synctest.Wait()
	assert.Equal(t, breaker.Open, b.State(), "one nanosecond before the open timeout")
	time.Sleep(1)
	synctest.Wait()
	assert.Equal(t, breaker.HalfOpen, b.State(), "at the open timeout, by the timer alone")
	require.NoError(t, b.Call(ctx, func(context.Context) error { return nil }))
	assert.Equal(t, breaker.Closed, b.State(), "after a successful probe")
}

// fuzzPanicMessage returns the message f panics with, or "" if it returns.
func fuzzPanicMessage(f func()) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg = fmt.Sprint(r)
			if msg == "" {
				msg = "(empty panic)"
			}
		}
	}()
	f()
	return ""
}

// TestFuzzSeedsCoverEveryOperation guards the committed corpus against
// growing stale: together with the f.Add seeds, it must use every opcode.
func TestFuzzSeedsCoverEveryOperation(t *testing.T) {
	t.Parallel()
	entries, err := readFuzzCorpus("FuzzBreakerStateMachine")
	require.NoError(t, err)
	require.NotEmpty(t, entries, "testdata/fuzz/FuzzBreakerStateMachine holds the committed seeds")
	seen := make(map[byte]bool)
	for _, program := range entries {
		if len(program) <= 3 {
			continue
		}
		ops := program[3:]
		for i := 0; i+1 < len(ops); i += 2 {
			seen[ops[i]%fzNumOps] = true
		}
	}
	for op := range byte(fzNumOps) {
		assert.True(t, seen[op], "no committed seed uses opcode %d", op)
	}
	configs, err := readFuzzCorpus("FuzzBreakerConfig")
	require.NoError(t, err)
	assert.NotEmpty(t, configs, "testdata/fuzz/FuzzBreakerConfig holds the committed seeds")
}

// readFuzzCorpus returns the []byte value of each corpus file of target
// (or just notes the file, for targets of other shapes).
func readFuzzCorpus(target string) ([][]byte, error) {
	dir := "testdata/fuzz/" + target
	files, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, file := range files {
		name := file.Name()
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) < 2 || lines[0] != "go test fuzz v1" {
			return nil, fmt.Errorf("%s/%s: not a go test fuzz v1 file", dir, name)
		}
		v := lines[1]
		if !strings.HasPrefix(v, "[]byte(") {
			out = append(out, nil)
			continue
		}
		s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(v, "[]byte("), ")"))
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", dir, name, err)
		}
		out = append(out, []byte(s))
	}
	return out, nil
}
