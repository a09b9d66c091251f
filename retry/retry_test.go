package retry_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/internal/testkit"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/retry"
)

var (
	errDown      = errors.New("dependency down")
	errTransient = errors.New("transient")
)

// dependency is a guarded function that records when each attempt started
// (on the clock of the test's bubble) and answers from a script: the i-th
// attempt returns script[i], the last one again once the script runs out.
type dependency struct {
	mu       sync.Mutex
	start    time.Time
	attempts []time.Duration
	script   []error
}

func newDependency(script ...error) *dependency {
	return &dependency{start: time.Now(), script: script}
}

func (d *dependency) call(context.Context) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.attempts = append(d.attempts, time.Since(d.start))
	i := min(len(d.attempts), len(d.script)) - 1
	if i < 0 || d.script[i] == nil {
		return len(d.attempts), nil
	}
	return len(d.attempts), d.script[i]
}

func (d *dependency) calls() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.attempts)
}

// gaps are the times between the starts of successive attempts.
func (d *dependency) gaps() []time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	var gaps []time.Duration
	for i := 1; i < len(d.attempts); i++ {
		gaps = append(gaps, d.attempts[i]-d.attempts[i-1])
	}
	return gaps
}

// hinted is an error that asks to be retried after a while, as a 429 with
// Retry-After does.
type hinted struct{ after time.Duration }

func (e *hinted) Error() string             { return fmt.Sprintf("slow down for %v", e.after) }
func (e *hinted) RetryAfter() time.Duration { return e.after }

func TestRetry_FirstSuccessIsReturnedWithoutRetrying(t *testing.T) {
	t.Parallel()
	dep := newDependency(nil)
	v, err := resilience.Wrap(dep.call, retry.Policy[int]())(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 1, v)
	assert.Equal(t, 1, dep.calls())
}

func TestRetry_RetriesAFailingCallUntilItSucceeds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dep := newDependency(errDown, errDown, nil)
		v, err := resilience.Wrap(dep.call, retry.Policy[int]())(t.Context())
		require.NoError(t, err)
		assert.Equal(t, 3, v, "the third attempt's result")
		assert.Equal(t, 3, dep.calls())
	})
}

func TestRetry_ThreeAttemptsWithOneSecondDelaysTakeExactlyTwoSeconds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dep := newDependency(errDown)
		start := time.Now()
		_, err := resilience.Wrap(dep.call, retry.Policy[int](retry.WithDelay(time.Second)))(t.Context())
		require.ErrorIs(t, err, errDown)
		assert.Equal(t, 2*time.Second, time.Since(start))
		assert.Equal(t, []time.Duration{0, time.Second, 2 * time.Second}, dep.attempts)
	})
}

func TestRetry_GivesUpAfterMaxAttemptsSayingHowManyWereMade(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dep := newDependency(errDown)
		v, err := resilience.WrapWith(resilience.Telemetry{Name: "pricing"}, dep.call, retry.Policy[int](retry.WithMaxAttempts(4)))(t.Context())

		assert.Equal(t, 4, dep.calls())
		assert.Equal(t, 4, v, "the last attempt's result comes back with its error")
		var retryErr *retry.Error
		require.ErrorAs(t, err, &retryErr)
		assert.Equal(t, 4, retryErr.Attempts)
		assert.Equal(t, errDown, retryErr.Err)
		assert.ErrorIs(t, err, errDown)
		assert.NotErrorIs(t, err, retry.ErrBudgetExhausted)
		assert.Equal(t, `levee: retry "pricing": gave up after 4 attempts: dependency down`, err.Error())
	})
}

func TestRetry_MaxAttemptsOfOneNeverRetries(t *testing.T) {
	t.Parallel()
	dep := newDependency(errDown)
	_, err := resilience.Wrap(dep.call, retry.Policy[int](retry.WithMaxAttempts(1)))(t.Context())
	var retryErr *retry.Error
	require.ErrorAs(t, err, &retryErr)
	assert.Equal(t, 1, retryErr.Attempts)
	assert.Equal(t, 1, dep.calls())
}

