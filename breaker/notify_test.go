package breaker_test

import (
	"bytes"
	"context"
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
	"github.com/levee-go/levee/internal/testkit"
	"github.com/levee-go/levee/telemetry"
	"github.com/levee-go/levee/telemetry/telemetrytest"
)

// Listener delivery (issue 9 point 7): changes reach the listeners on a
// goroutine of the breaker's that lives only while changes wait, one at a
// time and in order; no call delivers changes, not even its own, so a slow
// or blocked listener delays only the notifications after it. Most tests
// here run in a synctest bubble, where a call that waited for a sleeping
// listener would see the bubble's clock move: every call here must take no
// time at all.

// notifyRecorder records the changes a listener sees, with the bubble's time
// at which it saw each.
type notifyRecorder struct {
	mu      sync.Mutex
	changes []breaker.StateChange
	seenAt  []time.Time
}

func (r *notifyRecorder) record(c breaker.StateChange) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changes = append(r.changes, c)
	r.seenAt = append(r.seenAt, time.Now())
}

func (r *notifyRecorder) get() ([]breaker.StateChange, []time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]breaker.StateChange(nil), r.changes...), append([]time.Time(nil), r.seenAt...)
}

// notifyRequireChain requires changes to be the changes of one breaker in
// the order they were made: each one leaves the state the one before
// entered, starting from Closed, and none was made before the one before.
func notifyRequireChain(t *testing.T, changes []breaker.StateChange) {
	t.Helper()
	from := breaker.Closed
	var at time.Time
	for i, c := range changes {
		require.Equal(t, from, c.From, "change %d (%v -> %v) does not leave the state change %d entered: out of order, or one lost", i, c.From, c.To, i-1)
		require.False(t, c.At.Before(at), "change %d was made at %v, before change %d (%v)", i, c.At, i-1, at)
		from, at = c.To, c.At
	}
}

// notifyDeliveringGoroutines counts the goroutines of the process running a
// breaker's listener delivery.
func notifyDeliveringGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			count := 0
			for _, stack := range bytes.Split(buf[:n], []byte("\n\n")) {
				if bytes.Contains(stack, []byte("breaker.(*notifier).deliver(")) {
					count++
				}
			}
			return count
		}
		buf = make([]byte, 2*len(buf))
	}
}

// TestNotify_ASlowListenerSlowsNoCall: the scenario of issue 10 point 6. A
// listener takes 3ms per change and the open timeout is 1ms, so changes
// come faster than the listener returns. Every call, those that make a
// change included, takes no time at all on the bubble's clock: no caller
// delivers anyone's changes. The changes still all arrive, in order, once
// the listener catches up.
func TestNotify_ASlowListenerSlowsNoCall(t *testing.T) {
	t.Parallel()
	boundedSyncTest(t, bubbleBound, func(t *testing.T) {
		var rec notifyRecorder
		b := breaker.New("slow-listener", breaker.WithFailureThreshold(1), breaker.WithOpenTimeout(time.Millisecond),
			breaker.WithStateChangeListener(func(c breaker.StateChange) {
				time.Sleep(3 * time.Millisecond)
				rec.record(c)
			}))
		rng := rand.New(rand.NewPCG(9, 6))
		ctx := context.Background()
		var slowest time.Duration
		calls := 0
		for range 300 {
			fail := rng.IntN(2) == 0
			start := time.Now()
			_ = b.Call(ctx, func(context.Context) error {
				if fail {
					return telErrDown
				}
				return nil
			})
			calls++
			slowest = max(slowest, time.Since(start))
			time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond / 2)
		}
		assert.Zero(t, slowest, "the slowest of %d calls took %v of the bubble's time: a call waited for the listener", calls, slowest)

		made := b.Counts()
		time.Sleep(time.Hour) // the listener catches up
		synctest.Wait()
		changes, _ := rec.get()
		require.Greater(t, len(changes), 100, "the breaker kept changing: %+v", made)
		notifyRequireChain(t, changes)
		assert.Equal(t, b.State(), changes[len(changes)-1].To, "the last change delivered is the state now")
	})
}

// TestNotify_ASlowListenerDelaysOnlyLaterChanges: a listener that takes
// 10ms per change sees three changes made at once 10ms apart, each when it
// has finished with the one before; a change made once it is idle again
// reaches it at once. StateChange.At stays the time the change was made.
func TestNotify_ASlowListenerDelaysOnlyLaterChanges(t *testing.T) {
	t.Parallel()
	boundedSyncTest(t, bubbleBound, func(t *testing.T) {
		const slow = 10 * time.Millisecond
		var rec notifyRecorder
		b := breaker.New("slow-listener", breaker.WithStateChangeListener(func(c breaker.StateChange) {
			rec.record(c)
			time.Sleep(slow)
		}))
		ctx := context.Background()
		t0 := time.Now()
		b.ForceOpen(ctx)
		b.Reset(ctx)
		b.ForceOpen(ctx)
		time.Sleep(100 * time.Millisecond)
		t1 := time.Now()
		b.Reset(ctx)
		time.Sleep(slow) // the listener returns from the last change
		synctest.Wait()

		changes, seenAt := rec.get()
		require.Len(t, changes, 4)
		notifyRequireChain(t, changes)
		for i, want := range []time.Time{t0, t0.Add(slow), t0.Add(2 * slow), t1} {
			assert.True(t, want.Equal(seenAt[i]), "change %d reached the listener at +%v, want +%v", i, seenAt[i].Sub(t0), want.Sub(t0))
		}
		for i, want := range []time.Time{t0, t0, t0, t1} {
			assert.True(t, want.Equal(changes[i].At), "change %d: At = +%v, want the time it was made, +%v", i, changes[i].At.Sub(t0), want.Sub(t0))
		}
	})
}

