package leveeredis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric/noop"

	"github.com/levee-go/levee/internal/limited"
	"github.com/levee-go/levee/ratelimit"
	"github.com/levee-go/levee/resilience"
)

// leaseCacheLine is the size the hot atomics are padded to.
const leaseCacheLine = 64

// Limiter is a rate limit held by a whole fleet: n calls per period, in
// bursts of up to burst, for the sum of every instance's calls, with no
// Redis round trip on a call's path.
//
// The fleet's token bucket lives in Redis (a GCRA script run on the server,
// on the server's clock). Each instance leases tokens from it in batches,
// in the background, and spends them locally: a call takes one leased token
// with one compare-and-swap, no lock, no clock read, no allocation. When
// its tokens fall to half a batch the instance asks for more; a call that
// finds none is rejected at once with a *ratelimit.LimitedError (matching
// ratelimit.ErrLimited, with a RetryAfter), or, with WithLimitMaxWait,
// waits that long at most for the lease in flight.
//
// Over any stretch of time the fleet admits at most what the bucket grants
// (burst + t·n/period) plus the tokens leased and not yet spent, at most one
// batch per instance: that is the overshoot bound (docs/fleet-limits.md
// measures it). Tokens an instance holds when it dies are lost, not
// overshoot. Redis round trips are about one per batch of calls, plus a
// keep-alive every 10 sync intervals.
//
// When a lease fails (Redis down, slow, partitioned, or its key holds
// garbage) the instance falls back at once to a local ratelimit.Limiter of
// its share of the limit (n divided by the instances last seen, or
// WithLimitLocalShare), reports it (levee.fleet.local_fallback), and
// rejoins the fleet's bucket at the first lease that succeeds. After
// Fleet.Close the limiter goes on as that local limiter.
//
// Create one with NewLimiter; Call and LimiterPolicy use it. A Limiter is
// safe for concurrent use by any number of goroutines.
type Limiter struct {
	_ [leaseCacheLine]byte
	// tokens are the leased tokens not spent yet.
	tokens atomic.Int64
	// admitted counts the calls that spent a leased token; it shares the
	// line with tokens, which the same call has just written.
	admitted atomic.Int64
	// lowWater is the count at which the instance asks for more tokens.
	lowWater atomic.Int64
	_        [leaseCacheLine - 24]byte

	fleet     *Fleet
	name      string
	keys      []string // the bucket and the members
	n         int
	per       time.Duration
	burst     int
	interval  float64 // µs per token
	tolerance float64 // (burst-1)·interval, µs
	tokenGap  time.Duration
	maxWait   time.Duration
	batch     int // 0: adaptive
	share     int // 0: n / instances
	expected  int
	epoch     time.Time

	// local is the limit the instance applies alone, non-nil while the
	// fleet's bucket cannot be reached.
	local atomic.Pointer[ratelimit.Limiter]
	// members is how many instances leased lately, as last seen.
	members atomic.Int64
	// batchNow is the batch the next lease asks for.
	batchNow atomic.Int64
	// retryAt is when the fleet's bucket has a token again, as the last
	// lease said (nanoseconds since epoch).
	retryAt atomic.Int64
	// leased is closed after each lease; calls waiting for tokens watch it.
	leased atomic.Pointer[chan struct{}]
	wake   chan struct{}

	waited, rejected, canceled atomic.Int64
	localAdmitted              atomic.Int64
	fallbacks                  atomic.Int64 // moves to the local share
	leases, leaseTokens        atomic.Int64

	tel *limiterInstruments
}

// LimiterOption configures a fleet Limiter.
type LimiterOption func(*limiterConfig)

type limiterConfig struct {
	burst, batch, share, expected int
	maxWait                       time.Duration
	problems                      []string
}

func (c *limiterConfig) refuse(p string) { c.problems = append(c.problems, p) }

// WithLimitBurst sets how many calls the fleet may make at once after a
// quiet spell: the size of the fleet's bucket. Default n. burst must be at
// least 1.
func WithLimitBurst(burst int) LimiterOption {
	return func(c *limiterConfig) {
		if burst < 1 {
			c.refuse(fmt.Sprintf("WithLimitBurst: must be at least 1, got %d", burst))
		}
		c.burst = burst
	}
}

