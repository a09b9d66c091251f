package breaker_test

import (
	"context"
	"errors"
	"flag"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/breaker"
)

// The stress tests drive one breaker from hundreds of goroutines at once and
// check three things the state machine promises under any interleaving:
// never two probes in flight in half-open, no call lost from the counts, and
// no deadlock. Scale them up with
//
//	go test -race ./breaker -run Stress -levee.stress.rounds=2000
var stressRounds = flag.Int("levee.stress.rounds", 12, "open/half-open/closed cycles each breaker stress test drives (scale up for a long campaign)")

const stressWorkers = 256

// stressTally is what one worker saw, by outcome. Workers keep their own
// and the test adds them up, so that counting adds no contention.
type stressTally struct{ calls, success, failure, rejected, ignored int64 }

func (s *stressTally) add(o stressTally) {
	s.calls += o.calls
	s.success += o.success
	s.failure += o.failure
	s.rejected += o.rejected
	s.ignored += o.ignored
}

func (s stressTally) counts() breaker.Counts {
	return breaker.Counts{Success: s.success, Failure: s.failure, Rejected: s.rejected, Ignored: s.ignored}
}

// stressIntent is how a worker's function ends when the breaker runs it.
type stressIntent uint8

const (
	stressSucceed stressIntent = iota
	stressFail
	stressCancel
	stressPanic
)

var errStress = errors.New("stress: dependency failed")

// stressCall makes one call that ends as intent says (or as decide says,
// when decide is not nil and returns true), and adds what it saw to tally:
// a rejection must not have run fn, a panic must come back unchanged.
func stressCall(t *testing.T, b *breaker.Breaker, intent stressIntent, tally *stressTally, body func(ctx context.Context) (override bool)) {
	ctx := context.Background()
	var cancel context.CancelFunc = func() {}
	if intent == stressCancel {
		ctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	ran := false
	ended := intent
	token := &intent // unique per call
	defer func() {
		r := recover()
		tally.calls++
		switch {
		case !ran:
			tally.rejected++
		case ended == stressPanic:
			tally.failure++
			if r != token {
				t.Errorf("panic value %v came back instead of the function's own %p", r, token)
			}
			return
		case ended == stressSucceed:
			tally.success++
		case ended == stressFail:
			tally.failure++
		case ended == stressCancel:
			tally.ignored++
		}
		if r != nil {
			t.Errorf("unexpected panic: %v", r)
		}
	}()
	err := b.Call(ctx, func(ctx context.Context) error {
		ran = true
		if body != nil && body(ctx) {
			ended = stressSucceed
			return nil
		}
		switch intent {
		case stressFail:
			return errStress
		case stressCancel:
			cancel()
			return ctx.Err()
		case stressPanic:
			panic(token)
		}
		return nil
	})
	if !ran && !errors.Is(err, breaker.ErrOpen) {
		t.Errorf("a call that did not run its function returned %v, not ErrOpen", err)
	}
}

// withinBound runs body in a goroutine of its own (so body reports with
// assert, not require) and fails the test, with every goroutine's stack,
// if it has not returned within bound: a deadlock is reported, not waited
// out. body gets a context that ends at the bound so that its loops stop.
func withinBound(t *testing.T, bound time.Duration, body func(ctx context.Context)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		body(ctx)
	}()
	select {
	case <-done:
	case <-time.After(bound + 5*time.Second):
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("no progress within %v: deadlock?\n%s", bound, buf)
	}
	require.NoError(t, ctx.Err(), "the run did not finish within %v", bound)
}