// TestNotify_ChangesArriveOneAtATimeAndInOrder drives one breaker from 48
// goroutines at once (calls that fail and succeed, ForceOpen and Reset, with
// a 1ms open timeout so that the timer makes changes too). Two listeners
// never run at once, for the same change or for two; both see the same
// changes, in the order they were made; and they see every change the
// breaker counted in levee.circuit_breaker.transitions.
func TestNotify_ChangesArriveOneAtATimeAndInOrder(t *testing.T) {
	t.Parallel()
	boundedSyncTest(t, bubbleBound, func(t *testing.T) {
		h := telemetrytest.New(t)
		var running, overlaps atomic.Int64
		var first, second notifyRecorder
		listener := func(rec *notifyRecorder) breaker.Option {
			return breaker.WithStateChangeListener(func(c breaker.StateChange) {
				if running.Add(1) != 1 {
					overlaps.Add(1)
				}
				runtime.Gosched() // widen the window for another delivery to slip in
				rec.record(c)
				running.Add(-1)
			})
		}
		b := telBreaker(t, h, "concurrent", breaker.WithFailureThreshold(2), breaker.WithOpenTimeout(time.Millisecond),
			listener(&first), listener(&second))

		const workers, ops = 48, 8 // at most 2 changes an op: well under the 1024 the queue holds
		var wg sync.WaitGroup
		for w := range workers {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			wg.Go(func() {
				ctx := context.Background()
				for range ops {
					switch rng.IntN(6) {
					case 0:
						b.ForceOpen(ctx)
					case 1:
						b.Reset(ctx)
					case 2, 3:
						_ = b.Call(ctx, telFail)
					default:
						_ = b.Call(ctx, telSucceed)
					}
					time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond / 2)
				}
			})
		}
		wg.Wait()
		synctest.Wait()

		assert.Zero(t, overlaps.Load(), "listeners ran at the same time")
		changes, _ := first.get()
		secondChanges, _ := second.get()
		require.NotEmpty(t, changes)
		notifyRequireChain(t, changes)
		assert.Equal(t, changes, secondChanges, "both listeners see the same changes in the same order")
		h.AssertInt64(telemetry.MetricBreakerTransitions, int64(len(changes)))
		assert.Equal(t, b.State(), changes[len(changes)-1].To, "the last change delivered is the state now")
		t.Logf("%d changes delivered", len(changes))
	})
}

// TestNotify_NoGoroutineWhileIdle: before any change, and once the changes
// are delivered, no goroutine of the breaker runs; while a listener blocks,
// exactly one does, however many changes wait behind it. Not parallel: it
// counts the delivery goroutines of the whole process.
func TestNotify_NoGoroutineWhileIdle(t *testing.T) {
	boundedSyncTest(t, bubbleBound, func(t *testing.T) {
		release := make(chan struct{})
		var calls atomic.Int64
		b := breaker.New("idle", breaker.WithFailureThreshold(1), breaker.WithStateChangeListener(func(breaker.StateChange) {
			if calls.Add(1) == 1 {
				<-release
			}
		}))
		ctx := context.Background()
		require.Zero(t, notifyDeliveringGoroutines(), "a new breaker runs no goroutine")

		_ = b.Call(ctx, telFail)
		for range 10 {
			b.Reset(ctx)
			b.ForceOpen(ctx)
		}
		synctest.Wait()
		assert.Equal(t, 1, notifyDeliveringGoroutines(), "one delivery goroutine while the listener blocks, with 20 changes queued")

		close(release)
		synctest.Wait()
		assert.Equal(t, int64(21), calls.Load(), "every change delivered")
		assert.Zero(t, notifyDeliveringGoroutines(), "no goroutine left once the changes are delivered")

		b.Reset(ctx)
		synctest.Wait()
		assert.Equal(t, int64(22), calls.Load())
		assert.Zero(t, notifyDeliveringGoroutines(), "none after a later change either")
	})
}

