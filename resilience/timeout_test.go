package resilience_test

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/levee-go/levee/internal/testkit"
	"github.com/levee-go/levee/resilience"
)

// short is the deadline of tests where a timeout must fire: long enough to be
// a real deadline, short enough that nothing waits noticeably.
const short = 2 * time.Millisecond

// queryError is a user's own error type, wrapping what caused it.
type queryError struct{ cause error }

func (e *queryError) Error() string { return "query failed: " + e.cause.Error() }
func (e *queryError) Unwrap() error { return e.cause }

// modes are the two ways a Timeout can run a function.
var modes = []struct {
	name string
	opts []resilience.TimeoutOption
}{
	{"cooperative", nil},
	{"ReturnAtDeadline", []resilience.TimeoutOption{resilience.ReturnAtDeadline()}},
}

func waitForDeadline(ctx context.Context) (int, error) {
	<-ctx.Done()
	return 0, ctx.Err()
}

func TestTimeout_GivesTheCallADeadlineDFromItsStart(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			var deadline time.Time
			var hasDeadline bool
			before := time.Now()
			_, err := resilience.Do(context.Background(), func(ctx context.Context) (int, error) {
				deadline, hasDeadline = ctx.Deadline()
				return 0, nil
			}, resilience.Timeout[int](time.Hour, mode.opts...))
			after := time.Now()

			require.NoError(t, err)
			require.True(t, hasDeadline)
			assert.False(t, deadline.Before(before.Add(time.Hour)))
			assert.False(t, deadline.After(after.Add(time.Hour)))
		})
	}
}

func TestTimeout_KeepsAnEarlierCallerDeadline(t *testing.T) {
	want := time.Now().Add(time.Minute)
	ctx, cancel := context.WithDeadline(context.Background(), want)
	defer cancel()
	var got time.Time
	_, err := resilience.Do(ctx, func(ctx context.Context) (int, error) {
		got, _ = ctx.Deadline()
		return 0, nil
	}, resilience.Timeout[int](time.Hour))
	require.NoError(t, err)
	assert.True(t, got.Equal(want))
}

func TestTimeout_DeadlineReturnsErrTimeoutWrappingTheFunctionsError(t *testing.T) {
	get := resilience.Wrap(func(ctx context.Context) (int, error) {
		<-ctx.Done()
		return 5, &queryError{cause: ctx.Err()}
	}, resilience.Timeout[int](short, resilience.WithName("prices")))

	start := time.Now()
	v, err := get(context.Background())

	assert.GreaterOrEqual(t, time.Since(start), short)
	require.ErrorIs(t, err, resilience.ErrTimeout)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	var qe *queryError
	require.ErrorAs(t, err, &qe, "the function's own error is still reachable")
	assert.Equal(t, "levee: timeout \"prices\" exceeded after 2ms: query failed: context deadline exceeded", err.Error())
	assert.Equal(t, 5, v, "the function's value comes back with the error")
	var timeout interface{ Timeout() bool }
	require.ErrorAs(t, err, &timeout)
	assert.True(t, timeout.Timeout())
	var typed interface{ ErrorType() string }
	require.ErrorAs(t, err, &typed)
	assert.Equal(t, "timeout", typed.ErrorType(), "named for telemetry")
}

func TestTimeout_DeadlineErrorMessageDoesNotRepeatTheContextError(t *testing.T) {
	_, err := resilience.Do(context.Background(), waitForDeadline, resilience.Timeout[int](short))
	require.ErrorIs(t, err, resilience.ErrTimeout)
	assert.Equal(t, "levee: timeout \""+resilience.DefaultTimeoutName+"\" exceeded after 2ms", err.Error())
}

func TestTimeout_DeadlineMatchesErrTimeoutInEitherMode(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			_, err := resilience.Do(context.Background(), waitForDeadline, resilience.Timeout[int](short, mode.opts...))
			assert.ErrorIs(t, err, resilience.ErrTimeout)
			assert.ErrorIs(t, err, context.DeadlineExceeded)
		})
	}
}