// WithLimitBatch sets how many tokens an instance leases at once. Default:
// adaptive, burst / (10 × the instances last seen), at least 1, so that the
// tokens leased and not yet spent across the fleet stay near a tenth of
// the burst however many instances there are. A larger batch means fewer
// Redis round trips (about one per batch calls) and a larger overshoot
// bound (one batch per instance). k must be at least 1 and at most burst.
func WithLimitBatch(k int) LimiterOption {
	return func(c *limiterConfig) {
		if k < 1 {
			c.refuse(fmt.Sprintf("WithLimitBatch: must be at least 1, got %d", k))
		}
		c.batch = k
	}
}

// WithLimitMaxWait lets a call that finds no leased token wait up to d for
// the lease in flight (or, while Redis is unreachable, for the local
// limiter's next token), and not beyond its context's deadline. Default 0:
// a call that finds no token is rejected at once. d must not be negative.
func WithLimitMaxWait(d time.Duration) LimiterOption {
	return func(c *limiterConfig) {
		if d < 0 {
			c.refuse(fmt.Sprintf("WithLimitMaxWait: must not be negative, got %v", d))
		}
		c.maxWait = d
	}
}

// WithLimitLocalShare sets the limit each instance applies alone while the
// fleet's bucket cannot be reached: n calls per period (the burst in the
// same proportion). Default: the fleet's n divided by the instances that
// leased lately, as last seen from Redis, rounded up; before the first
// lease answers, divided by WithLimitExpectedInstances. n must be at least
// 1.
func WithLimitLocalShare(n int) LimiterOption {
	return func(c *limiterConfig) {
		if n < 1 {
			c.refuse(fmt.Sprintf("WithLimitLocalShare: must be at least 1, got %d", n))
		}
		c.share = n
	}
}

// WithLimitExpectedInstances is how many instances share the limit until
// Redis has said how many lease from it: the local share of an instance
// that starts while Redis is unreachable is n / m. Default 1: such an
// instance applies the whole limit alone. m must be at least 1.
func WithLimitExpectedInstances(m int) LimiterOption {
	return func(c *limiterConfig) {
		if m < 1 {
			c.refuse(fmt.Sprintf("WithLimitExpectedInstances: must be at least 1, got %d", m))
		}
		c.expected = m
	}
}

// memberTTLIntervals is how many sync intervals an instance counts among
// the limit's members after its last lease; it says it is alive every
// keepAliveIntervals when it has no need to lease.
const (
	memberTTLIntervals = 40
	keepAliveIntervals = 10
)

// NewLimiter returns the fleet rate limit named name: n calls per period
// for the whole fleet, in bursts of up to n, made from f. Every instance
// creates it with the same name, n, per and burst (their bucket in Redis is
// the name's). Its background goroutine asks for the first lease at once.
// Until that first lease has answered or failed (within the fleet's
// operation timeout, 250ms by default), the limiter holds no token: a call
// then waits for the lease within WithLimitMaxWait, and without it is
// refused with ErrLimited. A new instance starts closed, never over the
// fleet's limit; give it a short WithLimitMaxWait if its first calls must
// not be refused.
//
// Invalid settings panic, naming them: an empty name or one holding a
// brace, n below 1, a period that is not positive, and the options' own.
func NewLimiter(f *Fleet, name string, n int, per time.Duration, opts ...LimiterOption) *Limiter {
	if f == nil {
		panic("leveeredis: NewLimiter: the fleet must not be nil")
	}
	ks := f.keyspace("limiter", name)
	c := limiterConfig{expected: 1}
	if n < 1 {
		c.refuse(fmt.Sprintf("n: must be at least 1, got %d", n))
	}
	if per <= 0 {
		c.refuse(fmt.Sprintf("per: must be positive, got %v", per))
	}
	for i, o := range opts {
		if o == nil {
			c.refuse("option " + strconv.Itoa(i) + " is nil")
			continue
		}
		o(&c)
	}
	burst := c.burst
	if burst == 0 {
		burst = n
	}
	if c.batch > burst && len(c.problems) == 0 {
		c.refuse(fmt.Sprintf("WithLimitBatch: %d is more than the burst, %d", c.batch, burst))
	}
	if len(c.problems) > 0 {
		panic("leveeredis: NewLimiter(" + strconv.Quote(name) + "): " + strings.Join(c.problems, "; "))
	}
	interval := float64(per) / float64(time.Microsecond) / float64(n)
	l := &Limiter{
		fleet: f, name: name,
		keys: []string{ks.key("tat"), ks.key("members")},
		n:    n, per: per, burst: burst,
		interval: interval, tolerance: float64(burst-1) * interval,
		tokenGap: max(per/time.Duration(n), 1),
		maxWait:  c.maxWait, batch: c.batch, share: c.share, expected: c.expected,
		epoch: time.Now(),
		wake:  make(chan struct{}, 1),
	}
	ch := make(chan struct{})
	l.leased.Store(&ch)
	l.setMembers(int64(c.expected))
	l.tel = newLimiterInstruments(l, f)
	f.run(l.loop)
	return l
}

