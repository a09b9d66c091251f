package hedge

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// isClosed reports whether ch is closed, without waiting.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

type ctxKey struct{}

func TestInBubble(t *testing.T) {
	assert.False(t, inBubble(time.Now()), "outside a bubble, time.Now carries a monotonic reading")
	synctest.Test(t, func(t *testing.T) {
		assert.True(t, inBubble(time.Now()), "in a bubble, time.Now carries no monotonic reading: the pool's guard rests on it")
		time.Sleep(time.Hour)
		assert.True(t, inBubble(time.Now()))
	})
}

func TestAttemptCtx_CancelEndsIt(t *testing.T) {
	parent := context.WithValue(context.Background(), ctxKey{}, "v")
	deadline := time.Now().Add(time.Hour)
	parent, stop := context.WithDeadline(parent, deadline)
	defer stop()
	c := newAttemptCtx(parent)
	assert.NoError(t, c.Err())
	assert.Equal(t, "v", c.Value(ctxKey{}), "the caller's values")
	d, ok := c.Deadline()
	assert.True(t, ok)
	assert.Equal(t, deadline, d, "the caller's deadline")
	done := c.Done()
	assert.False(t, isClosed(done))
	assert.True(t, done == c.Done(), "one channel")

	c.cancel()
	assert.True(t, isClosed(done), "Done is closed once cancel returns")
	assert.ErrorIs(t, c.Err(), context.Canceled)
	assert.ErrorIs(t, context.Cause(c), context.Canceled)
	assert.NoError(t, parent.Err(), "the caller's context goes on")
	c.cancel() // twice is harmless
	assert.ErrorIs(t, c.Err(), context.Canceled)
}

// An attempt that never asked for Done is cancelled without one.
func TestAttemptCtx_CancelledBeforeAnyDone(t *testing.T) {
	parent, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	c := newAttemptCtx(parent)
	c.cancel()
	assert.ErrorIs(t, c.Err(), context.Canceled)
	assert.ErrorIs(t, context.Cause(c), context.Canceled, "the attempt's end, not the caller's nil cause")
	assert.True(t, isClosed(c.Done()), "a Done asked for after the end is closed")
	d, stop := context.WithCancel(c)
	defer stop()
	assert.True(t, isClosed(d.Done()), "a context derived after the end is ended")
	cancel(errors.New("later"))
	assert.ErrorIs(t, c.Err(), context.Canceled, "the first end wins")
}

func TestAttemptCtx_TheCallersEndEndsIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		parent, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c := newAttemptCtx(parent)
		done := c.Done()
		time.Sleep(time.Second)
		synctest.Wait()
		assert.True(t, isClosed(done), "the caller's deadline ends the attempts' context")
		assert.ErrorIs(t, c.Err(), context.DeadlineExceeded, "with the caller's error")
		c.cancel()
		assert.ErrorIs(t, c.Err(), context.DeadlineExceeded, "the first end wins")
	})
}

func TestAttemptCtx_ErrSeesTheCallersEndAtOnce(t *testing.T) {
	cause := errors.New("the caller left")
	parent, cancel := context.WithCancelCause(context.Background())
	c := newAttemptCtx(parent)
	cancel(cause)
	// Nobody asked for Done: the context was not told. Err looks, and
	// ends it, so that Done agrees with Err.
	assert.ErrorIs(t, c.Err(), context.Canceled)
	assert.True(t, isClosed(c.Done()), "once Err says so, Done is closed")
	assert.ErrorIs(t, context.Cause(c), cause, "the caller's cause shows through")
}

func TestAttemptCtx_CancelAfterTheCallerEndedKeepsItsError(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	c := newAttemptCtx(parent)
	cancel()
	c.cancel()
	assert.ErrorIs(t, c.Err(), context.Canceled)
	p2, stop := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer stop()
	c2 := newAttemptCtx(p2)
	c2.cancel()
	assert.ErrorIs(t, c2.Err(), context.DeadlineExceeded, "the caller's context had ended first: its error")
}

