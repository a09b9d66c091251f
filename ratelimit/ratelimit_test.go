package ratelimit_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/levee-go/levee/internal/testkit"
	"github.com/levee-go/levee/ratelimit"
	"github.com/levee-go/levee/resilience"
)

// Every timing rule is tested in a synctest bubble: time.Sleep moves the
// bubble's clock at once and exactly, so refills, spacing and waits are
// checked to the nanosecond.

func succeed(context.Context) error { return nil }

// retryAfter returns the RetryAfter of err, failing the test unless err is
// a rejection.
func retryAfter(t *testing.T, err error) time.Duration {
	t.Helper()
	require.ErrorIs(t, err, ratelimit.ErrLimited)
	var limited *ratelimit.LimitedError
	require.ErrorAs(t, err, &limited)
	return limited.RetryAfter()
}

func TestNew_RefusesBadSettingsNamingThem(t *testing.T) {
	t.Parallel()
	var nilTP *sdktrace.TracerProvider
	var nilMP *sdkmetric.MeterProvider
	key := func(context.Context) string { return "" }
	tests := []struct {
		name    string
		build   func()
		message string
	}{
		{"empty name", func() { ratelimit.New("", 1, time.Second) }, `levee: ratelimit.New(""): name must not be empty`},
		{"zero n", func() { ratelimit.New("api", 0, time.Second) }, `levee: ratelimit.New("api"): n: must be at least 1, got 0`},
		{"zero period", func() { ratelimit.New("api", 1, 0) }, `levee: ratelimit.New("api"): per: must be positive, got 0s`},
		{"negative period", func() { ratelimit.New("api", 1, -time.Second) }, `levee: ratelimit.New("api"): per: must be positive, got -1s`},
		{"zero burst", func() { ratelimit.New("api", 1, time.Second, ratelimit.WithBurst(0)) }, `levee: ratelimit.New("api"): WithBurst: must be at least 1, got 0`},
		{"smooth with a burst", func() { ratelimit.New("api", 1, time.Second, ratelimit.Smooth(), ratelimit.WithBurst(5)) }, `levee: ratelimit.New("api"): Smooth and WithBurst: a smooth limit has no burst; give one or the other`},
		{"negative wait", func() { ratelimit.New("api", 1, time.Second, ratelimit.WithMaxWait(-time.Millisecond)) }, `levee: ratelimit.New("api"): WithMaxWait: must not be negative, got -1ms`},
		{"nil key function", func() { ratelimit.New("api", 1, time.Second, ratelimit.WithKey(nil)) }, `levee: ratelimit.New("api"): WithKey: key must not be nil`},
		{"zero max keys", func() { ratelimit.New("api", 1, time.Second, ratelimit.WithKey(key), ratelimit.WithMaxKeys(0)) }, `levee: ratelimit.New("api"): WithMaxKeys: must be at least 1, got 0`},
		{"max keys without a key", func() { ratelimit.New("api", 1, time.Second, ratelimit.WithMaxKeys(10)) }, `levee: ratelimit.New("api"): WithMaxKeys: needs WithKey`},
		{"a burst too long to represent", func() { ratelimit.New("api", 1, 1000*time.Hour, ratelimit.WithBurst(1<<40)) }, `levee: ratelimit.New("api"): burst of 1099511627776 calls at one per 1000h0m0s, with WithMaxWait 0s: too long to represent`},
		{"nil option", func() { ratelimit.New("api", 1, time.Second, nil) }, `levee: ratelimit.New("api"): option 0 is nil`},
		{"nil tracer provider", func() { ratelimit.New("api", 1, time.Second, ratelimit.WithTracerProvider(nil)) }, `levee: ratelimit.New("api"): WithTracerProvider: provider must not be nil`},
		{"typed nil tracer provider", func() { ratelimit.New("api", 1, time.Second, ratelimit.WithTracerProvider(nilTP)) }, `levee: ratelimit.New("api"): WithTracerProvider: provider is a nil *trace.TracerProvider`},
		{"nil meter provider", func() { ratelimit.New("api", 1, time.Second, ratelimit.WithMeterProvider(nil)) }, `levee: ratelimit.New("api"): WithMeterProvider: provider must not be nil`},
		{"typed nil meter provider", func() { ratelimit.New("api", 1, time.Second, ratelimit.WithMeterProvider(nilMP)) }, `levee: ratelimit.New("api"): WithMeterProvider: provider is a nil *metric.MeterProvider`},
		{"every problem at once", func() { ratelimit.New("", 0, 0, ratelimit.WithMaxWait(-1)) }, `levee: ratelimit.New(""): name must not be empty; n: must be at least 1, got 0; per: must be positive, got 0s; WithMaxWait: must not be negative, got -1ns`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.message, testkit.PanicMessage(t, tt.build))
		})
	}
}

