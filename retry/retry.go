package retry

import (
	"context"
	"strings"
	"time"

	"github.com/levee-go/levee/internal/budget"
	"github.com/levee-go/levee/resilience"
)

// DefaultName is the levee.policy.name of a retry applied outside any
// pipeline (its Apply called directly); in a pipeline it reports under the
// pipeline's name (see resilience.WrapWith and resilience.Named).
const DefaultName = "retry"

// Policy returns a policy that calls the next function again when it
// fails, up to WithMaxAttempts attempts in all (3 by default), waiting
// between attempts as WithBackoff (the default: 100ms to 10s, exponential
// with full jitter), WithDelay or WithDecorrelatedJitter say.
//
// What is retried: every error except the permanent ones (Permanent, and
// errors whose type says so; see IsPermanent), unless If says otherwise.
// An error that comes back with the caller's own context ended is never
// retried, and a call whose context is already done runs nothing and
// returns ctx.Err().
//
// How long: an error in whose tree an error has a RetryAfter()
// time.Duration method (a breaker's OpenError, leveehttp's 429 and 503
// errors, a rate limiter's rejection) makes the next delay at least that
// long. A retry never waits past the caller's deadline, nor past
// WithMaxDuration, nor a hint longer than the maximum delay: when the wait
// would, the call stops at once and returns the last error. When the
// caller's context ends during a delay the call returns at once, with an
// error that matches the context's error and wraps the last attempt's.
// Every attempt gets the caller's context: put a resilience.Timeout inside
// the retry to give each attempt its own deadline.
//
// What comes back: the first success, or an error. A call that stopped
// while its last error was still worth retrying returns an *Error saying
// how many attempts were made and wrapping that error (errors.Is and
// errors.As reach it); one whose last error was not worth retrying returns
// that error as it is.
//
// What it lets go of: once it has decided to try again, and before it
// waits, the retry calls the Release() method of every error in the failed
// attempt's error tree that has one. An error that holds a resource frees
// it there rather than hold it through the delay: leveehttp's error for a
// failing response closes the response, so that its connection is not kept
// busy while the retry waits. An error returned after its release (the
// caller's context ended during the delay) has let go of what it held.
//
// Put the retry outside the breaker, and the breaker outside the timeout:
// the timeout bounds each attempt, the breaker counts each attempt, and an
// open breaker's rejection tells the retry how long to wait (or to stop).
// Give every pipeline calling one dependency the same Budget (WithBudget),
// so that an outage does not multiply the load on it.
//
// The retry reports under its pipeline's Telemetry (levee.retry.attempts,
// levee.retry.exhausted, levee.retry.budget_exhausted and span events; see
// docs/telemetry.md). A call whose first attempt succeeds reads no clock,
// takes no lock, allocates nothing and does no telemetry. Invalid options
// panic at construction, naming the option. The policy is safe for
// concurrent use; one policy value may be shared by many pipelines.
func Policy[T any](opts ...Option) resilience.Policy[T] {
	cfg := config{
		maxAttempts: DefaultMaxAttempts,
		backoff:     backoff{kind: fullJitter, initial: DefaultInitialDelay, max: DefaultMaxDelay},
	}
	for i, opt := range opts {
		if opt == nil {
			cfg.refuse("option %d is nil", i)
			continue
		}
		opt(&cfg)
	}
	if len(cfg.problems) > 0 {
		panic("levee: retry.Policy: " + strings.Join(cfg.problems, "; "))
	}
	return &policy[T]{cfg: cfg}
}

type policy[T any] struct{ cfg config }

func (p *policy[T]) Apply(next resilience.Func[T]) resilience.Func[T] {
	return p.ApplyWith(resilience.Telemetry{}, next)
}

// ApplyWith builds the retry of one pipeline, reporting under tel.
func (p *policy[T]) ApplyWith(tel resilience.Telemetry, next resilience.Func[T]) resilience.Func[T] {
	c := newCore(p.cfg, tel)
	return func(ctx context.Context) (T, error) {
		if err := ctx.Err(); err != nil {
			var zero T
			return zero, err
		}
		var start time.Time
		if c.maxDuration > 0 {
			start = time.Now()
		}
		if c.budget != nil {
			c.budget.Deposit()
		}
		v, err := next(ctx)
		if err == nil {
			return v, nil
		}
		return retryFailed(c, ctx, next, start, v, err)
	}
}