// TestStress_ProbesNeverOverlapAndNoCallIsLost drives 256 goroutines through
// many closed -> open -> half-open -> closed cycles of one breaker, in a
// synctest bubble: the goroutines run at once on every core, as anywhere
// else, but time passes only when they all wait, so the test knows which
// admitted calls are probes. The breaker's own open timer makes every
// half-open transition, racing the callers that wake at the same instant.
// Each round:
//
//  1. closed phase: every worker makes a few calls that succeed, fail,
//     are canceled or panic; the breaker opens along the way (no time
//     passes, so it stays open). The round waits for all of them.
//  2. probe phase: every worker calls in a loop, sleeping 0 to 3 quarters of
//     the open timeout after each call, so that many wake at the same
//     instant as the timer and as each other. While the phase lasts no
//     probe succeeds (they fail, panic or are canceled), so the breaker
//     never closes and every call the breaker runs is a probe: each
//     increments an in-flight counter and requires it to be 1. No time
//     passes while a probe runs, so none outlives the open timeout (which
//     would let another in). The round's last probe succeeds and closes the
//     breaker; it marks the phase over first, so the calls admitted after it
//     (closed now) know they are not probes.
//
// Every call is tallied by the worker that made it; the breaker's Counts
// must equal the tallies exactly, and the listener must have seen every
// transition.
func TestStress_ProbesNeverOverlapAndNoCallIsLost(t *testing.T) {
	boundedSyncTest(t, bubbleBound+time.Duration(*stressRounds)*time.Second, stressProbesNeverOverlap)
}

func stressProbesNeverOverlap(t *testing.T) {
	rounds := *stressRounds
	const (
		threshold       = 5
		openTimeout     = time.Second
		closedCalls     = 6
		probesPerRound  = 8
		overlapsToPrint = 5
	)
	var transitions [3][3]atomic.Int64
	b := breaker.New("stress",
		breaker.WithFailureThreshold(threshold),
		breaker.WithOpenTimeout(openTimeout),
		breaker.WithStateChangeListener(func(c breaker.StateChange) { transitions[c.From][c.To].Add(1) }))

	var (
		probesInFlight atomic.Int64
		overlaps       atomic.Int64
		probes         atomic.Int64
		phaseOver      atomic.Bool
	)
	probe := func(context.Context) bool {
		if phaseOver.Load() {
			return true // admitted after the round's closing probe: not a probe
		}
		if n := probesInFlight.Add(1); n != 1 && overlaps.Add(1) <= overlapsToPrint {
			t.Errorf("%d probes in flight at once in half-open", n)
		}
		defer probesInFlight.Add(-1)
		runtime.Gosched() // widen the window for another probe to slip in
		if probes.Add(1)%probesPerRound == 0 {
			phaseOver.Store(true) // before the breaker can close
			return true
		}
		return false
	}

	var total stressTally
	tallies := make([]stressTally, stressWorkers)
	rngs := make([]*rand.Rand, stressWorkers)
	for i := range rngs {
		rngs[i] = rand.New(rand.NewPCG(uint64(i), 0x1e7ee))
	}
	intent := func(rng *rand.Rand, probing bool) stressIntent {
		switch n := rng.IntN(10); {
		case n < 2:
			return stressCancel
		case n < 3:
			return stressPanic
		case n < 6 || probing:
			return stressFail
		}
		return stressSucceed
	}
	// A bound on the bubble's clock: a round that never ends (no probe
	// ever admitted) stops the loops rather than running forever.
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rounds)*10000*openTimeout)
	defer cancel()

	var driverTally stressTally
	for round := 0; round < rounds && ctx.Err() == nil; round++ {
		// 1. Closed phase.
		require.Equal(t, breaker.Closed, b.State(), "round %d starts closed", round)
		var wg sync.WaitGroup
		for w := range stressWorkers {
			wg.Go(func() {
				for range closedCalls {
					stressCall(t, b, intent(rngs[w], false), &tallies[w], nil)
				}
			})
		}
		wg.Wait()
		for b.State() == breaker.Closed {
			stressCall(t, b, stressFail, &driverTally, nil)
		}
		require.Equal(t, breaker.Open, b.State(), "round %d: open after the closed phase", round)

		// 2. Probe phase.
		phaseOver.Store(false)
		for w := range stressWorkers {
			wg.Go(func() {
				for !phaseOver.Load() && ctx.Err() == nil {
					stressCall(t, b, intent(rngs[w], true), &tallies[w], probe)
					time.Sleep(time.Duration(rngs[w].IntN(4)) * openTimeout / 4)
				}
			})
		}
		wg.Wait()
		require.NoError(t, ctx.Err(), "round %d did not end within %v of the bubble's time", round, time.Duration(rounds)*10000*openTimeout)
		require.Equal(t, breaker.Closed, b.State(), "round %d: the closing probe closed it", round)
	}
	total.add(driverTally)
	synctest.Wait() // the listener has seen every change

	for _, tally := range tallies {
		total.add(tally)
	}
	assert.Zero(t, overlaps.Load(), "probes in flight at the same time")
	assert.Equal(t, total.counts(), b.Counts(), "Counts must equal the calls the workers made, by outcome")
	assert.Equal(t, total.calls, total.success+total.failure+total.rejected+total.ignored)
	c := b.Counts()
	assert.Equal(t, total.calls, c.Success+c.Failure+c.Rejected+c.Ignored, "no call lost")
	assert.Equal(t, int64(rounds*probesPerRound), probes.Load(), "probes run")
	assert.Equal(t, int64(rounds), transitions[breaker.HalfOpen][breaker.Closed].Load(), "half-open -> closed once per round")
	assert.Equal(t, int64(rounds), transitions[breaker.Closed][breaker.Open].Load(), "closed -> open once per round")
	assert.Equal(t, transitions[breaker.Closed][breaker.Open].Load()+transitions[breaker.HalfOpen][breaker.Open].Load(),
		transitions[breaker.Open][breaker.HalfOpen].Load(), "the timer makes one open -> half-open per open period")
	assert.GreaterOrEqual(t, transitions[breaker.HalfOpen][breaker.Open].Load(), int64(rounds), "failed probes reopen")
	t.Logf("%d rounds, %d calls: %+v; transitions closed->open %d, open->half-open %d, half-open->open %d, half-open->closed %d",
		rounds, total.calls, c,
		transitions[breaker.Closed][breaker.Open].Load(), transitions[breaker.Open][breaker.HalfOpen].Load(),
		transitions[breaker.HalfOpen][breaker.Open].Load(), transitions[breaker.HalfOpen][breaker.Closed].Load())
}