func TestRetry_BackoffDrawsEachDelayUpToItsCeilingFromTheSeededSource(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const seed1, seed2 = 7, 11
		dep := newDependency(errDown)
		p := retry.Policy[int](
			retry.WithMaxAttempts(9),
			retry.WithBackoff(100*time.Millisecond, time.Second),
			retry.WithRand(rand.New(rand.NewPCG(seed1, seed2))))
		_, err := resilience.Wrap(dep.call, p)(t.Context())
		require.ErrorIs(t, err, errDown)

		// The k-th delay is drawn from [0, min(max, initial·2^(k-1))].
		ceilings := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000, 1000}
		same := rand.New(rand.NewPCG(seed1, seed2))
		var want []time.Duration
		for _, c := range ceilings {
			want = append(want, time.Duration(same.Int64N(int64(c*time.Millisecond)+1)))
		}
		assert.Equal(t, want, dep.gaps(), "the delays replay from the seed")
		for k, gap := range dep.gaps() {
			assert.LessOrEqual(t, gap, ceilings[k]*time.Millisecond, "delay %d", k+1)
		}
	})
}

func TestRetry_DefaultBackoffIsFullJitterFrom100msTo10s(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ceilings := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond,
			800 * time.Millisecond, 1600 * time.Millisecond, 3200 * time.Millisecond, 6400 * time.Millisecond,
			10 * time.Second, 10 * time.Second}
		var longest [9]time.Duration
		for range 50 {
			dep := newDependency(errDown)
			_, err := resilience.Wrap(dep.call, retry.Policy[int](retry.WithMaxAttempts(10)))(t.Context())
			require.ErrorIs(t, err, errDown)
			for k, gap := range dep.gaps() {
				require.LessOrEqual(t, gap, ceilings[k], "delay %d", k+1)
				longest[k] = max(longest[k], gap)
			}
		}
		// Fifty draws from [0, c] all below c/2 would be a one-in-10^15
		// event: the ceilings are not lower than these.
		for k, c := range ceilings {
			assert.Greater(t, longest[k], c/2, "delay %d", k+1)
		}
	})
}

func TestRetry_DecorrelatedJitterStaysBetweenInitialAndThreeTimesThePreviousDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const initial, ceiling = 100 * time.Millisecond, 2 * time.Second
		dep := newDependency(errDown)
		p := retry.Policy[int](
			retry.WithMaxAttempts(12),
			retry.WithDecorrelatedJitter(initial, ceiling),
			retry.WithRand(rand.New(rand.NewPCG(3, 4))))
		_, err := resilience.Wrap(dep.call, p)(t.Context())
		require.ErrorIs(t, err, errDown)

		previous := initial
		same := rand.New(rand.NewPCG(3, 4))
		for k, gap := range dep.gaps() {
			high := min(ceiling, 3*previous)
			assert.Equal(t, initial+time.Duration(same.Int64N(int64(high-initial)+1)), gap, "delay %d replays from the seed", k+1)
			assert.GreaterOrEqual(t, gap, initial, "delay %d", k+1)
			assert.LessOrEqual(t, gap, high, "delay %d", k+1)
			previous = gap
		}
		assert.Len(t, dep.gaps(), 11)
	})
}

func TestRetry_CancelDuringADelayReturnsAtOnceWithTheContextsAndTheLastError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go func() {
			time.Sleep(3 * time.Second)
			cancel()
		}()
		dep := newDependency(errDown)
		start := time.Now()
		_, err := resilience.WrapWith(resilience.Telemetry{Name: "pricing"}, dep.call, retry.Policy[int](retry.WithDelay(10*time.Second)))(ctx)

		assert.Equal(t, 3*time.Second, time.Since(start), "returns when the context ends, not at the end of the delay")
		assert.Equal(t, 1, dep.calls())
		assert.ErrorIs(t, err, context.Canceled)
		assert.ErrorIs(t, err, errDown)
		var retryErr *retry.Error
		require.ErrorAs(t, err, &retryErr)
		assert.Equal(t, 1, retryErr.Attempts)
		assert.Equal(t, `levee: retry "pricing": gave up waiting to retry after 1 attempt: context canceled: dependency down`, err.Error())
	})
}