// Name returns the name the limiter was created with.
func (l *Limiter) Name() string { return l.name }

// LocalOnly reports whether the limiter applies its local share alone now,
// because the fleet's bucket could not be reached (or the Fleet is closed).
func (l *Limiter) LocalOnly() bool { return l.local.Load() != nil }

// Call runs fn(ctx) once the limiter admits the call, and returns its error;
// or returns a *ratelimit.LimitedError without running fn, or the context's
// error when ctx ends first. A nil fn is refused with an error.
func (l *Limiter) Call(ctx context.Context, fn func(context.Context) error) error {
	if fn == nil {
		return errNilFunc
	}
	if err := l.admit(ctx); err != nil {
		return err
	}
	return fn(ctx)
}

var errNilFunc = errors.New("leveeredis: Limiter.Call: fn must not be nil")

// admit takes a leased token for the call, or decides it on the slow path.
func (l *Limiter) admit(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		l.canceled.Add(1)
		return err
	}
	for {
		t := l.tokens.Load()
		if t <= 0 {
			return l.admitSlow(ctx)
		}
		if l.tokens.CompareAndSwap(t, t-1) {
			l.admitted.Add(1)
			if t-1 == l.lowWater.Load() {
				l.signal()
			}
			return nil
		}
	}
}

// signal wakes the background loop to lease, without waiting.
func (l *Limiter) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func nopCall(context.Context) error { return nil }

// admitSlow decides a call that found no leased token: by the local limit
// while the fleet is unreachable, else by waiting for the lease in flight
// if it may, else by refusing it.
func (l *Limiter) admitSlow(ctx context.Context) error {
	if local := l.local.Load(); local != nil {
		return l.admitLocal(ctx, local)
	}
	l.signal()
	if l.maxWait > 0 {
		return l.waitForLease(ctx)
	}
	return l.reject(ctx)
}

func (l *Limiter) admitLocal(ctx context.Context, local *ratelimit.Limiter) error {
	err := local.Call(ctx, nopCall)
	switch {
	case err == nil:
		l.localAdmitted.Add(1)
	case errors.Is(err, ratelimit.ErrLimited):
		l.rejected.Add(1)
	default:
		l.canceled.Add(1)
	}
	return err
}

// waitForLease waits up to maxWait, and not past ctx's deadline, for
// leased tokens.
func (l *Limiter) waitForLease(ctx context.Context) error {
	timer := time.NewTimer(l.maxWait)
	defer timer.Stop()
	for {
		ch := *l.leased.Load()
		if t := l.tokens.Load(); t > 0 {
			if l.tokens.CompareAndSwap(t, t-1) {
				l.waited.Add(1)
				return nil
			}
			continue
		}
		if local := l.local.Load(); local != nil {
			return l.admitLocal(ctx, local)
		}
		select {
		case <-ch:
		case <-timer.C:
			return l.reject(ctx)
		case <-ctx.Done():
			l.canceled.Add(1)
			return ctx.Err()
		}
	}
}

// reject refuses a call, saying when the fleet's bucket has a token again
// as the last lease said, and at least one token's interval from now.
func (l *Limiter) reject(ctx context.Context) error {
	l.rejected.Add(1)
	after := max(time.Duration(l.retryAt.Load()-int64(time.Since(l.epoch))), l.tokenGap)
	err := limited.NewError(l.name, after)
	l.tel.rejected(ctx, after)
	return err
}

// setMembers records how many instances lease from the bucket, and the
// batch that follows from it.
func (l *Limiter) setMembers(m int64) {
	m = max(m, 1)
	l.members.Store(m)
	batch := int64(l.batch)
	if batch == 0 {
		batch = max(int64(l.burst)/(10*m), 1)
	}
	l.batchNow.Store(batch)
	l.lowWater.Store(batch / 2)
}

// newLocal is the limit the instance applies alone: its share of n, and of
// the burst, by the instances last seen.
func (l *Limiter) newLocal() *ratelimit.Limiter {
	m := l.members.Load()
	share := l.share
	if share == 0 {
		share = int(max((int64(l.n)+m-1)/m, 1))
	}
	burst := max(int(math.Ceil(float64(l.burst)*float64(share)/float64(l.n))), 1)
	return ratelimit.New(l.name, share, l.per,
		ratelimit.WithBurst(burst), ratelimit.WithMaxWait(l.maxWait),
		ratelimit.WithMeterProvider(noop.NewMeterProvider()))
}