func TestLimiter_AdmitsABurstOfNThenRejectsWithTheTimeToTheNextToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New("api", 10, time.Second)
		assert.Equal(t, "api", l.Name())
		for i := range 10 {
			require.NoError(t, l.Call(t.Context(), succeed), "call %d of the burst", i+1)
		}
		ran := false
		err := l.Call(t.Context(), func(context.Context) error { ran = true; return nil })
		assert.False(t, ran, "a rejected call must not run")
		assert.Equal(t, 100*time.Millisecond, retryAfter(t, err))
		assert.EqualError(t, err, `levee: rate limit "api" exceeded, retry after 100ms`)
	})
}

func TestLimiter_SleepingExactlyRetryAfterGetsTheToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New("api", 10, time.Second)
		for range 10 {
			require.NoError(t, l.Call(t.Context(), succeed))
		}
		time.Sleep(30 * time.Millisecond)
		wait := retryAfter(t, l.Call(t.Context(), succeed))
		require.Equal(t, 70*time.Millisecond, wait)

		time.Sleep(wait - time.Nanosecond)
		assert.Equal(t, time.Nanosecond, retryAfter(t, l.Call(t.Context(), succeed)), "a nanosecond early")
		time.Sleep(time.Nanosecond)
		require.NoError(t, l.Call(t.Context(), succeed), "exactly RetryAfter later")
		assert.Equal(t, 100*time.Millisecond, retryAfter(t, l.Call(t.Context(), succeed)), "one token a tenth of a second")
	})
}

func TestLimiter_RetryAfterIsRoundedUpWhenThePeriodDoesNotDivide(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New("api", 3, time.Second, ratelimit.WithBurst(1))
		require.NoError(t, l.Call(t.Context(), succeed))
		wait := retryAfter(t, l.Call(t.Context(), succeed))
		assert.Equal(t, 333_333_334*time.Nanosecond, wait, "a third of a second, rounded up")
		time.Sleep(wait)
		require.NoError(t, l.Call(t.Context(), succeed))
	})
}

func TestLimiter_RefillsOneTokenPerIntervalUpToTheBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New("api", 10, time.Second, ratelimit.WithBurst(3))
		admit := func() int {
			n := 0
			for l.Call(t.Context(), succeed) == nil {
				n++
			}
			return n
		}
		assert.Equal(t, 3, admit(), "a full bucket of 3")
		time.Sleep(200 * time.Millisecond)
		assert.Equal(t, 2, admit(), "two tokens in 200ms")
		time.Sleep(time.Hour)
		assert.Equal(t, 3, admit(), "never more than the burst, however long it rests")
	})
}

func TestLimiter_SmoothSpacesCallsEvenly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New("api", 10, time.Second, ratelimit.Smooth())
		require.NoError(t, l.Call(t.Context(), succeed))
		assert.Equal(t, 100*time.Millisecond, retryAfter(t, l.Call(t.Context(), succeed)), "no burst: the next call is 100ms away")
		time.Sleep(time.Hour)
		require.NoError(t, l.Call(t.Context(), succeed))
		assert.Equal(t, 100*time.Millisecond, retryAfter(t, l.Call(t.Context(), succeed)), "not even after a rest")
	})
}