// TestStress_RealClockProbesOverlapOnlyWhenOneOutlivesTheOpenTimeout runs
// outside a bubble, on the real clock, with a 1ms open timeout, so the
// half-open transitions are made by the breaker's own timer racing the 256
// callers in real time. Every probe fails or is canceled, so the breaker
// never closes after the first opening and every call it runs is a probe.
//
// On a loaded machine a probe can be in flight for a millisecond; it then
// no longer holds the breaker, and a second probe is admitted while the
// first still runs, as the stale-probe rule says. So a second probe in
// flight is a fault only when the first cannot have held the breaker for an
// open timeout: when the second starts less than an open timeout after the
// first was handed to the breaker. The late probe's result is counted as
// ignored: the breaker's failures and ignored calls together equal the
// workers', and successes and rejections match exactly.
func TestStress_RealClockProbesOverlapOnlyWhenOneOutlivesTheOpenTimeout(t *testing.T) {
	const openTimeout = time.Millisecond
	probesWanted := int64(4 * *stressRounds)
	b := breaker.New("stress-real-clock", breaker.WithFailureThreshold(1), breaker.WithOpenTimeout(openTimeout))
	var opening stressTally
	stressCall(t, b, stressFail, &opening, nil)
	require.NotEqual(t, breaker.Closed, b.State(), "the failure opened it (its 1ms timer may have made it half-open already)")

	// A probe in flight is known by two times: called, taken before the
	// breaker admitted it, and entered, taken after. Two probes in flight
	// at once are allowed only if the later one can have been admitted an
	// open timeout or more after the earlier one; which one came first is
	// unknown, so the pair is a fault only when neither order allows it.
	type probeTimes struct{ called, entered time.Time }
	var (
		mu       sync.Mutex
		inFlight = map[*probeTimes]struct{}{}
		overlaps atomic.Int64 // overlaps the stale-probe rule does not explain
		stale    atomic.Int64 // overlaps it does
		probes   atomic.Int64
	)
	tallies := make([]stressTally, stressWorkers)
	bound := 20*time.Second + time.Duration(probesWanted)*50*time.Millisecond
	withinBound(t, bound, func(ctx context.Context) {
		var wg sync.WaitGroup
		for w := range stressWorkers {
			rng := rand.New(rand.NewPCG(uint64(w), 0xc10c))
			wg.Go(func() {
				for probes.Load() < probesWanted && ctx.Err() == nil {
					intent := stressFail
					switch rng.IntN(4) {
					case 0:
						intent = stressCancel
					case 1:
						intent = stressPanic
					}
					me := &probeTimes{called: time.Now()} // before the breaker admits the call
					stressCall(t, b, intent, &tallies[w], func(context.Context) bool {
						mu.Lock()
						me.entered = time.Now() // after it admitted the call
						for other := range inFlight {
							longest := max(me.entered.Sub(other.called), other.entered.Sub(me.called))
							if longest < openTimeout {
								if overlaps.Add(1) <= 5 {
									t.Errorf("two probes in flight at once, admitted at most %v apart: neither can have held the breaker for the open timeout (%v)",
										longest, openTimeout)
								}
							} else {
								stale.Add(1)
							}
						}
						inFlight[me] = struct{}{}
						mu.Unlock()
						runtime.Gosched()
						probes.Add(1)
						mu.Lock()
						delete(inFlight, me)
						mu.Unlock()
						return false
					})
					runtime.Gosched()
				}
			})
		}
		wg.Wait()
	})
	total := opening
	for _, tally := range tallies {
		total.add(tally)
	}
	c := b.Counts()
	assert.Zero(t, overlaps.Load(), "probes in flight at the same time within an open timeout")
	assert.Equal(t, total.success, c.Success, "successes")
	assert.Equal(t, total.rejected, c.Rejected, "rejections")
	assert.Equal(t, total.failure+total.ignored, c.Failure+c.Ignored, "failures and ignored calls (a late probe's failure is ignored)")
	assert.LessOrEqual(t, c.Failure, total.failure, "only late probes move from failure to ignored")
	assert.Equal(t, total.calls, c.Success+c.Failure+c.Rejected+c.Ignored, "no call lost")
	assert.GreaterOrEqual(t, probes.Load(), probesWanted)
	assert.NotEqual(t, breaker.Closed, b.State(), "no probe succeeded")
	t.Logf("%d calls, %d probes (%d overlapping a probe that had outlived the open timeout): %+v", total.calls, probes.Load(), stale.Load(), c)
	b.ForceOpen(context.Background()) // stops the pending timer
}