// Contexts derived from an attempt's (a Timeout inside the hedge, an HTTP
// request) are ended with it, by package context's own *cancelCtx: no
// goroutine waits for each.
func TestAttemptCtx_DerivedContextsStartNoGoroutine(t *testing.T) {
	parent, cancelParent := context.WithCancel(context.Background())
	defer cancelParent()
	c := newAttemptCtx(parent)
	var derived []context.Context
	var cancels []context.CancelFunc
	for range 50 {
		d, cancel := context.WithTimeout(c, time.Hour)
		derived = append(derived, d)
		cancels = append(cancels, cancel)
	}
	// Counted by what they run, not by runtime.NumGoroutine, which counts
	// too the goroutines of earlier tests still on their way out.
	assert.Zero(t, goroutinesIn("context.(*cancelCtx).propagateCancel"), "50 derived contexts, no goroutine waits for the attempts' context")
	cancels[7]() // one ends on its own
	assert.NoError(t, c.Err(), "ending a derived context does not end the attempts'")

	c.cancel()
	for i, d := range derived {
		assert.True(t, isClosed(d.Done()), "derived context %d is ended when cancel returns", i)
		assert.ErrorIs(t, d.Err(), context.Canceled)
	}
	for _, cancel := range cancels {
		cancel()
	}
}

func TestAttemptCtx_TheCallersEndReachesDerivedContexts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		parent, cancel := context.WithCancel(context.Background())
		c := newAttemptCtx(parent)
		d, stop := context.WithCancel(c)
		defer stop()
		cancel()
		synctest.Wait()
		assert.True(t, isClosed(d.Done()), "the caller's end reaches through the attempt's context")
	})
}

func TestAttemptCtx_AfterFunc(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newAttemptCtx(context.Background())
		ran := make(chan string, 3)
		stopA := context.AfterFunc(c, func() { ran <- "a" })
		stopB := context.AfterFunc(c, func() { ran <- "b" })
		assert.True(t, stopB(), "stopped before the end")
		assert.False(t, stopB(), "stopped once")
		c.cancel()
		synctest.Wait()
		assert.Equal(t, "a", <-ran)
		assert.Empty(t, ran, "a stopped function does not run")
		assert.False(t, stopA(), "too late to stop what ran")

		// Registered after the end: runs at once.
		context.AfterFunc(c, func() { ran <- "late" })
		synctest.Wait()
		assert.Equal(t, "late", <-ran)
	})
}

func TestAttemptCtx_String(t *testing.T) {
	assert.Equal(t, "context.Background.WithHedge", newAttemptCtx(context.Background()).String())
	var named struct{ context.Context }
	named.Context = context.Background()
	assert.Equal(t, "struct { context.Context }.WithHedge", newAttemptCtx(named).String())
}

// Every method at once from many goroutines, while the caller's context
// and the hedge both end it: the race detector watches, and every waiter
// sees the end.
func TestAttemptCtx_Concurrent(t *testing.T) {
	for round := range 50 {
		parent, cancelParent := context.WithCancel(context.Background())
		c := newAttemptCtx(parent)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 16 {
			wg.Go(func() {
				<-start
				switch i % 4 {
				case 0:
					select {
					case <-c.Done():
					case <-time.After(10 * time.Second):
						t.Errorf("round %d: Done not closed within 10 s of the end", round)
					}
				case 1:
					d, cancel := context.WithCancel(c)
					defer cancel()
					select {
					case <-d.Done():
					case <-time.After(10 * time.Second):
						t.Errorf("round %d: a derived context not ended within 10 s", round)
					}
				case 2:
					_ = c.Err()
				case 3:
					stop := context.AfterFunc(c, func() {})
					stop()
				}
			})
		}
		close(start)
		if round%2 == 0 {
			cancelParent()
			c.cancel()
		} else {
			c.cancel()
			cancelParent()
		}
		wg.Wait()
		require.Error(t, c.Err())
	}
}

// hookCtx is a caller's context of its own kind whose Err can be held
// part-way, to make an interleaving happen on purpose.
type hookCtx struct {
	context.Context // for Deadline and Value
	done            chan struct{}
	err             atomic.Value // error
	holdErr         func()       // run by Err before it reads err, if set
	holdDone        func()       // run by Done, if set
}

func newHookCtx() *hookCtx {
	return &hookCtx{Context: context.Background(), done: make(chan struct{})}
}

func (h *hookCtx) Done() <-chan struct{} {
	if h.holdDone != nil {
		h.holdDone()
	}
	return h.done
}