func TestTimeout_CallerContextEndingFirstReturnsItsErrorUnchanged(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name+"/canceled", func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			_, err := resilience.Do(ctx, func(ctx context.Context) (int, error) {
				cancel() // the caller gives up while the call runs
				return waitForDeadline(ctx)
			}, resilience.Timeout[int](time.Hour, mode.opts...))

			assert.Equal(t, context.Canceled, err)
			assert.NotErrorIs(t, err, resilience.ErrTimeout)
		})
		t.Run(mode.name+"/caller deadline", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), short)
			defer cancel()
			_, err := resilience.Do(ctx, waitForDeadline, resilience.Timeout[int](time.Hour, mode.opts...))

			assert.Equal(t, context.DeadlineExceeded, err, "the caller's deadline, not the policy's")
			assert.NotErrorIs(t, err, resilience.ErrTimeout)
		})
	}
}

func TestTimeout_SuccessAfterTheDeadlineStaysSuccess(t *testing.T) {
	v, err := resilience.Do(context.Background(), func(ctx context.Context) (int, error) {
		<-ctx.Done()
		return 42, nil
	}, resilience.Timeout[int](short))

	require.NoError(t, err)
	assert.Equal(t, 42, v)
}

func TestTimeout_ResultBeforeTheDeadlinePassesThroughUnchanged(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			get := resilience.Wrap(func(context.Context) (int, error) { return 9, errBoom }, resilience.Timeout[int](time.Hour, mode.opts...))
			v, err := get(context.Background())
			assert.Same(t, errBoom, err)
			assert.Equal(t, 9, v)

			ok := resilience.Wrap(func(context.Context) (int, error) { return 10, nil }, resilience.Timeout[int](time.Hour, mode.opts...))
			v, err = ok(context.Background())
			assert.NoError(t, err)
			assert.Equal(t, 10, v)
		})
	}
}

func TestTimeout_PanicsOnInvalidSettingsNamingThem(t *testing.T) {
	tests := []struct {
		name string
		d    time.Duration
		opts []resilience.TimeoutOption
		want []string
	}{
		{"zero d", 0, nil, []string{"d: the timeout must be positive, got 0s"}},
		{"negative d", -time.Second, nil, []string{"d: the timeout must be positive, got -1s"}},
		{"empty name", time.Second, []resilience.TimeoutOption{resilience.WithName("")}, []string{"WithName"}},
		{"nil option", time.Second, []resilience.TimeoutOption{resilience.ReturnAtDeadline(), nil}, []string{"option 1 is nil"}},
		{"nil tracer provider", time.Second, []resilience.TimeoutOption{resilience.WithTracerProvider(nil)}, []string{"WithTracerProvider"}},
		{"nil meter provider", time.Second, []resilience.TimeoutOption{resilience.WithMeterProvider(nil)}, []string{"WithMeterProvider"}},
		{"every problem at once", 0, []resilience.TimeoutOption{resilience.WithName("")}, []string{"d:", "WithName"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := testkit.PanicMessage(t, func() { resilience.Timeout[int](tt.d, tt.opts...) })
			assert.Contains(t, msg, "levee: resilience.Timeout: ")
			for _, want := range tt.want {
				assert.Contains(t, msg, want)
			}
		})
	}
}

func TestTimeout_OnePolicyMayGuardManyPipelines(t *testing.T) {
	timeout := resilience.Timeout[int](short)
	fast := resilience.Wrap(func(context.Context) (int, error) { return 1, nil }, timeout)
	slow := resilience.Wrap(waitForDeadline, timeout)

	_, err := slow(context.Background())
	assert.ErrorIs(t, err, resilience.ErrTimeout)
	v, err := fast(context.Background())
	assert.NoError(t, err)
	assert.Equal(t, 1, v)
}

func TestErrTimeout_MatchesDeadlineExceeded(t *testing.T) {
	assert.ErrorIs(t, resilience.ErrTimeout, context.DeadlineExceeded)
	assert.NotErrorIs(t, resilience.ErrTimeout, context.Canceled)
	assert.Equal(t, "levee: timeout exceeded", resilience.ErrTimeout.Error())
	var timeout interface{ Timeout() bool }
	require.ErrorAs(t, resilience.ErrTimeout, &timeout)
	assert.True(t, timeout.Timeout())
	var typed interface{ ErrorType() string }
	require.ErrorAs(t, resilience.ErrTimeout, &typed)
	assert.Equal(t, "timeout", typed.ErrorType())
}

