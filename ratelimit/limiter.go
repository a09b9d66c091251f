package ratelimit

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// cacheLine is the size the hot atomics are padded to.
const cacheLine = 64

// Limiter is a rate limit: a token bucket that holds up to burst tokens
// (n by default) and gains one every period/n. A call takes a token and
// runs; a call that finds none is rejected at once with a *LimitedError
// matching ErrLimited, whose RetryAfter says when the next token comes. Over
// any stretch of time t the limiter admits at most burst + t·n/period calls.
// With WithMaxWait a call whose token comes soon enough waits for it; with
// Smooth the bucket holds one token, so calls are spaced evenly; with WithKey
// every key has a bucket of its own.
//
// It keeps the bucket as one number, the theoretical arrival time of the
// generic cell rate algorithm (GCRA): the moment the bucket would be full
// again. A call compares it with the clock and moves it forward by one
// interval, in one compare-and-swap: no lock, no allocation, one clock read,
// and no OpenTelemetry work when the call is let through at once. A
// rejection allocates its error (it carries its own RetryAfter); a wait
// allocates a timer.
//
// Use Call for functions that return only an error, and Policy to put the
// limiter in a resilience pipeline. A Limiter is safe for concurrent use by
// any number of goroutines and starts no goroutine. Create one with New; the
// zero value is not usable. A Limiter nobody references any more is
// garbage, its metrics registration included.
type Limiter struct {
	_ [cacheLine]byte
	// tat is the theoretical arrival time, in nanoseconds since epoch:
	// the bucket is full when tat <= now, and each admitted call moves it
	// one interval on from max(tat, now). A keyed limiter's own tat is the
	// overflow limit shared by the keys it does not track.
	tat atomic.Int64
	// admitted counts the calls let through at once by tat. It shares
	// tat's cache line: the call that moves tat counts itself there.
	admitted atomic.Int64
	_        [cacheLine - 16]byte

	epoch     time.Time
	interval  int64 // nanoseconds between tokens: per/n, rounded up
	tolerance int64 // (burst-1)·interval: how far tat may run ahead of now
	maxWait   int64
	name      string
	keys      *keyedLimits // nil unless WithKey

	waited   atomic.Int64 // admitted after waiting for their token
	rejected atomic.Int64
	canceled atomic.Int64 // the caller's context ended first
	queued   atomic.Int64 // waiting for their token now

	tel *instruments
}

// New returns a Limiter named name that admits n calls per period, in
// bursts of up to n. The name identifies it in errors and telemetry
// (levee.policy.name) and must not be empty. The interval between tokens is
// per/n rounded up to the nanosecond, so the limiter never admits more than
// it was asked to.
//
// Invalid settings are programming errors: New panics with a message naming
// the setting (an empty name, n or a burst below 1, a period that is not
// positive, a negative WithMaxWait, a nil key function, WithMaxKeys without
// WithKey, a nil option or provider). It registers the limiter with the
// meter provider, so its metrics are reported from construction on, for as
// long as the limiter is referenced. Give each limiter of one provider its
// own name.
func New(name string, n int, per time.Duration, opts ...Option) *Limiter {
	cfg := config{maxKeys: DefaultMaxKeys}
	if name == "" {
		cfg.refuse("name must not be empty")
	}
	if n < 1 {
		cfg.refuse(fmt.Sprintf("n: must be at least 1, got %d", n))
	}
	if per <= 0 {
		cfg.refuse(fmt.Sprintf("per: must be positive, got %v", per))
	}
	for i, opt := range opts {
		if opt == nil {
			cfg.refuse("option " + strconv.Itoa(i) + " is nil")
			continue
		}
		opt(&cfg)
	}
	if cfg.smooth && cfg.burst != 0 {
		cfg.refuse("Smooth and WithBurst: a smooth limit has no burst; give one or the other")
	}
	if cfg.maxKeysGiven && !cfg.keyGiven {
		cfg.refuse("WithMaxKeys: needs WithKey")
	}
	var interval, tolerance int64
	if len(cfg.problems) == 0 {
		burst := cfg.burst
		switch {
		case cfg.smooth:
			burst = 1
		case burst == 0:
			burst = n
		}
		interval = max((int64(per)+int64(n)-1)/int64(n), 1)
		// tat runs at most tolerance + maxWait + interval ahead of the
		// clock: keep that far from overflowing.
		if int64(burst-1) > (math.MaxInt64/4)/interval || (int64(burst-1)*interval) > math.MaxInt64/4-int64(cfg.maxWait)-interval {
			cfg.refuse(fmt.Sprintf("burst of %d calls at one per %v, with WithMaxWait %v: too long to represent", burst, time.Duration(interval), cfg.maxWait))
		}
		tolerance = int64(burst-1) * interval
	}
	if len(cfg.problems) > 0 {
		panic("levee: ratelimit.New(" + strconv.Quote(name) + "): " + strings.Join(cfg.problems, "; "))
	}
	l := &Limiter{
		epoch:     time.Now(),
		interval:  interval,
		tolerance: tolerance,
		maxWait:   int64(cfg.maxWait),
		name:      name,
	}
	if cfg.key != nil {
		l.keys = newKeyedLimits(cfg.key, cfg.maxKeys, l.tolerance+l.maxWait+l.interval)
	}
	newInstruments(l, cfg.tracerProvider, cfg.meterProvider)
	return l
}