func (h *hookCtx) Err() error {
	if h.holdErr != nil {
		h.holdErr()
	}
	err, _ := h.err.Load().(error)
	return err
}

func (h *hookCtx) end(err error) {
	h.err.Store(err)
	close(h.done)
}

// holdFirstErr makes the first Err of h wait, once it has begun, until
// release is closed; entered is closed when it has begun.
func holdFirstErr(h *hookCtx) (entered, release chan struct{}) {
	return holdFirst(&h.holdErr)
}

// holdFirst sets *hook to one that makes its first run wait until release
// is closed; entered is closed when that run has begun.
func holdFirst(hook *func()) (entered, release chan struct{}) {
	entered, release = make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	*hook = func() {
		if first.CompareAndSwap(false, true) {
			close(entered)
			<-release
		}
	}
	return entered, release
}

// An Err that has looked at the attempts' context and found it running
// must not return the caller's error if the hedge ended the context
// meanwhile, and the caller's context only then: every later Err says
// context.Canceled, the first end's, and an error once returned is the
// context's error for good.
func TestAttemptCtx_ErrRacingTheEndsGivesTheFirstEnd(t *testing.T) {
	for _, lazy := range []bool{false, true} {
		parent := newHookCtx()
		c := newAttemptCtx(parent)
		entered, release := holdFirstErr(parent)
		got := make(chan error, 1)
		go func() { got <- c.Err() }()
		select {
		case <-entered:
		case <-time.After(10 * time.Second):
			t.Fatal("Err did not ask the caller's context within 10 s")
		}
		if lazy {
			c.Done()
		}
		c.cancel()                           // the hedge ends it first...
		parent.end(context.DeadlineExceeded) // ... then the caller's context ends
		close(release)
		var first error
		select {
		case first = <-got:
		case <-time.After(10 * time.Second):
			t.Fatal("Err did not return within 10 s")
		}
		assert.ErrorIs(t, c.Err(), context.Canceled, "lazy %v: the hedge's end came first", lazy)
		assert.Equal(t, c.Err(), first, "lazy %v: Err changed its mind", lazy)
	}
}

// The cause of a context the hedge ended is its end, context.Canceled, and
// stays so when the caller's context ends later with a cause of its own:
// the first cancellation sets the cause.
func TestAttemptCtx_TheFirstEndSetsTheCause(t *testing.T) {
	later := errors.New("the caller left later")
	for _, lazy := range []bool{false, true} {
		parent, cancel := context.WithCancelCause(context.Background())
		c := newAttemptCtx(parent)
		if lazy {
			c.Done()
		}
		c.cancel()
		assert.ErrorIs(t, context.Cause(c), context.Canceled, "lazy %v", lazy)
		cancel(later)
		assert.ErrorIs(t, c.Err(), context.Canceled, "lazy %v", lazy)
		assert.ErrorIs(t, context.Cause(c), context.Canceled, "lazy %v: the hedge's end came first", lazy)
		assert.NotErrorIs(t, context.Cause(c), later, "lazy %v", lazy)
		d, stop := context.WithCancel(c)
		assert.ErrorIs(t, context.Cause(d), context.Canceled, "lazy %v: a context derived afterwards has the same cause", lazy)
		stop()
	}
}

// The caller's cause, when the caller's context ended first, shows through
// whether the hedge's cancel came before any Done or not.
func TestAttemptCtx_TheCallersCauseWhenItEndedFirst(t *testing.T) {
	cause := errors.New("the caller left")
	for _, lazy := range []bool{false, true} {
		parent, cancel := context.WithCancelCause(context.Background())
		c := newAttemptCtx(parent)
		if lazy {
			c.Done()
		}
		cancel(cause)
		c.cancel()
		assert.ErrorIs(t, c.Err(), context.Canceled, "lazy %v", lazy)
		assert.ErrorIs(t, context.Cause(c), cause, "lazy %v", lazy)
	}
}

// The probe found package context's own key: a *cancelCtx answers it with
// itself (if not, Cause may show a cause the caller's context ended with
// after the hedge's end).
func TestCancelCtxKeyIsPackageContexts(t *testing.T) {
	cc, cancel := context.WithCancel(context.Background())
	defer cancel()
	assert.Equal(t, any(cc), cc.Value(cancelCtxKey))
}

