// Package fakeclock is a manual clock for levee's tests: time moves only when
// a test says so, so tests of timeouts and open periods never sleep.
package fakeclock

import (
	"sync"
	"time"
)

// Start is the time a new Clock reads: fixed, so that tests are repeatable.
var Start = time.Date(2026, time.January, 1, 12, 0, 0, 0, time.UTC)

// Clock is a clock that moves only when Advance or Set is called. Its Now
// method has the shape breaker.WithClock takes. Safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// New returns a Clock reading Start.
func New() *Clock { return &Clock{now: Start} }

// Now returns the clock's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d and returns the new time.
func (c *Clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}