func TestRetry_NeverWaitsPastTheCallersDeadline(t *testing.T) {
	for _, tt := range []struct {
		name     string
		deadline time.Duration
	}{
		{"the next attempt would start after the deadline", 1500 * time.Millisecond},
		{"the next attempt would start at the deadline", 2 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), tt.deadline)
				defer cancel()
				dep := newDependency(errDown)
				start := time.Now()
				_, err := resilience.Wrap(dep.call, retry.Policy[int](retry.WithDelay(time.Second), retry.WithMaxAttempts(5)))(ctx)

				assert.Equal(t, time.Second, time.Since(start), "stops after the second attempt, without waiting")
				assert.Equal(t, 2, dep.calls())
				assert.ErrorIs(t, err, errDown)
				assert.NotErrorIs(t, err, context.DeadlineExceeded, "the deadline has not passed")
				assert.NoError(t, ctx.Err())
				assert.Contains(t, err.Error(), "the next retry would start past the caller's deadline")
			})
		})
	}
}

func TestRetry_MaxDurationStopsTheRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dep := newDependency(errDown)
		slow := func(ctx context.Context) (int, error) {
			time.Sleep(300 * time.Millisecond) // each attempt takes time too
			return dep.call(ctx)
		}
		p := retry.Policy[int](retry.WithMaxDuration(2*time.Second), retry.WithDelay(500*time.Millisecond), retry.WithMaxAttempts(10))
		start := time.Now()
		_, err := resilience.Wrap(slow, p)(t.Context())

		// Attempts start at 0, 0.8s and 1.6s; the next would start at 2.4s.
		assert.Equal(t, 3, dep.calls())
		assert.Equal(t, 1900*time.Millisecond, time.Since(start))
		var retryErr *retry.Error
		require.ErrorAs(t, err, &retryErr)
		assert.Equal(t, 3, retryErr.Attempts)
		assert.Contains(t, err.Error(), "the next retry would start past the maximum duration")
	})
}

func TestRetry_MaxDurationAllowsARetryStartingExactlyAtTheLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dep := newDependency(errDown)
		p := retry.Policy[int](retry.WithMaxDuration(2*time.Second), retry.WithDelay(time.Second), retry.WithMaxAttempts(10))
		_, err := resilience.Wrap(dep.call, p)(t.Context())
		require.ErrorIs(t, err, errDown)
		assert.Equal(t, []time.Duration{0, time.Second, 2 * time.Second}, dep.attempts)
	})
}

func TestRetry_RetryAfterHintSetsALongerDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dep := newDependency(fmt.Errorf("GET /price: %w", &hinted{after: 3 * time.Second}), nil)
		v, err := resilience.Wrap(dep.call, retry.Policy[int](retry.WithDelay(time.Second)))(t.Context())
		require.NoError(t, err)
		assert.Equal(t, 2, v)
		assert.Equal(t, []time.Duration{0, 3 * time.Second}, dep.attempts, "the hint, found in the error's tree, is longer than the delay")
	})
}

func TestRetry_RetryAfterHintShorterThanTheDelayChangesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dep := newDependency(&hinted{after: 100 * time.Millisecond}, nil)
		_, err := resilience.Wrap(dep.call, retry.Policy[int](retry.WithDelay(time.Second)))(t.Context())
		require.NoError(t, err)
		assert.Equal(t, []time.Duration{0, time.Second}, dep.attempts)
	})
}