// Many goroutines watch one attempts' context while the hedge and the
// caller's context end it in either order: for every watcher, Err and
// context.Cause, once non-nil, never change, a closed Done comes with a
// non-nil Err and a non-nil Err with a closed Done, and at the end all
// watchers saw the same end.
func TestAttemptCtx_EveryWatcherSeesOneEnd(t *testing.T) {
	callerCause := errors.New("the caller left")
	for round := range 200 {
		parent, cancelParent := context.WithCancelCause(context.Background())
		c := newAttemptCtx(parent)
		start := make(chan struct{})
		type seen struct{ err, cause error }
		results := make(chan seen, 8)
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				<-start
				var first seen
				deadline := time.Now().Add(10 * time.Second)
				for after := 0; after < 50; {
					if time.Now().After(deadline) {
						t.Errorf("round %d: the context not ended within 10 s", round)
						return
					}
					if i%2 == 0 {
						c.Done() // half the watchers make it lazy early
					}
					closed := isClosed(c.Done())
					err, cause := c.Err(), context.Cause(c)
					if closed && err == nil {
						t.Errorf("round %d: Done closed, Err nil", round)
						return
					}
					if err != nil && !isClosed(c.Done()) {
						t.Errorf("round %d: Err %v, Done open", round, err)
						return
					}
					if err != nil {
						after++
					}
					if first.err == nil {
						first = seen{err, cause}
					} else if err != first.err || cause != first.cause {
						t.Errorf("round %d: Err, Cause went from %v, %v to %v, %v", round, first.err, first.cause, err, cause)
						return
					}
				}
				results <- seen{c.Err(), context.Cause(c)}
			})
		}
		close(start)
		if round%2 == 0 {
			c.cancel()
			cancelParent(callerCause)
		} else {
			cancelParent(callerCause)
			c.cancel()
		}
		wg.Wait()
		close(results)
		want := seen{context.Canceled, context.Canceled}
		if round%2 == 1 {
			want.cause = callerCause
		}
		for got := range results {
			if got != want {
				t.Errorf("round %d: a watcher ended with %v, %v; want %v, %v", round, got.err, got.cause, want.err, want.cause)
			}
		}
		if t.Failed() {
			return
		}
	}
}

// goroutinesIn counts the goroutines whose stack holds frame.
func goroutinesIn(frame string) int {
	buf := make([]byte, 1<<20)
	n := 0
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, frame) {
			n++
		}
	}
	return n
}

// waitForStack waits, at most 10 s, until some goroutine's stack holds
// every one of frames, and fails the test otherwise.
func waitForStack(t *testing.T, frames ...string) {
	t.Helper()
	buf := make([]byte, 1<<20)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			all := true
			for _, f := range frames {
				all = all && strings.Contains(g, f)
			}
			if all {
				return
			}
		}
		runtime.Gosched()
	}
	t.Fatalf("no goroutine reached %v within 10 s", frames)
}

// A cancel that found no Done made yet, and then waited for the lock while
// a Done made it, must cancel what that Done made: otherwise the channel
// Done gave never closes, Err stays nil, and the goroutine package context
// started for a caller's context of its own kind is never let go.
func TestAttemptCtx_ACancelWaitingOnADoneThatMakesTheContextEndsIt(t *testing.T) {
	parent := newHookCtx()
	defer parent.end(errors.New("the test is over")) // lets go of any goroutine left
	c := newAttemptCtx(parent)
	entered, release := holdFirst(&parent.holdDone)
	got := make(chan (<-chan struct{}), 1)
	go func() { got <- c.Done() }() // holds c.mu while WithCancel asks the caller's Done
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("Done did not ask the caller's context within 10 s")
	}
	cancelled := make(chan struct{})
	go func() {
		defer close(cancelled)
		c.cancel()
	}()
	waitForStack(t, "(*attemptCtx).cancel", "sync.(*Mutex).Lock") // past its first look, waiting for c.mu
	close(release)
	var done <-chan struct{}
	select {
	case done = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("Done did not return within 10 s")
	}
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("cancel did not return within 10 s")
	}
	assert.True(t, isClosed(done), "the channel Done gave is closed once cancel has returned")
	assert.ErrorIs(t, c.Err(), context.Canceled)
}
