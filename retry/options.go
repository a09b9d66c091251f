package retry

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Defaults of a retry policy's settings.
const (
	// DefaultMaxAttempts is how many attempts a call makes in all, the
	// first included.
	DefaultMaxAttempts = 3
	// DefaultInitialDelay is the ceiling of the first delay of the default
	// backoff.
	DefaultInitialDelay = 100 * time.Millisecond
	// DefaultMaxDelay is the ceiling of every delay of the default backoff,
	// and the longest RetryAfter hint WithDelay waits for.
	DefaultMaxDelay = 10 * time.Second
)

// Option configures a retry policy at construction.
type Option func(*config)

type config struct {
	maxAttempts int
	maxDuration time.Duration
	backoff     backoff
	retryable   func(error) bool
	budget      *Budget
	random      *lockedRand
	problems    []string
}

func (c *config) refuse(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// WithMaxAttempts sets how many attempts a call makes in all, the first
// included: WithMaxAttempts(1) never retries. Default 3. n must be at least
// 1; Policy panics otherwise.
func WithMaxAttempts(n int) Option {
	return func(c *config) {
		if n < 1 {
			c.refuse("WithMaxAttempts: must be at least 1, got %d", n)
		}
		c.maxAttempts = n
	}
}

// WithMaxDuration bounds the time a call spends retrying, measured from the
// start of its first attempt: a retry that could not start within d (its
// delay would end after it) is not made, and the call returns the last
// error at once. It bounds the retrying, not an attempt in flight; put a
// resilience.Timeout outside the retry for a hard limit on the whole call.
// Default: none, only the attempts and the caller's deadline bound it. d
// must be positive; Policy panics otherwise.
func WithMaxDuration(d time.Duration) Option {
	return func(c *config) {
		if d <= 0 {
			c.refuse("WithMaxDuration: must be positive, got %v", d)
		}
		c.maxDuration = d
	}
}

// WithDelay waits d before every retry, without jitter; 0 retries at once.
// A RetryAfter hint longer than d is waited for instead, up to
// DefaultMaxDelay (10s); a longer hint stops the retries. The last of
// WithDelay, WithBackoff and WithDecorrelatedJitter given is the one used.
// d must not be negative; Policy panics otherwise.
func WithDelay(d time.Duration) Option {
	return func(c *config) {
		if d < 0 {
			c.refuse("WithDelay: must not be negative, got %v", d)
		}
		c.backoff = backoff{kind: constantDelay, initial: d, max: max(d, DefaultMaxDelay)}
	}
}

// WithBackoff waits, before the k-th retry, a delay drawn at random from
// [0, min(max, initial·2^(k-1))]: exponential backoff with full jitter, so
// that clients that failed together do not retry together. The first
// delay's ceiling is initial; max is the ceiling of every delay and the
// longest RetryAfter hint waited for. This is the default, with initial
// 100ms and max 10s. initial must be positive and max at least initial;
// Policy panics otherwise.
func WithBackoff(initial, max time.Duration) Option {
	return func(c *config) {
		c.checkRange("WithBackoff", initial, max)
		c.backoff = backoff{kind: fullJitter, initial: initial, max: max}
	}
}

// WithDecorrelatedJitter waits, before each retry, a delay drawn at random
// from [initial, 3 × the previous delay] (the previous delay of the first
// retry being initial), capped at max: the "decorrelated jitter" of AWS's
// Exponential Backoff And Jitter. Delays grow about as fast as doubling
// does, but each depends on the last one drawn rather than on the retry's
// number, which spreads clients further apart. max is also the longest
// RetryAfter hint waited for. initial must be positive and max at least
// initial; Policy panics otherwise.
func WithDecorrelatedJitter(initial, max time.Duration) Option {
	return func(c *config) {
		c.checkRange("WithDecorrelatedJitter", initial, max)
		c.backoff = backoff{kind: decorrelatedJitter, initial: initial, max: max}
	}
}

func (c *config) checkRange(option string, initial, max time.Duration) {
	if initial <= 0 {
		c.refuse("%s: initial must be positive, got %v", option, initial)
	}
	if max < initial {
		c.refuse("%s: max (%v) must be at least initial (%v)", option, max, initial)
	}
}

// If sets which errors are retried: those for which retryable returns true.
// It replaces the default, which retries every error except the permanent
// ones (see IsPermanent); keep that rule by calling IsPermanent in your
// predicate. Whatever it says, an error that comes with the caller's own
// context ended is never retried. retryable is called with non-nil errors
// only, must be safe for concurrent use, and must not be nil; Policy panics
// otherwise.
func If(retryable func(error) bool) Option {
	return func(c *config) {
		if retryable == nil {
			c.refuse("If: retryable must not be nil")
		}
		c.retryable = retryable
	}
}

// WithBudget makes every retry draw from b, a budget shared by every
// pipeline (and every hedge) calling one dependency: each call's first
// attempt deposits in it, and a retry the budget refuses is not made. The
// call then returns its last error at once, wrapped so that it matches
// ErrBudgetExhausted. Default: no budget. b must not be nil; Policy panics
// otherwise.
func WithBudget(b *Budget) Option {
	return func(c *config) {
		if b == nil {
			c.refuse("WithBudget: budget must not be nil")
		}
		c.budget = b
	}
}

// WithRand draws the jitter of the delays from r instead of math/rand/v2's
// global source, so that a test can reproduce them: seed r
// (rand.New(rand.NewPCG(1, 2))) and the delays follow. A *rand.Rand is not
// safe for concurrent use: the policy locks around it, and calls of every
// pipeline built from the policy share it. Default: the global source,
// random in every process and safe without a lock. r must not be nil;
// Policy panics otherwise.
func WithRand(r *rand.Rand) Option {
	return func(c *config) {
		if r == nil {
			c.refuse("WithRand: r must not be nil")
		}
		c.random = &lockedRand{r: r}
	}
}

// lockedRand serialises the draws from a source that is not safe for
// concurrent use.
type lockedRand struct {
	mu sync.Mutex
	r  *rand.Rand
}

// int64N returns a number in [0, n) from l, or from the global source when
// l is nil.
func (l *lockedRand) int64N(n int64) int64 {
	if l == nil {
		return rand.Int64N(n)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Int64N(n)
}
