package hedge

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// attemptCtx is the context every attempt of one hedged call runs with:
// the caller's values and deadline, ended when the caller's context ends
// or when the hedge cancels it (the call is decided, or returns).
//
// It is context.WithCancel made lazily: an attempt that never waits on its
// context (never calls Done, derives no context from it) costs this one
// allocation, where WithCancel costs two. The first Done makes the
// context.WithCancel of the caller's context that the attempt then sees
// through Done, Err and Value, so that package context finds its
// *cancelCtx as it finds that of any WithCancel: contexts derived from it
// (an inner Timeout, an HTTP request) are ended with it synchronously, no
// goroutine waits for it, and context.Cause sees through it. Safe for
// concurrent use.
type attemptCtx struct {
	context.Context // the caller's

	// lazy is set once inner and cancelInner are, under mu.
	lazy        atomic.Bool
	inner       context.Context
	cancelInner context.CancelFunc

	mu sync.Mutex
	// ended is set once err and first are, under mu: the context was
	// cancelled before any Done made inner.
	ended atomic.Bool
	err   error
	// first: the hedge's cancel came before the caller's context ended, so
	// err is context.Canceled and so is the cause, whatever the caller's
	// context ends with later.
	first bool
}

// cancelCtxKey is the key by which package context asks a context for its
// nearest *cancelCtx (context.Cause asks for it, and nothing else, once
// Err is non-nil). An attempts' context the hedge ended before any Done
// made inner must not answer with the caller's: that one's cause, once
// the caller's context ends, is not this context's. If the key could not
// be told, it is a key nobody uses, and Cause may show a later cause of
// the caller's.
var cancelCtxKey = func() any {
	var p keyProbe
	_ = context.Cause(&p)
	cc, cancel := context.WithCancel(context.Background())
	defer cancel()
	if p.key == nil || cc.Value(p.key) != any(cc) {
		return new(int)
	}
	return p.key
}()

// keyProbe is an ended context that remembers the first key asked of it.
type keyProbe struct {
	context.Context
	key any
}

func (p *keyProbe) Err() error { return context.Canceled }

func (p *keyProbe) Value(key any) any {
	if p.key == nil {
		p.key = key
	}
	return nil
}

// closedChan is the Done of an attempt context that ended before anybody
// asked for it.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

func newAttemptCtx(parent context.Context) *attemptCtx {
	return &attemptCtx{Context: parent}
}

// Done returns a channel closed when the context ends.
func (c *attemptCtx) Done() <-chan struct{} {
	if c.lazy.Load() {
		return c.inner.Done()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.lazy.Load():
	case c.ended.Load():
		return closedChan
	default:
		c.inner, c.cancelInner = context.WithCancel(c.Context)
		c.lazy.Store(true)
	}
	return c.inner.Done()
}

// Err returns nil while the context runs; once it has ended, the caller's
// context's error if that ended first, context.Canceled otherwise.
func (c *attemptCtx) Err() error {
	if c.lazy.Load() {
		return c.inner.Err()
	}
	if c.ended.Load() {
		return c.err
	}
	err := c.Context.Err()
	if err != nil {
		// The caller's context has ended, but this one may have ended
		// first while we looked: its end is the one to give, now and for
		// good.
		if c.lazy.Load() {
			return c.inner.Err()
		}
		if c.ended.Load() {
			return c.err
		}
	}
	return err
}

// Value returns the caller's context's value for key (and, once Done has
// been asked for, package context's own key finds the *cancelCtx made for
// it; if the hedge ended the context before, it finds none, so that
// context.Cause is the end's own, whatever the caller's context ends with
// later).
func (c *attemptCtx) Value(key any) any {
	if c.lazy.Load() {
		return c.inner.Value(key)
	}
	if c.ended.Load() && key == cancelCtxKey && c.first {
		return nil // context.Cause is then Err, context.Canceled
	}
	return c.Context.Value(key)
}

// String names the context as package context names its own.
func (c *attemptCtx) String() string {
	if s, ok := c.Context.(fmt.Stringer); ok {
		return s.String() + ".WithHedge"
	}
	return fmt.Sprintf("%T.WithHedge", c.Context)
}

// cancel ends the context: with the caller's context's error if that has
// ended already, with context.Canceled otherwise.
func (c *attemptCtx) cancel() {
	if c.lazy.Load() {
		c.cancelInner()
		return
	}
	c.mu.Lock()
	switch {
	case c.lazy.Load():
		c.mu.Unlock()
		c.cancelInner()
		return
	case !c.ended.Load():
		c.err = c.Context.Err()
		if c.err == nil {
			c.err, c.first = context.Canceled, true
		}
		c.ended.Store(true)
	}
	c.mu.Unlock()
}