// TestStress_WindowsStayConsistentAcrossBoundariesAndTransitions drives 256
// goroutines through a breaker with every issue 12 setting at once (a
// window, a rate rule, slow calls, several probes, a growing open period),
// in a synctest bubble where the calls take time: many span a bucket's end
// or a transition (a trip, a close, a Reset). Whatever the interleaving, the
// window never holds more than it can (failures and slow calls no more than
// its calls, a count window no more than its size), no call is lost from the
// counts, the probes in flight never exceed the limit, and the listener sees
// a chain of transitions of the state machine.
func TestStress_WindowsStayConsistentAcrossBoundariesAndTransitions(t *testing.T) {
	windows := map[string]breaker.Option{
		"count": breaker.WithCountWindow(50),
		"time":  breaker.WithTimeWindow(100*time.Millisecond, 10),
	}
	for name, window := range windows {
		t.Run(name, func(t *testing.T) {
			boundedSyncTest(t, bubbleBound, func(t *testing.T) {
				stressWindows(t, window, name == "count")
			})
		})
	}
}

func stressWindows(t *testing.T, window breaker.Option, countWindow bool) {
	const (
		probes    = 3
		callsEach = 40
	)
	listen, changes := recordChanges()
	b := breaker.New("stress", window, listen,
		breaker.WithFailureRate(0.4), breaker.WithMinCalls(10),
		breaker.WithSlowCallDuration(20*time.Millisecond),
		breaker.WithOpenTimeout(30*time.Millisecond), breaker.WithHalfOpen(probes, 2),
		breaker.WithOpenBackoff(2, 200*time.Millisecond, 0.5), breaker.WithJitterSeed(1))
	var inFlight, mostInFlight, violations atomic.Int64
	check := func() {
		c := b.Window()
		if c.Failures > c.Calls || c.SlowCalls > c.Calls || c.Calls < 0 || countWindow && c.Calls > 50 {
			violations.Add(1)
			t.Errorf("window out of bounds: %+v", c)
		}
	}
	tallies := make([]stressTally, stressWorkers)
	var wg sync.WaitGroup
	for w := range stressWorkers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 0x91d0))
			for i := range callsEach {
				intent := stressSucceed
				switch n := rng.IntN(10); {
				case n < 3:
					intent = stressFail
				case n < 4:
					intent = stressCancel
				}
				took := time.Duration(rng.IntN(40)) * time.Millisecond
				stressCall(t, b, intent, &tallies[w], func(context.Context) bool {
					if b.State() == breaker.HalfOpen {
						n := inFlight.Add(1)
						defer inFlight.Add(-1)
						for m := mostInFlight.Load(); n > m && !mostInFlight.CompareAndSwap(m, n); m = mostInFlight.Load() {
						}
					}
					time.Sleep(took) // the call spans buckets and transitions
					return false
				})
				if i%8 == 0 {
					check()
				}
				if w == 0 && i%10 == 5 {
					b.Reset(context.Background())
				}
				time.Sleep(time.Duration(rng.IntN(10)) * time.Millisecond)
			}
		})
	}
	wg.Wait()
	check()

	var total stressTally
	for _, tally := range tallies {
		total.add(tally)
	}
	counts := b.Counts()
	assert.Equal(t, total.calls, counts.Success+counts.Failure+counts.Rejected+counts.Ignored, "every call counted once")
	assert.Equal(t, total.rejected, counts.Rejected)
	assert.Zero(t, violations.Load())
	// Not every call the function saw in HalfOpen is a probe (the state
	// may change under it), but no more than the places plus the calls
	// admitted just before a change can be: a wide bound still catches a
	// breaker that lets everyone through.
	assert.LessOrEqual(t, mostInFlight.Load(), int64(probes+stressWorkers/4))
	t.Logf("most calls in flight in half-open: %d; trips and changes: %d", mostInFlight.Load(), len(changes()))

	from := breaker.Closed
	trips := 0
	for i, c := range changes() {
		require.Equal(t, from, c.From, "change %d does not follow the one before", i)
		if c.From == breaker.Closed && c.To == breaker.Open {
			trips++
			assert.Equal(t, "failure_rate", c.TripRule, "change %d", i)
			assert.GreaterOrEqual(t, c.Window.Calls, int64(10), "change %d: the minimum calls", i)
			assert.GreaterOrEqual(t, float64(c.Window.Failures), 0.4*float64(c.Window.Calls), "change %d: the ratio", i)
		}
		if c.To == breaker.Open {
			assert.LessOrEqual(t, c.OpenFor, 200*time.Millisecond, "change %d: the cap", i)
			assert.GreaterOrEqual(t, c.OpenFor, 30*time.Millisecond, "change %d: at least the open timeout", i)
		}
		from = c.To
	}
	assert.Positive(t, trips, "the mix of failures tripped the breaker")
}
