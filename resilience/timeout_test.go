package resilience_test

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/levee-go/levee/internal/testkit"
	"github.com/levee-go/levee/resilience"
)

// short is the deadline of tests where a timeout must fire. Most of them run
// in a synctest bubble, where it passes at once and exactly; the few on real
// time wait no more than that.
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
			synctest.Test(t, func(t *testing.T) {
				var deadline time.Time
				var hasDeadline bool
				want := time.Now().Add(time.Hour)
				_, err := resilience.Do(context.Background(), func(ctx context.Context) (int, error) {
					deadline, hasDeadline = ctx.Deadline()
					return 0, nil
				}, resilience.Timeout[int](time.Hour, mode.opts...))

				require.NoError(t, err)
				require.True(t, hasDeadline)
				assert.Equal(t, want, deadline, "d from the call's start, on the bubble's clock")
			})
		})
	}
}

func TestTimeout_KeepsAnEarlierCallerDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		want := time.Now().Add(time.Minute)
		ctx, cancel := context.WithDeadline(context.Background(), want)
		defer cancel()
		var got time.Time
		_, err := resilience.Do(ctx, func(ctx context.Context) (int, error) {
			got, _ = ctx.Deadline()
			return 0, nil
		}, resilience.Timeout[int](time.Hour))
		require.NoError(t, err)
		assert.Equal(t, want, got)
	})
}

func TestTimeout_DeadlineReturnsErrTimeoutWrappingTheFunctionsError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		get := resilience.WrapWith(resilience.Telemetry{Name: "prices"}, func(ctx context.Context) (int, error) {
			<-ctx.Done()
			return 5, &queryError{cause: ctx.Err()}
		}, resilience.Timeout[int](short))

		start := time.Now()
		v, err := get(context.Background())

		assert.Equal(t, short, time.Since(start), "the call ends at its deadline")
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
	})
}

// The message names the Timeout: by its default name when applied alone,
// by the guarded function's name in a pipeline given no name (Do builds
// one); either way it does not repeat the context's error.
func TestTimeout_DeadlineErrorMessageDoesNotRepeatTheContextError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, err := resilience.Timeout[int](short).Apply(waitForDeadline)(context.Background())
		require.ErrorIs(t, err, resilience.ErrTimeout)
		assert.Equal(t, "levee: timeout \""+resilience.DefaultTimeoutName+"\" exceeded after 2ms", err.Error())

		_, err = resilience.Do(context.Background(), waitForDeadline, resilience.Timeout[int](short))
		require.ErrorIs(t, err, resilience.ErrTimeout)
		assert.Equal(t, "levee: timeout \"github.com/levee-go/levee/resilience_test.waitForDeadline\" exceeded after 2ms", err.Error())
	})
}

func TestTimeout_DeadlineMatchesErrTimeoutInEitherMode(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, err := resilience.Do(context.Background(), waitForDeadline, resilience.Timeout[int](short, mode.opts...))
				assert.ErrorIs(t, err, resilience.ErrTimeout)
				assert.ErrorIs(t, err, context.DeadlineExceeded)
			})
		})
	}
}

func TestTimeout_CallerContextEndingFirstReturnsItsErrorUnchanged(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name+"/canceled", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				_, err := resilience.Do(ctx, func(ctx context.Context) (int, error) {
					cancel() // the caller gives up while the call runs
					return waitForDeadline(ctx)
				}, resilience.Timeout[int](time.Hour, mode.opts...))

				assert.Equal(t, context.Canceled, err)
				assert.NotErrorIs(t, err, resilience.ErrTimeout)
			})
		})
		t.Run(mode.name+"/caller deadline", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), short)
				defer cancel()
				_, err := resilience.Do(ctx, waitForDeadline, resilience.Timeout[int](time.Hour, mode.opts...))

				assert.Equal(t, context.DeadlineExceeded, err, "the caller's deadline, not the policy's")
				assert.NotErrorIs(t, err, resilience.ErrTimeout)
			})
		})
	}
}