func TestRetry_RetryAfterHintThatCannotBeHonouredStopsAtOnce(t *testing.T) {
	tests := []struct {
		name     string
		hint     time.Duration
		opts     []retry.Option
		deadline time.Duration // 0: none
		message  string
	}{
		{"past the caller's deadline", 8 * time.Second, []retry.Option{retry.WithBackoff(time.Second, time.Minute)}, 5 * time.Second,
			"the next retry would start past the caller's deadline"},
		{"past the default maximum delay", 11 * time.Second, nil, 0,
			"the error asks to wait longer than the maximum delay"},
		{"past the backoff's maximum delay", 3 * time.Second, []retry.Option{retry.WithBackoff(time.Second, 2*time.Second)}, 0,
			"the error asks to wait longer than the maximum delay"},
		{"past WithDelay's 10s limit", 11 * time.Second, []retry.Option{retry.WithDelay(time.Second)}, 0,
			"the error asks to wait longer than the maximum delay"},
		{"past the maximum duration", 5 * time.Second, []retry.Option{retry.WithMaxDuration(4 * time.Second)}, 0,
			"the next retry would start past the maximum duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := t.Context()
				if tt.deadline > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tt.deadline)
					defer cancel()
				}
				hint := &hinted{after: tt.hint}
				dep := newDependency(hint, nil)
				start := time.Now()
				_, err := resilience.Wrap(dep.call, retry.Policy[int](tt.opts...))(ctx)

				assert.Zero(t, time.Since(start), "no sleeping for nothing")
				assert.Equal(t, 1, dep.calls())
				var got *hinted
				require.ErrorAs(t, err, &got, "the error that asked for the wait comes back")
				assert.Same(t, hint, got)
				assert.Contains(t, err.Error(), tt.message)
			})
		})
	}
}

func TestRetry_WithDelayWaitsForAHintUpTo10Seconds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dep := newDependency(&hinted{after: 10 * time.Second}, nil)
		_, err := resilience.Wrap(dep.call, retry.Policy[int](retry.WithDelay(time.Second)))(t.Context())
		require.NoError(t, err)
		assert.Equal(t, []time.Duration{0, 10 * time.Second}, dep.attempts)
	})
}

func TestRetry_OpenBreakerInsideSaysHowLongToWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pricing := breaker.New("pricing", breaker.WithFailureThreshold(1), breaker.WithOpenTimeout(2*time.Second))
		dep := newDependency(errDown, nil)
		start := time.Now()
		var attempts []time.Duration // as the retry makes them, rejected ones included
		recordAttempts := resilience.PolicyFunc[int](func(next resilience.Func[int]) resilience.Func[int] {
			return func(ctx context.Context) (int, error) {
				attempts = append(attempts, time.Since(start))
				return next(ctx)
			}
		})
		get := resilience.Wrap(dep.call,
			retry.Policy[int](retry.WithDelay(100*time.Millisecond), retry.WithMaxAttempts(4)),
			recordAttempts,
			breaker.Policy[int](pricing))
		_, err := get(t.Context())

		// The first attempt fails and opens the breaker until 2s; the
		// second, 100ms later, is rejected with RetryAfter 1.9s, so the
		// third waits until 2s. (At 2s the breaker's own timer and the
		// retry's fire together, in either order: the third attempt is the
		// probe, or is rejected once more and the fourth, 100ms later, is.)
		require.NoError(t, err)
		require.GreaterOrEqual(t, len(attempts), 3)
		assert.Equal(t, []time.Duration{0, 100 * time.Millisecond, 2 * time.Second}, attempts[:3])
		assert.Equal(t, 2, dep.calls(), "the dependency is not called while the breaker is open")
		assert.Equal(t, breaker.Closed, pricing.State())
	})
}

func TestRetry_OpenBreakerForLongerThanTheMaximumDelayStopsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pricing := breaker.New("pricing", breaker.WithFailureThreshold(1), breaker.WithOpenTimeout(time.Minute))
		dep := newDependency(errDown)
		get := resilience.Wrap(dep.call,
			retry.Policy[int](retry.WithDelay(100*time.Millisecond), retry.WithMaxAttempts(5)),
			breaker.Policy[int](pricing))
		start := time.Now()
		_, err := get(t.Context())

		assert.ErrorIs(t, err, breaker.ErrOpen)
		assert.Equal(t, 100*time.Millisecond, time.Since(start), "the rejection asks for 59.9s: no more attempts")
		var retryErr *retry.Error
		require.ErrorAs(t, err, &retryErr)
		assert.Equal(t, 2, retryErr.Attempts)
		assert.Equal(t, 1, dep.calls())
	})
}

func TestRetry_PermanentErrorsAreReturnedAtOnce(t *testing.T) {
	t.Parallel()
	permanent := retry.Permanent(errDown)
	dep := newDependency(fmt.Errorf("GET /price: %w", permanent))
	_, err := resilience.Wrap(dep.call, retry.Policy[int]())(t.Context())
	assert.Equal(t, 1, dep.calls())
	assert.ErrorIs(t, err, errDown)
	var retryErr *retry.Error
	assert.False(t, errors.As(err, &retryErr), "returned as it is: %v", err)
}