func TestLimiter_SmoothWithAWaitLetsCallersArrivingTogetherLeaveOneByOne(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New("api", 10, time.Second, ratelimit.Smooth(), ratelimit.WithMaxWait(time.Second))
		start := time.Now()
		var mu sync.Mutex
		var at []time.Duration
		var wg sync.WaitGroup
		for range 5 {
			wg.Go(func() {
				assert.NoError(t, l.Call(t.Context(), func(context.Context) error {
					mu.Lock()
					defer mu.Unlock()
					at = append(at, time.Since(start))
					return nil
				}))
			})
		}
		wg.Wait()
		assert.ElementsMatch(t, []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond, 400 * time.Millisecond}, at)
	})
}

func TestLimiter_WaitsForATokenThatComesWithinTheMaximumWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New("api", 10, time.Second, ratelimit.WithBurst(1), ratelimit.WithMaxWait(100*time.Millisecond))
		require.NoError(t, l.Call(t.Context(), succeed))
		start := time.Now()
		require.NoError(t, l.Call(t.Context(), succeed), "its token is exactly the maximum wait away")
		assert.Equal(t, 100*time.Millisecond, time.Since(start), "it waited for its token, no longer")
	})
}

func TestLimiter_RejectsAtOnceWhenTheTokenComesTooLate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New("api", 10, time.Second, ratelimit.WithBurst(1), ratelimit.WithMaxWait(99*time.Millisecond))
		require.NoError(t, l.Call(t.Context(), succeed))
		start := time.Now()
		wait := retryAfter(t, l.Call(t.Context(), succeed))
		assert.Zero(t, time.Since(start), "it did not wait for nothing")
		assert.Equal(t, 100*time.Millisecond, wait)

		// The token would come within the maximum wait, but not before
		// the caller's deadline (nor at it: its context is done then).
		time.Sleep(50 * time.Millisecond)
		for _, timeout := range []time.Duration{30 * time.Millisecond, 50 * time.Millisecond} {
			ctx, cancel := context.WithTimeout(t.Context(), timeout)
			start = time.Now()
			assert.Equal(t, 50*time.Millisecond, retryAfter(t, l.Call(ctx, succeed)), "deadline in %v", timeout)
			assert.Zero(t, time.Since(start))
			cancel()
		}
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond+time.Nanosecond)
		defer cancel()
		require.NoError(t, l.Call(ctx, succeed), "a deadline just after the token leaves time to use it")
	})
}

func TestLimiter_AWaiterWhoseContextEndsGivesItsTokenBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New("api", 10, time.Second, ratelimit.Smooth(), ratelimit.WithMaxWait(time.Second))
		require.NoError(t, l.Call(t.Context(), succeed))
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(30*time.Millisecond, cancel)
		start := time.Now()
		ran := false
		err := l.Call(ctx, func(context.Context) error { ran = true; return nil })
		assert.Same(t, context.Canceled, err, "not ErrLimited: the caller gave up")
		assert.False(t, ran)
		assert.Equal(t, 30*time.Millisecond, time.Since(start))

		start = time.Now()
		require.NoError(t, l.Call(t.Context(), succeed))
		assert.Equal(t, 70*time.Millisecond, time.Since(start), "the next caller gets the token given back, at its time")
	})
}

// endedCtx is a context whose Err reports it canceled once end is called,
// while its Done channel never closes: a waiter on it wakes only when its
// token comes, and then finds its context ended, as when a cancellation and
// the token come at the same moment.
type endedCtx struct {
	context.Context
	ended atomic.Bool
}

func (c *endedCtx) end() { c.ended.Store(true) }

func (c *endedCtx) Err() error {
	if c.ended.Load() {
		return context.Canceled
	}
	return nil
}