func TestTimeout_SuccessAfterTheDeadlineStaysSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		v, err := resilience.Do(context.Background(), func(ctx context.Context) (int, error) {
			<-ctx.Done()
			return 42, nil
		}, resilience.Timeout[int](short))

		require.NoError(t, err)
		assert.Equal(t, 42, v)
	})
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

// The name and the providers are no longer Timeout's options: they are the
// pipeline's (WrapWith, Named), whose own tests check their refusals.
func TestTimeout_PanicsOnInvalidSettingsNamingThem(t *testing.T) {
	tests := []struct {
		name string
		d    time.Duration
		opts []resilience.TimeoutOption
		want []string
	}{
		{"zero d", 0, nil, []string{"d: the timeout must be positive, got 0s"}},
		{"negative d", -time.Second, nil, []string{"d: the timeout must be positive, got -1s"}},
		{"nil option", time.Second, []resilience.TimeoutOption{resilience.ReturnAtDeadline(), nil}, []string{"option 1 is nil"}},
		{"every problem at once", 0, []resilience.TimeoutOption{nil}, []string{"d:", "option 0 is nil"}},
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

// One Timeout value may guard many pipelines; each reports under its own
// pipeline's name.
func TestTimeout_OnePolicyMayGuardManyPipelines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		timeout := resilience.Timeout[int](short)
		fast := resilience.WrapWith(resilience.Telemetry{Name: "fast"}, func(context.Context) (int, error) { return 1, nil }, timeout)
		slow := resilience.WrapWith(resilience.Telemetry{Name: "slow"}, waitForDeadline, timeout)

		_, err := slow(context.Background())
		assert.ErrorIs(t, err, resilience.ErrTimeout)
		assert.Contains(t, err.Error(), `timeout "slow"`)
		v, err := fast(context.Background())
		assert.NoError(t, err)
		assert.Equal(t, 1, v)
	})
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
	synctest.Test(t, func(t *testing.T) {
		ignoreExisting := goleak.IgnoreCurrent()
		fn, _, release, finished := stubborn()
		get := resilience.Wrap(fn, resilience.Timeout[int](short, resilience.ReturnAtDeadline()))

		start := time.Now()
		v, err := get(context.Background())

		require.ErrorIs(t, err, resilience.ErrTimeout)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Zero(t, v, "the result is dropped")
		assert.Equal(t, short, time.Since(start), "the caller returned at the deadline, without waiting for the function")
		select {
		case <-finished:
			t.Fatal("the function finished before it was released")
		default:
		}

		release()
		<-finished
		synctest.Wait()
		goleak.VerifyNone(t, ignoreExisting) // the goroutine that ran it has ended
	})
}

func TestReturnAtDeadline_CallerCancelingFirstReturnsItsError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ignoreExisting := goleak.IgnoreCurrent()
		fn, started, release, finished := stubborn()
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-started
			cancel()
		}()

		v, err := resilience.Do(ctx, fn, resilience.Timeout[int](time.Hour, resilience.ReturnAtDeadline()))

		assert.Equal(t, context.Canceled, err)
		assert.Zero(t, v)
		release()
		<-finished
		synctest.Wait()
		goleak.VerifyNone(t, ignoreExisting)
	})
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
	synctest.Test(t, func(t *testing.T) {
		ignoreExisting := goleak.IgnoreCurrent()
		released := make(chan struct{})
		get := resilience.Wrap(func(context.Context) (int, error) {
			<-released
			panic("too late")
		}, resilience.Timeout[int](short, resilience.ReturnAtDeadline()))

		_, err := get(context.Background())
		require.ErrorIs(t, err, resilience.ErrTimeout)

		close(released)
		synctest.Wait()
		goleak.VerifyNone(t, ignoreExisting) // recovered and reported, not crashed
	})
}

// On real time, not in a bubble: the race between the function's return and
// the deadline is what is tested, and the scheduler must be free to run it
// either way.
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