// notFound declares itself permanent: retrying will not make it appear.
type notFound struct{ id string }

func (e *notFound) Error() string   { return "no price for " + e.id }
func (e *notFound) Permanent() bool { return true }

// overloaded has a Permanent method that says no.
type overloaded struct{}

func (overloaded) Error() string   { return "overloaded" }
func (overloaded) Permanent() bool { return false }

func TestRetry_ErrorsPermanentByTheirTypeAreReturnedAtOnce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		err       error
		wantCalls int
	}{
		{"a type whose Permanent says true", &notFound{id: "42"}, 1},
		{"wrapped by fmt.Errorf", fmt.Errorf("lookup: %w", &notFound{id: "42"}), 1},
		{"joined with another error", errors.Join(errTransient, &notFound{id: "42"}), 1},
		{"a type whose Permanent says false", overloaded{}, 3},
		{"a plain error", errTransient, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dep := newDependency(tt.err)
			_, err := resilience.Wrap(dep.call, retry.Policy[int](retry.WithDelay(0)))(t.Context())
			assert.ErrorIs(t, err, tt.err)
			assert.Equal(t, tt.wantCalls, dep.calls())
		})
	}
}

func TestPermanent_WrapsTheErrorForIsAndAsAndKeepsItsMessage(t *testing.T) {
	t.Parallel()
	assert.NoError(t, retry.Permanent(nil))
	nf := &notFound{id: "7"}
	err := retry.Permanent(fmt.Errorf("lookup: %w", nf))
	assert.Equal(t, "lookup: no price for 7", err.Error())
	var got *notFound
	require.ErrorAs(t, err, &got)
	assert.Same(t, nf, got)
	assert.True(t, retry.IsPermanent(err))
	assert.True(t, retry.IsPermanent(fmt.Errorf("outer: %w", err)))
	assert.False(t, retry.IsPermanent(errDown))
	assert.False(t, retry.IsPermanent(nil))
	assert.False(t, retry.IsPermanent(overloaded{}))
}

func TestRetry_IfDecidesWhichErrorsAreRetried(t *testing.T) {
	t.Parallel()
	onlyTransient := retry.If(func(err error) bool { return errors.Is(err, errTransient) })
	tests := []struct {
		name      string
		err       error
		wantCalls int
	}{
		{"an error the predicate accepts", errTransient, 3},
		{"an error it declines", errDown, 1},
		{"a permanent error it accepts: If replaces the default", retry.Permanent(errTransient), 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dep := newDependency(tt.err)
			_, err := resilience.Wrap(dep.call, retry.Policy[int](retry.WithDelay(0), onlyTransient))(t.Context())
			assert.ErrorIs(t, err, tt.err)
			assert.Equal(t, tt.wantCalls, dep.calls())
		})
	}
}

func TestRetry_TheCallersContextEndingIsNeverRetried(t *testing.T) {
	t.Parallel()
	retryEverything := retry.If(func(error) bool { return true })
	ctx, cancel := context.WithCancel(t.Context())
	calls := 0
	endsItsCaller := func(ctx context.Context) (int, error) {
		calls++
		cancel()
		return 0, fmt.Errorf("GET /price: %w", ctx.Err())
	}
	_, err := resilience.Wrap(endsItsCaller, retry.Policy[int](retry.WithDelay(0), retryEverything))(ctx)
	assert.Equal(t, 1, calls)
	assert.ErrorIs(t, err, context.Canceled)
	var retryErr *retry.Error
	assert.False(t, errors.As(err, &retryErr), "the attempt's error, as it is: %v", err)
}

func TestRetry_ACallWhoseContextIsDoneRunsNothing(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	dep := newDependency(nil)
	_, err := resilience.Wrap(dep.call, retry.Policy[int]())(ctx)
	assert.Equal(t, context.Canceled, err)
	assert.Zero(t, dep.calls())
}