func TestLimiter_AWaiterWhoseContextHasEndedWhenItsTokenComesGivesItBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New("api", 10, time.Second, ratelimit.Smooth(), ratelimit.WithMaxWait(time.Second))
		require.NoError(t, l.Call(t.Context(), succeed))
		ctx := &endedCtx{Context: t.Context()}
		time.AfterFunc(50*time.Millisecond, ctx.end)
		ran := false
		start := time.Now()
		assert.Same(t, context.Canceled, l.Call(ctx, func(context.Context) error { ran = true; return nil }))
		assert.Equal(t, 100*time.Millisecond, time.Since(start), "it woke when its token came")
		assert.False(t, ran, "its caller had gone: it did not run")
		start = time.Now()
		require.NoError(t, l.Call(t.Context(), succeed))
		assert.Zero(t, time.Since(start), "the token it gave back is there at once")
	})
}

func TestLimiter_AWaiterCanceledBehindLaterReservationsDoesNotDoubleTheirTokens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New("api", 10, time.Second, ratelimit.Smooth(), ratelimit.WithMaxWait(time.Second))
		start := time.Now()
		require.NoError(t, l.Call(t.Context(), succeed)) // at 0
		ctx, cancel := context.WithCancel(t.Context())
		first := make(chan error, 1)
		go func() { first <- l.Call(ctx, succeed) }() // reserves 100ms
		synctest.Wait()
		second := make(chan time.Duration, 1)
		go func() { // reserves 200ms
			assert.NoError(t, l.Call(t.Context(), succeed))
			second <- time.Since(start)
		}()
		synctest.Wait()
		cancel()
		assert.Same(t, context.Canceled, <-first)
		// The canceled token is not given back: the second waiter holds
		// the one after it, and a caller now would otherwise share 200ms
		// with it.
		require.NoError(t, l.Call(t.Context(), succeed))
		assert.Equal(t, 300*time.Millisecond, time.Since(start))
		assert.Equal(t, 200*time.Millisecond, <-second)
	})
}

func TestLimiter_ACallWhoseContextIsDoneRunsNothingAndTakesNoToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New("api", 1, time.Second)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		ran := false
		assert.Same(t, context.Canceled, l.Call(ctx, func(context.Context) error { ran = true; return nil }))
		_, err := resilience.Wrap(func(context.Context) (int, error) { ran = true; return 1, nil }, ratelimit.Policy[int](l))(ctx)
		assert.Same(t, context.Canceled, err)
		assert.False(t, ran)
		require.NoError(t, l.Call(t.Context(), succeed), "the only token is still there")
	})
}

func TestLimiter_CallRefusesANilFunction(t *testing.T) {
	t.Parallel()
	l := ratelimit.New("api", 1, time.Second)
	assert.EqualError(t, l.Call(context.Background(), nil), "levee: ratelimit.Call: fn must not be nil")
	require.NoError(t, l.Call(context.Background(), succeed), "the refused call took no token")
}

func TestLimiter_ReturnsTheFunctionsResultUnchanged(t *testing.T) {
	t.Parallel()
	l := ratelimit.New("api", 10, time.Second)
	errNotFound := errors.New("not found")
	assert.Same(t, errNotFound, l.Call(context.Background(), func(context.Context) error { return errNotFound }))
	v, err := resilience.Do(context.Background(), func(context.Context) (string, error) { return "ok", nil }, ratelimit.Policy[string](l))
	require.NoError(t, err)
	assert.Equal(t, "ok", v)
}

func TestLimiter_OneBucketForEveryResultType(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New("api", 1, time.Second)
		getInt := resilience.Wrap(func(context.Context) (int, error) { return 7, nil }, ratelimit.Policy[int](l))
		getString := resilience.Wrap(func(context.Context) (string, error) { return "ok", nil }, ratelimit.Policy[string](l))
		v, err := getInt(t.Context())
		require.NoError(t, err)
		assert.Equal(t, 7, v)
		s, err := getString(t.Context())
		assert.Equal(t, time.Second, retryAfter(t, err), "the int call took the only token")
		assert.Empty(t, s)
	})
}

func TestPolicy_RefusesANilLimiter(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "levee: ratelimit.Policy: limiter must not be nil", testkit.PanicMessage(t, func() { ratelimit.Policy[int](nil) }))
}