// loop leases tokens: at once, then whenever the tokens fall to the low
// water mark, and, while the bucket cannot be reached, every sync interval
// until it can. It never runs on a caller's goroutine.
func (l *Limiter) loop(ctx context.Context) {
	defer func() {
		// Closed: go on alone. Tokens still leased are spent first.
		if l.local.Load() == nil {
			l.local.Store(l.newLocal())
		}
		l.wakeWaiters()
	}()
	every := l.fleet.interval
	timer := time.NewTimer(0)
	defer timer.Stop()
	idle := 0
	var notBefore time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.wake:
			if time.Now().Before(notBefore) {
				continue // the fleet is empty: the timer asks again when a token is due
			}
		case <-timer.C:
		}
		want := l.batchNow.Load() - l.tokens.Load()
		if l.local.Load() == nil && l.tokens.Load() > l.lowWater.Load() {
			want = 0
		}
		idle++
		if want <= 0 && idle < keepAliveIntervals {
			timer.Reset(every)
			continue
		}
		idle = 0
		next := every
		reply, err := l.lease(ctx, max(want, 0))
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			if l.local.Load() == nil {
				l.local.Store(l.newLocal())
				l.fallbacks.Add(1)
				l.wakeWaiters() // the local share decides them now
			}
		default:
			if l.local.Load() != nil {
				l.local.Store(nil)
			}
			if reply.granted < want && reply.wait > 0 {
				// The fleet's bucket is short: ask again when it has
				// the rest of a batch, not on every rejected call.
				next = min(every, time.Duration(reply.wait)*time.Microsecond+time.Duration(float64(want-reply.granted-1)*l.interval)*time.Microsecond)
				notBefore = time.Now().Add(next)
			}
		}
		timer.Reset(max(next, time.Millisecond))
	}
}

// lease asks the fleet's bucket for want tokens (0: only to say the
// instance is alive) and adds what it grants.
func (l *Limiter) lease(ctx context.Context, want int64) (leaseReply, error) {
	var reply leaseReply
	ttl := (memberTTLIntervals * l.fleet.interval).Milliseconds()
	err := l.fleet.op(ctx, l.name, "lease", func(ctx context.Context) error {
		var err error
		reply, err = runLease(ctx, l.fleet.client, l.name, l.keys, l.interval, l.tolerance, want, l.fleet.id, max(ttl, 1))
		return err
	})
	if err != nil {
		return reply, err
	}
	l.leases.Add(1)
	if reply.granted > 0 {
		l.tokens.Add(reply.granted)
		l.leaseTokens.Add(reply.granted)
	}
	l.retryAt.Store(int64(time.Since(l.epoch)) + reply.wait*int64(time.Microsecond))
	l.setMembers(reply.members)
	l.tel.leased(want, reply.granted)
	l.wakeWaiters()
	return reply, nil
}

// wakeWaiters wakes the calls waiting for a lease (WithLimitMaxWait) to
// look again: tokens came, or the local share decides them now.
func (l *Limiter) wakeWaiters() {
	next := make(chan struct{})
	close(*l.leased.Swap(&next))
}

// LimiterPolicy returns a resilience.Policy that limits calls with l, as
// ratelimit.Policy does with a local limiter: a refused call returns T's
// zero value and a *ratelimit.LimitedError. One limiter may back policies of
// many result types. The policy is a resilience.TelemetrySource giving the
// limiter's name and the fleet's providers. l must not be nil.
func LimiterPolicy[T any](l *Limiter) resilience.Policy[T] {
	if l == nil {
		panic("leveeredis: LimiterPolicy: limiter must not be nil")
	}
	return limiterPolicy[T]{l: l}
}

type limiterPolicy[T any] struct{ l *Limiter }

func (p limiterPolicy[T]) Apply(next resilience.Func[T]) resilience.Func[T] {
	l := p.l
	return func(ctx context.Context) (T, error) {
		if err := l.admit(ctx); err != nil {
			var zero T
			return zero, err
		}
		return next(ctx)
	}
}

// Telemetry returns the limiter's name and its fleet's providers (nil for
// the globals).
func (p limiterPolicy[T]) Telemetry() resilience.Telemetry {
	return resilience.Telemetry{Name: p.l.name, TracerProvider: p.l.fleet.tp, MeterProvider: p.l.fleet.mp}
}