func TestRetry_ATimeoutInsideGivesEachAttemptItsOwnDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var deadlines []time.Duration
		start := time.Now()
		hangs := func(ctx context.Context) (int, error) {
			deadline, _ := ctx.Deadline()
			deadlines = append(deadlines, deadline.Sub(start))
			<-ctx.Done()
			return 0, ctx.Err()
		}
		get := resilience.Wrap(hangs, retry.Policy[int](retry.WithDelay(0)), resilience.Timeout[int](time.Second))
		_, err := get(t.Context())

		assert.ErrorIs(t, err, resilience.ErrTimeout, "each attempt timed out, and the timeouts were retried")
		assert.Equal(t, []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}, deadlines)
		assert.Equal(t, 3*time.Second, time.Since(start))
	})
}

func TestRetry_APanicReachesTheCallerUnchanged(t *testing.T) {
	t.Parallel()
	calls := 0
	panics := func(context.Context) (int, error) {
		calls++
		if calls == 2 {
			panic("boom")
		}
		return 0, errDown
	}
	get := resilience.Wrap(panics, retry.Policy[int](retry.WithDelay(0)))
	assert.PanicsWithValue(t, "boom", func() { _, _ = get(t.Context()) })
	assert.Equal(t, 2, calls)
}

// panickyHint is an error whose RetryAfter method panics.
type panickyHint struct{}

func (panickyHint) Error() string             { return "panicky" }
func (panickyHint) RetryAfter() time.Duration { panic("no hint today") }
func (panickyHint) Permanent() bool           { panic("no opinion either") }

func TestRetry_AnErrorsMethodsThatPanicAreNoHintAndNoVerdict(t *testing.T) {
	otelErrs := testkit.CaptureOTelErrors(t)
	synctest.Test(t, func(t *testing.T) {
		dep := newDependency(panickyHint{}, nil)
		_, err := resilience.Wrap(dep.call, retry.Policy[int](retry.WithDelay(time.Second)))(t.Context())
		require.NoError(t, err, "retried: the panicking Permanent method counts as false")
		assert.Equal(t, []time.Duration{0, time.Second}, dep.attempts, "the panicking RetryAfter method gives no hint")
	})
	reported := otelErrs.Take()
	require.Len(t, reported, 2)
	assert.ErrorContains(t, errors.Join(reported...), "no hint today")
	assert.ErrorContains(t, errors.Join(reported...), "no opinion either")
}

func TestRetry_ReportsUnderItsPipelinesNameInErrors(t *testing.T) {
	t.Parallel()
	dep := newDependency(errDown)
	get := resilience.WrapWith(resilience.Telemetry{Name: "pricing"}, dep.call, retry.Policy[int](retry.WithDelay(0), retry.WithMaxAttempts(2)))
	_, err := get(t.Context())
	assert.EqualError(t, err, `levee: retry "pricing": gave up after 2 attempts: dependency down`)
}

func TestRetry_OnePolicyServesPipelinesOfItsType(t *testing.T) {
	t.Parallel()
	p := retry.Policy[int](retry.WithDelay(0))
	a, b := newDependency(errDown, nil), newDependency(errDown, errDown, nil)
	va, errA := resilience.Wrap(a.call, p)(t.Context())
	vb, errB := resilience.Wrap(b.call, p)(t.Context())
	require.NoError(t, errA)
	require.NoError(t, errB)
	assert.Equal(t, 2, va)
	assert.Equal(t, 3, vb)
}

func TestRetry_NamedReportsUnderItsOwnName(t *testing.T) {
	t.Parallel()
	dep := newDependency(errDown)
	get := resilience.WrapWith(resilience.Telemetry{Name: "checkout"}, dep.call,
		resilience.Named("pricing-retry", retry.Policy[int](retry.WithDelay(0), retry.WithMaxAttempts(2))))
	_, err := get(t.Context())
	assert.EqualError(t, err, `levee: retry "pricing-retry": gave up after 2 attempts: dependency down`)

	_, err = retry.Policy[int](retry.WithDelay(0), retry.WithMaxAttempts(2)).Apply(dep.call)(t.Context())
	assert.EqualError(t, err, `levee: retry "retry": gave up after 2 attempts: dependency down`, "applied outside a pipeline")
}