func TestPolicy_IsATelemetrySourceWithTheLimitersNameAndProviders(t *testing.T) {
	t.Parallel()
	tp := tracenoop.NewTracerProvider()
	l := ratelimit.New("api", 1, time.Second, ratelimit.WithTracerProvider(tp))
	src, ok := ratelimit.Policy[int](l).(resilience.TelemetrySource)
	require.True(t, ok)
	assert.Equal(t, resilience.Telemetry{Name: "api", TracerProvider: tp}, src.Telemetry())
}

// admissionLog records when calls were admitted, in bubble time.
type admissionLog struct {
	mu    sync.Mutex
	start time.Time
	at    []time.Duration
}

func (a *admissionLog) record(context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.at = append(a.at, time.Since(a.start))
	return nil
}

// maxInWindow returns the most admissions in any window [s, s+width).
func (a *admissionLog) maxInWindow(width time.Duration) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	most, lo := 0, 0
	for hi := range a.at { // at is in order: admissions are recorded as they run
		for a.at[hi]-a.at[lo] >= width {
			lo++
		}
		most = max(most, hi-lo+1)
	}
	return most
}

// Hundreds of goroutines, with the race detector, hammering a limit of
// 100/s for 10 s of bubble time: no second ever admits more than 100 plus
// the burst, and the limit is reached, so the bound is not met by idling.
func TestLimiter_NeverAdmitsMoreThanTheRatePlusTheBurstInAnySecond(t *testing.T) {
	for _, tt := range []struct {
		name  string
		opts  []ratelimit.Option
		burst int
	}{
		{"burst of n", nil, 100},
		{"burst of 10", []ratelimit.Option{ratelimit.WithBurst(10)}, 10},
		{"smooth", []ratelimit.Option{ratelimit.Smooth()}, 1},
		{"waiting", []ratelimit.Option{ratelimit.WithMaxWait(50 * time.Millisecond)}, 100},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const goroutines, rate = 300, 100
				l := ratelimit.New("api", rate, time.Second, tt.opts...)
				log := &admissionLog{start: time.Now()}
				var wg sync.WaitGroup
				for g := range goroutines {
					wg.Go(func() {
						// Each goroutine calls every 1..30ms, staggered.
						pause := time.Duration(1+g%30) * time.Millisecond
						for time.Since(log.start) < 10*time.Second {
							err := l.Call(t.Context(), log.record)
							if err != nil && !errors.Is(err, ratelimit.ErrLimited) {
								assert.NoError(t, err)
								return
							}
							time.Sleep(pause)
						}
					})
				}
				wg.Wait()
				assert.LessOrEqual(t, log.maxInWindow(time.Second), rate+tt.burst, "admissions in one second")
				// Over the whole run: the burst, and one token an interval
				// (waiters admitted after the ten seconds included).
				span := log.at[len(log.at)-1] - log.at[0]
				assert.LessOrEqual(t, len(log.at), tt.burst+int(span/(time.Second/rate)), "admissions in %v", span)
				assert.GreaterOrEqual(t, len(log.at), 10*rate, "the limit was reached")
			})
		})
	}
}

func TestLimiter_AllocatesNothingWhenACallIsAdmitted(t *testing.T) {
	l := ratelimit.New("api", 1_000_000_000, time.Second)
	get := resilience.Wrap(func(context.Context) (int, error) { return 1, nil }, ratelimit.Policy[int](l))
	ctx := context.Background()
	assert.Zero(t, testing.AllocsPerRun(1000, func() { _ = l.Call(ctx, succeed) }))
	assert.Zero(t, testing.AllocsPerRun(1000, func() { _, _ = get(ctx) }))
}

// The test docs/limits.md shows.
func TestGeocoder_TheFourthCallWaitsItsTurn(t *testing.T) {
	geocode := succeed
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New("geocoder", 3, time.Minute, ratelimit.WithMaxWait(time.Minute))
		for range 3 {
			require.NoError(t, l.Call(t.Context(), geocode))
		}
		start := time.Now()
		require.NoError(t, l.Call(t.Context(), geocode))
		assert.Equal(t, 20*time.Second, time.Since(start)) // exactly one token's interval
	})
}