// core is what does not depend on T: the settings and the telemetry of one
// pipeline's retry.
type core struct {
	maxAttempts int
	maxDuration time.Duration
	backoff     backoff
	retryable   func(error) bool
	budget      *budget.Budget
	random      *lockedRand
	tel         *instruments
}

func newCore(cfg config, tel resilience.Telemetry) *core {
	c := &core{
		maxAttempts: cfg.maxAttempts,
		maxDuration: cfg.maxDuration,
		backoff:     cfg.backoff,
		retryable:   cfg.retryable,
		random:      cfg.random,
		tel:         newInstruments(tel),
	}
	if cfg.budget != nil {
		c.budget = cfg.budget.impl()
	}
	return c
}

// retryFailed runs the retries of a call whose first attempt failed with
// err, having returned v.
func retryFailed[T any](c *core, ctx context.Context, next resilience.Func[T], start time.Time, v T, err error) (T, error) {
	var delay time.Duration
	for attempts := 1; ; attempts++ {
		var stop string
		delay, stop = c.plan(ctx, start, attempts, delay, err)
		switch stop {
		case "":
		case stopNotRetryable:
			return v, err
		default:
			c.tel.stopped(ctx, stop, attempts, err)
			return v, &Error{Name: c.tel.name, Attempts: attempts, Err: err, stop: stop, cause: causeOf(stop)}
		}
		c.tel.scheduled(ctx, attempts+1, delay, err)
		release(err)
		if ctxErr := wait(ctx, delay); ctxErr != nil {
			return v, &Error{Name: c.tel.name, Attempts: attempts, Err: err, stop: stopCanceled, cause: ctxErr}
		}
		v, err = next(ctx)
		switch {
		case err == nil:
			c.tel.attempted(ctx, attemptSuccess)
			return v, nil
		case ctx.Err() != nil:
			c.tel.attempted(ctx, attemptIgnored)
		default:
			c.tel.attempted(ctx, attemptFailure)
		}
	}
}

// stopNotRetryable is plan's answer for an error returned as it is.
const stopNotRetryable = "not retryable"

func causeOf(stop string) error {
	if stop == stopBudget {
		return ErrBudgetExhausted
	}
	return nil
}

// plan decides what follows the attempts-th attempt, which failed with err:
// the delay before the next one, or why there is none (stop). previous is
// the delay before the failed attempt (0 before the first).
func (c *core) plan(ctx context.Context, start time.Time, attempts int, previous time.Duration, err error) (delay time.Duration, stop string) {
	if ctx.Err() != nil || !c.isRetryable(err) {
		return 0, stopNotRetryable
	}
	if attempts >= c.maxAttempts {
		return 0, stopMaxAttempts
	}
	delay = c.backoff.delay(attempts, previous, c.random)
	if hint, ok := hintOf(err); ok && hint > delay {
		if hint > c.backoff.max {
			return 0, stopMaxDelay
		}
		delay = hint
	}
	deadline, hasDeadline := ctx.Deadline()
	if hasDeadline || c.maxDuration > 0 {
		resumeAt := time.Now().Add(delay)
		if hasDeadline && !resumeAt.Before(deadline) {
			return 0, stopDeadline
		}
		if c.maxDuration > 0 && resumeAt.After(start.Add(c.maxDuration)) {
			return 0, stopMaxDuration
		}
	}
	if c.budget != nil && !c.budget.TryWithdraw() {
		return 0, stopBudget
	}
	return delay, ""
}

func (c *core) isRetryable(err error) bool {
	if c.retryable != nil {
		return c.retryable(err)
	}
	return !IsPermanent(err)
}

// wait waits d, or until ctx ends, and returns ctx's error if it has
// ended. It uses a timer, so that a testing/synctest bubble's clock drives
// it.
func wait(ctx context.Context, d time.Duration) error {
	if d > 0 {
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
		}
	}
	return ctx.Err()
}
