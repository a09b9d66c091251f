package bench

import (
	"context"
	"sync"
	"testing"
	"time"
)

// BenchmarkHedgeCost prices, one at a time, the pieces a hedged call whose
// first attempt answers in time could be built from, for
// docs/performance.md ("The hedge goals, piece by piece"). Count them with
// bench/callgrind.sh '^BenchmarkHedgeCost$/^piece=NAME$'. Each op calls
// workFn (or doneFn, which looks at its context's Done channel as a
// function that honours its context does) once. The caller's context is
// cancellable, as in BenchmarkHedgeFirstFast.
func BenchmarkHedgeCost(b *testing.B) {
	parent, cancelParent := context.WithCancel(context.Background())
	defer cancelParent()
	fire := func() {}
	pieces := []struct {
		name string
		op   func()
	}{
		// The wake-up: a timer made, armed and stopped per call...
		{"afterfunc+stop", func() {
			t := time.AfterFunc(hedgeDelay, fire)
			sink, _ = workFn(parent)
			t.Stop()
		}},
		// ...or one timer reused from call to call, as levee's hedge does
		// outside testing/synctest bubbles (a timer made in a bubble must
		// not be stopped or reset outside it, nor a timer made outside one
		// reset inside one).
		{"reset+stop", reuseTimer(fire)},
		// The attempt's cancellable context: the standard library's...
		{"withcancel", func() {
			ctx, cancel := context.WithCancel(parent)
			sink, _ = workFn(ctx)
			cancel()
		}},
		{"withcancel+done", func() {
			ctx, cancel := context.WithCancel(parent)
			sink, _ = doneFn(ctx)
			cancel()
		}},
		// ...or a context of one's own (ownCtx, the first sketch of one),
		// which makes its Done channel and registers with the caller's
		// context (context.AfterFunc) only when the function asks for
		// Done. levee's hedge makes a context.WithCancel then instead
		// (hedge/ctx.go): BenchmarkHedgeFirstFastDone prices it.
		{"ownctx", func() {
			ctx := &ownCtx{Context: parent}
			sink, _ = workFn(ctx)
			ctx.cancel(context.Canceled)
		}},
		{"ownctx+done", func() {
			ctx := &ownCtx{Context: parent}
			sink, _ = doneFn(ctx)
			ctx.cancel(context.Canceled)
		}},
		// The call's state, kept in a pool as levee keeps it.
		{"pool", func() {
			s := costPool.Get().(*ownCtx)
			sink, _ = workFn(parent)
			costPool.Put(s)
		}},
	}
	for _, piece := range pieces {
		b.Run("piece="+piece.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				piece.op()
			}
		})
	}
}

var costPool = sync.Pool{New: func() any { return new(ownCtx) }}

// reuseTimer returns an op that resets and stops one timer.
func reuseTimer(fire func()) func() {
	t := time.AfterFunc(hedgeDelay, fire)
	t.Stop()
	return func() {
		t.Reset(hedgeDelay)
		sink, _ = workFn(context.Background())
		t.Stop()
	}
}

// doneFn answers at once, after checking its context as a function that
// honours it does.
//
//go:noinline
func doneFn(ctx context.Context) (int, error) {
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	default:
		return 1, nil
	}
}

// ownCtx sketches an attempt's context of the hedge's own, for
// BenchmarkHedgeCost only: one allocation, a Done channel made when asked
// for, and a registration with the parent (context.AfterFunc) made then
// too. It is not complete (context.Cause of a cancelled ownCtx reports its
// parent's cause, and contexts derived from it each start a goroutine),
// and it costs more than WithCancel once Done is asked for: levee's
// hedge/ctx.go makes a WithCancel at the first Done instead.
type ownCtx struct {
	context.Context // the caller's
	mu              sync.Mutex
	done            chan struct{}
	err             error
	stop            func() bool
}

func (c *ownCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.err != nil {
			close(c.done)
		} else if c.Context.Done() != nil {
			parent := c.Context
			c.stop = context.AfterFunc(parent, func() { c.cancel(parent.Err()) })
		}
	}
	return c.done
}

func (c *ownCtx) Err() error {
	c.mu.Lock()
	err, watched := c.err, c.done != nil
	c.mu.Unlock()
	if err != nil || watched {
		return err
	}
	return c.Context.Err()
}

func (c *ownCtx) cancel(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = err
	if c.done != nil {
		close(c.done)
	}
	if c.stop != nil {
		c.stop()
	}
}
