package breaker_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/internal/fakeclock"
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
// many closed -> open -> half-open -> closed cycles of one breaker.
//
// It uses the fake clock, moved by a driver goroutine, rather than real
// millisecond timeouts: the test must know which admitted calls are probes
// to assert that they never overlap, and with the clock in its hands the
// driver decides when a cycle's phases begin and end, so no call admitted
// while closed can still be running when the breaker half-opens. Each round:
//
//  1. closed phase: every worker makes a few calls that succeed, fail,
//     are canceled or panic; the breaker opens along the way (the clock
//     stands still, so it stays open). The round waits for all of them.
//  2. probe phase: every worker calls in a loop while the driver keeps
//     moving the clock past the open timeout. While the phase lasts no probe
//     succeeds (they fail, panic or are canceled), so the breaker never
//     closes and every call the breaker runs is a probe: each increments an
//     in-flight counter and requires it to be 1. The round's last probe
//     succeeds and closes the breaker; it marks the phase over first, so the
//     calls admitted after it (closed now) know they are not probes.
//
// Every call is tallied by the worker that made it; the breaker's Counts
// must equal the tallies exactly.
func TestStress_ProbesNeverOverlapAndNoCallIsLost(t *testing.T) {
	rounds := *stressRounds
	const (
		threshold       = 5
		openTimeout     = time.Second
		closedCalls     = 6
		probesPerRound  = 8
		overlapsToPrint = 5
	)
	clock := fakeclock.New()
	var transitions [3][3]atomic.Int64
	b := breaker.New("stress",
		breaker.WithFailureThreshold(threshold),
		breaker.WithOpenTimeout(openTimeout),
		breaker.WithClock(clock.Now),
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
	bound := 20*time.Second + time.Duration(rounds)*time.Second

	withinBound(t, bound, func(ctx context.Context) {
		var driverTally stressTally
		for round := 0; round < rounds && ctx.Err() == nil; round++ {
			// 1. Closed phase.
			if !assert.Equal(t, breaker.Closed, b.State(), "round %d starts closed", round) {
				return
			}
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
			if !assert.Equal(t, breaker.Open, b.State(), "round %d: open after the closed phase", round) {
				return
			}

			// 2. Probe phase.
			phaseOver.Store(false)
			for w := range stressWorkers {
				wg.Go(func() {
					for !phaseOver.Load() && ctx.Err() == nil {
						stressCall(t, b, intent(rngs[w], true), &tallies[w], probe)
						runtime.Gosched()
					}
				})
			}
			for !phaseOver.Load() && ctx.Err() == nil {
				clock.Advance(openTimeout)
				runtime.Gosched()
			}
			wg.Wait()
			if !assert.Equal(t, breaker.Closed, b.State(), "round %d: the closing probe closed it", round) {
				return
			}
		}
		total.add(driverTally)
	})

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
	assert.GreaterOrEqual(t, transitions[breaker.Closed][breaker.Open].Load(), int64(rounds), "closed -> open at least once per round")
	assert.GreaterOrEqual(t, transitions[breaker.HalfOpen][breaker.Open].Load(), int64(rounds), "failed probes reopen")
	t.Logf("%d rounds, %d calls: %+v; transitions closed->open %d, open->half-open %d, half-open->open %d, half-open->closed %d",
		rounds, total.calls, c,
		transitions[breaker.Closed][breaker.Open].Load(), transitions[breaker.Open][breaker.HalfOpen].Load(),
		transitions[breaker.HalfOpen][breaker.Open].Load(), transitions[breaker.HalfOpen][breaker.Closed].Load())
}

// TestStress_RealClockProbesNeverOverlap does the same with the real clock
// and a 1ms open timeout, so the half-open transitions are made by the
// breaker's own timer, racing the 256 callers. Every probe fails or is
// canceled, so the breaker never closes after the first opening and every
// call it runs is a probe.
func TestStress_RealClockProbesNeverOverlap(t *testing.T) {
	probesWanted := int64(4 * *stressRounds)
	b := breaker.New("stress-real-clock", breaker.WithFailureThreshold(1), breaker.WithOpenTimeout(time.Millisecond))
	var opening stressTally
	stressCall(t, b, stressFail, &opening, nil)
	require.Equal(t, breaker.Open, b.State())

	var probesInFlight, overlaps, probes atomic.Int64
	probe := func(context.Context) bool {
		if n := probesInFlight.Add(1); n != 1 && overlaps.Add(1) <= 5 {
			t.Errorf("%d probes in flight at once in half-open", n)
		}
		runtime.Gosched()
		probes.Add(1)
		probesInFlight.Add(-1)
		return false
	}
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
					stressCall(t, b, intent, &tallies[w], probe)
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
	assert.Zero(t, overlaps.Load(), "probes in flight at the same time")
	assert.Equal(t, total.counts(), b.Counts(), "Counts must equal the calls the workers made, by outcome")
	assert.GreaterOrEqual(t, probes.Load(), probesWanted)
	assert.NotEqual(t, breaker.Closed, b.State(), "no probe succeeded")
	t.Log(fmt.Sprintf("%d calls, %d probes: %+v", total.calls, probes.Load(), b.Counts()))
	b.ForceOpen(context.Background()) // stops the pending timer
}