// Name returns the name the limiter was created with.
func (l *Limiter) Name() string { return l.name }

// Keys returns how many keys a keyed limiter tracks now; 0 for a limiter
// without WithKey.
func (l *Limiter) Keys() int {
	if l.keys == nil {
		return 0
	}
	return l.keys.count()
}

// Call runs fn(ctx) once the limiter admits the call, and returns its error;
// or returns a *LimitedError without running fn, or the context's error when
// ctx ends first. A nil fn is refused with an error.
func (l *Limiter) Call(ctx context.Context, fn func(context.Context) error) error {
	if fn == nil {
		return errNilFunc
	}
	if err := l.admit(ctx); err != nil {
		return err
	}
	return fn(ctx)
}

// now is the limiter's clock: nanoseconds since it was created, from the
// monotonic clock.
func (l *Limiter) now() int64 { return int64(time.Since(l.epoch)) }

// admit takes a token for the call, waiting for it if it may, or returns the
// error that refuses it.
func (l *Limiter) admit(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		l.canceled.Add(1)
		return err
	}
	if l.keys != nil {
		return l.admitKeyed(ctx)
	}
	now := l.now()
	for {
		tat := l.tat.Load()
		if tat-l.tolerance <= now {
			if l.tat.CompareAndSwap(tat, max(tat, now)+l.interval) {
				l.admitted.Add(1)
				return nil
			}
			continue
		}
		wait := tat - l.tolerance - now
		if !l.mayWait(ctx, now, wait) {
			return l.reject(ctx, wait)
		}
		if l.tat.CompareAndSwap(tat, tat+l.interval) {
			return l.wait(ctx, wait, func() { l.tat.CompareAndSwap(tat+l.interval, tat) })
		}
	}
}

// mayWait reports whether a call may wait wait nanoseconds from now for its
// token: within the maximum wait, and ending before the call's deadline.
func (l *Limiter) mayWait(ctx context.Context, now, wait int64) bool {
	if wait > l.maxWait {
		return false
	}
	if deadline, ok := ctx.Deadline(); ok && int64(deadline.Sub(l.epoch)) <= now+wait {
		return false
	}
	return true
}

func (l *Limiter) reject(ctx context.Context, wait int64) error {
	l.rejected.Add(1)
	err := &LimitedError{name: l.name, retryAfter: time.Duration(wait)}
	l.tel.rejected(ctx, err.retryAfter)
	return err
}

// wait sleeps until the call's reserved token comes. When ctx ends first,
// or has ended when the token comes, it gives the token back with giveBack
// and returns the context's error.
func (l *Limiter) wait(ctx context.Context, wait int64, giveBack func()) error {
	l.queued.Add(1)
	defer l.queued.Add(-1)
	timer := time.NewTimer(time.Duration(wait))
	defer timer.Stop()
	start := time.Now()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
	if err := ctx.Err(); err != nil {
		giveBack()
		l.canceled.Add(1)
		l.tel.canceled(ctx, time.Since(start), err)
		return err
	}
	l.waited.Add(1)
	l.tel.waited(ctx, time.Duration(wait))
	return nil
}

// callCounts are a limiter's calls by outcome, for its metrics.
type callCounts struct {
	admitted, waited, rejected, canceled int64
}

func (l *Limiter) counts() callCounts {
	c := callCounts{
		admitted: l.admitted.Load(),
		waited:   l.waited.Load(),
		rejected: l.rejected.Load(),
		canceled: l.canceled.Load(),
	}
	if l.keys != nil {
		c.admitted += l.keys.admittedCount()
	}
	return c
}