// --- ReturnAtDeadline: functions that ignore their context ---

// stubborn returns a function that ignores its context: it signals started,
// waits for release, returns 99 and closes finished.
func stubborn() (fn resilience.Func[int], started <-chan struct{}, release func(), finished <-chan struct{}) {
	startedCh := make(chan struct{})
	releaseCh := make(chan struct{})
	finishedCh := make(chan struct{})
	fn = func(context.Context) (int, error) {
		defer close(finishedCh)
		close(startedCh)
		<-releaseCh
		return 99, nil
	}
	return fn, startedCh, func() { close(releaseCh) }, finishedCh
}

func TestReturnAtDeadline_ReturnsAtTheDeadlineAndDropsTheLateResult(t *testing.T) {
	ignoreExisting := goleak.IgnoreCurrent()
	fn, _, release, finished := stubborn()
	get := resilience.Wrap(fn, resilience.Timeout[int](short, resilience.ReturnAtDeadline()))

	start := time.Now()
	v, err := get(context.Background())
	elapsed := time.Since(start)

	require.ErrorIs(t, err, resilience.ErrTimeout)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Zero(t, v, "the result is dropped")
	assert.GreaterOrEqual(t, elapsed, short)
	assert.Less(t, elapsed, time.Second, "the caller did not wait for the function")

	release()
	select {
	case <-finished:
	case <-time.After(time.Second):
		t.Fatal("the abandoned function did not finish once released")
	}
	goleak.VerifyNone(t, ignoreExisting) // the goroutine that ran it has ended
}

func TestReturnAtDeadline_CallerCancelingFirstReturnsItsError(t *testing.T) {
	ignoreExisting := goleak.IgnoreCurrent()
	fn, started, release, _ := stubborn()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel()
	}()

	v, err := resilience.Do(ctx, fn, resilience.Timeout[int](time.Hour, resilience.ReturnAtDeadline()))

	assert.Equal(t, context.Canceled, err)
	assert.Zero(t, v)
	release()
	goleak.VerifyNone(t, ignoreExisting)
}

func TestReturnAtDeadline_PanicWhileTheCallerWaitsRepanicsTheSameValue(t *testing.T) {
	value := &struct{ reason string }{"kaboom"}
	get := resilience.Wrap(func(context.Context) (int, error) { panic(value) },
		resilience.Timeout[int](time.Hour, resilience.ReturnAtDeadline()))

	var recovered any
	func() {
		defer func() { recovered = recover() }()
		_, _ = get(context.Background())
	}()

	assert.Same(t, value, recovered)
}

func TestReturnAtDeadline_GoexitInTheFunctionBecomesAnError(t *testing.T) {
	_, err := resilience.Do(context.Background(), func(context.Context) (int, error) {
		runtime.Goexit()
		return 0, nil
	}, resilience.Timeout[int](time.Hour, resilience.ReturnAtDeadline()))

	require.Error(t, err)
	assert.Contains(t, err.Error(), "Goexit")
	assert.NotErrorIs(t, err, resilience.ErrTimeout)
}

func TestReturnAtDeadline_PanicAfterAbandonmentDoesNotCrashTheProcess(t *testing.T) {
	ignoreExisting := goleak.IgnoreCurrent()
	released := make(chan struct{})
	get := resilience.Wrap(func(context.Context) (int, error) {
		<-released
		panic("too late")
	}, resilience.Timeout[int](short, resilience.ReturnAtDeadline()))

	_, err := get(context.Background())
	require.ErrorIs(t, err, resilience.ErrTimeout)

	close(released)
	goleak.VerifyNone(t, ignoreExisting) // recovered and reported, not crashed
}

func TestReturnAtDeadline_ErrorAfterTheDeadlineIsATimeout(t *testing.T) {
	// A function that honours its context under ReturnAtDeadline: whichever
	// of its return and the deadline the policy sees first, the caller gets
	// a timeout, not the context's bare error.
	for range 20 {
		_, err := resilience.Do(context.Background(), func(ctx context.Context) (int, error) {
			<-ctx.Done()
			return 0, errors.Join(errBoom, ctx.Err())
		}, resilience.Timeout[int](time.Millisecond, resilience.ReturnAtDeadline()))
		require.ErrorIs(t, err, resilience.ErrTimeout)
	}
}