// TestNotify_PanickingListenerIsReportedAndDeliveryGoesOn: a listener that
// panics on some changes is recovered; each panic reaches otel.Handle naming
// the breaker and the change; the listener after it, and later changes, are
// delivered as if nothing happened. Not parallel: it captures otel.Handle.
func TestNotify_PanickingListenerIsReportedAndDeliveryGoesOn(t *testing.T) {
	reported := testkit.CaptureOTelErrors(t)
	boundedSyncTest(t, bubbleBound, func(t *testing.T) {
		var panicky, after notifyRecorder
		b := breaker.New("panicking-listener",
			breaker.WithStateChangeListener(func(c breaker.StateChange) {
				panicky.record(c)
				if c.To == breaker.Open {
					panic("listener bug")
				}
			}),
			breaker.WithStateChangeListener(after.record))
		ctx := context.Background()
		for range 3 {
			b.ForceOpen(ctx)
			b.Reset(ctx)
		}
		synctest.Wait()

		changes, _ := panicky.get()
		afterChanges, _ := after.get()
		require.Len(t, changes, 6, "the panicking listener got every change, the ones after its panics included")
		assert.Equal(t, changes, afterChanges, "the listener after it too")
		notifyRequireChain(t, changes)
		panics := reportsContaining(reported.Take(), "listener bug", `"panicking-listener"`, "closed -> open")
		assert.Len(t, panics, 3, "each panic reached otel.Handle, naming the breaker and the change")
		assert.Zero(t, notifyDeliveringGoroutines(), "no goroutine left")
	})
}

// TestNotify_ListenerCallingGoexitDoesNotStopLaterDeliveries: a listener
// that ends its goroutine (runtime.Goexit, as t.FailNow does) on the first
// change misses nothing later: that change's later listeners are skipped,
// as documented, and every later change reaches every listener, in order,
// on a goroutine that then ends too.
func TestNotify_ListenerCallingGoexitDoesNotStopLaterDeliveries(t *testing.T) {
	t.Parallel()
	boundedSyncTest(t, bubbleBound, func(t *testing.T) {
		var exiting, after notifyRecorder
		var exited atomic.Bool
		b := breaker.New("goexit-listener",
			breaker.WithStateChangeListener(func(c breaker.StateChange) {
				exiting.record(c)
				if exited.CompareAndSwap(false, true) {
					runtime.Goexit()
				}
			}),
			breaker.WithStateChangeListener(after.record))
		ctx := context.Background()
		b.ForceOpen(ctx) // delivered to the first listener, which exits
		b.Reset(ctx)     // queued behind it
		synctest.Wait()
		b.ForceOpen(ctx) // made once the delivery goroutine is gone
		synctest.Wait()

		changes, _ := exiting.get()
		require.Len(t, changes, 3, "the exiting listener gets every change")
		notifyRequireChain(t, changes)
		afterChanges, _ := after.get()
		assert.Equal(t, changes[1:], afterChanges, "the listener after it misses only the change the Goexit ended")
	})
}

// TestNotify_QueueBeyond1024IsDroppedAndReported: while a listener blocks,
// at most 1024 changes wait behind the one it is on; the changes made past
// that are dropped (the breaker, its telemetry and its calls go on), and the
// drops are reported to otel.Handle (the first, then every 1024th). Once the
// listener returns it gets the changes that were queued, in order. Not
// parallel: it captures otel.Handle.
func TestNotify_QueueBeyond1024IsDroppedAndReported(t *testing.T) {
	reported := testkit.CaptureOTelErrors(t)
	boundedSyncTest(t, bubbleBound, func(t *testing.T) {
		const queueCap = 1024
		h := telemetrytest.New(t)
		release := make(chan struct{})
		var rec notifyRecorder
		var once sync.Once
		b := telBreaker(t, h, "flooded", breaker.WithStateChangeListener(func(c breaker.StateChange) {
			rec.record(c)
			once.Do(func() { <-release })
		}))
		ctx := context.Background()
		b.ForceOpen(ctx)
		synctest.Wait() // the delivery goroutine holds the first change, blocked in the listener
		const made = 1 + queueCap + 2*queueCap
		for i := 1; i < made; i++ {
			if i%2 == 1 {
				b.Reset(ctx)
			} else {
				b.ForceOpen(ctx)
			}
		}
		require.Equal(t, breaker.Open, b.State(), "the breaker went on changing")
		h.AssertInt64(telemetry.MetricBreakerTransitions, made) // telemetry drops nothing

		drops := reportsContaining(reported.Take(), `"flooded"`, "dropped")
		require.Len(t, drops, 3, "the first drop, the 1024th and the 2048th are reported: %v", drops)
		assert.Contains(t, drops[0], " 1 state changes dropped")
		assert.Contains(t, drops[1], " 1024 state changes dropped")
		assert.Contains(t, drops[2], " 2048 state changes dropped")

		close(release)
		synctest.Wait()
		changes, _ := rec.get()
		require.Len(t, changes, 1+queueCap, "the change the listener held, and the 1024 queued behind it")
		notifyRequireChain(t, changes)
		assert.Zero(t, notifyDeliveringGoroutines(), "no goroutine left")

		b.Reset(ctx)
		synctest.Wait()
		changes, _ = rec.get()
		assert.Len(t, changes, 2+queueCap, "a change made once the queue has drained is delivered")
	})
}
