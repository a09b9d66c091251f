package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/internal/fakeclock"
	"github.com/levee-go/levee/internal/testkit"
)

var (
	errBoom     = errors.New("boom")
	errNotFound = errors.New("not found")
)

// newBreaker returns a breaker named "dep" reading a fake clock, with the
// default threshold (3) and open timeout (30s) unless opts say otherwise.
func newBreaker(t *testing.T, opts ...breaker.Option) (*breaker.Breaker, *fakeclock.Clock) {
	t.Helper()
	clock := fakeclock.New()
	return breaker.New("dep", append([]breaker.Option{breaker.WithClock(clock.Now)}, opts...)...), clock
}

// counter is a guarded function that counts its runs and returns err.
type counter struct {
	runs atomic.Int64
	err  error
}

func (c *counter) call(context.Context) error {
	c.runs.Add(1)
	return c.err
}

func succeed(context.Context) error { return nil }
func fail(context.Context) error    { return errBoom }

// trip fails the breaker's threshold of calls (3) so that it opens.
func trip(t *testing.T, b *breaker.Breaker) {
	t.Helper()
	for range breaker.DefaultFailureThreshold {
		require.ErrorIs(t, b.Call(context.Background(), fail), errBoom)
	}
	require.Equal(t, breaker.Open, b.State())
}

// toHalfOpen opens the breaker and lets its open timeout pass.
func toHalfOpen(t *testing.T, b *breaker.Breaker, clock *fakeclock.Clock) {
	t.Helper()
	trip(t, b)
	clock.Advance(breaker.DefaultOpenTimeout)
	require.Equal(t, breaker.HalfOpen, b.State())
}

// requireOpenError asserts that err is a rejection and returns it.
func requireOpenError(t *testing.T, err error) *breaker.OpenError {
	t.Helper()
	require.ErrorIs(t, err, breaker.ErrOpen)
	var openErr *breaker.OpenError
	require.ErrorAs(t, err, &openErr)
	return openErr
}

// recordChanges returns a listener option and a function returning the
// changes it has seen so far.
func recordChanges() (breaker.Option, func() []breaker.StateChange) {
	var mu sync.Mutex
	var changes []breaker.StateChange
	listen := breaker.WithStateChangeListener(func(c breaker.StateChange) {
		mu.Lock()
		defer mu.Unlock()
		changes = append(changes, c)
	})
	return listen, func() []breaker.StateChange {
		mu.Lock()
		defer mu.Unlock()
		return append([]breaker.StateChange(nil), changes...)
	}
}

func edges(changes []breaker.StateChange) []string {
	out := make([]string, len(changes))
	for i, c := range changes {
		out[i] = c.From.String() + "->" + c.To.String()
	}
	return out
}

// --- The guide's four ---

func TestBreaker_LetsCallsThroughWhileClosed(t *testing.T) {
	b, _ := newBreaker(t)
	fn := &counter{}

	for range 10 {
		require.NoError(t, b.Call(context.Background(), fn.call))
	}

	assert.Equal(t, int64(10), fn.runs.Load())
	assert.Equal(t, breaker.Closed, b.State())
	assert.Equal(t, breaker.Counts{Success: 10}, b.Counts())
	assert.Equal(t, "dep", b.Name())
}

func TestBreaker_ReturnsTheFunctionsErrorUnchanged(t *testing.T) {
	b, _ := newBreaker(t)
	err := b.Call(context.Background(), fail)
	assert.Same(t, errBoom, err)
}

func TestBreaker_OpensAfterThreeConsecutiveFailures(t *testing.T) {
	b, _ := newBreaker(t)

	require.ErrorIs(t, b.Call(context.Background(), fail), errBoom)
	require.ErrorIs(t, b.Call(context.Background(), fail), errBoom)
	assert.Equal(t, breaker.Closed, b.State(), "two failures are below the threshold")

	require.ErrorIs(t, b.Call(context.Background(), fail), errBoom)
	assert.Equal(t, breaker.Open, b.State())
}

func TestBreaker_OpensAtTheConfiguredThreshold(t *testing.T) {
	for _, threshold := range []int{1, 2, 5} {
		t.Run(fmt.Sprint(threshold), func(t *testing.T) {
			b, _ := newBreaker(t, breaker.WithFailureThreshold(threshold))
			for range threshold - 1 {
				require.ErrorIs(t, b.Call(context.Background(), fail), errBoom)
			}
			require.Equal(t, breaker.Closed, b.State())
			require.ErrorIs(t, b.Call(context.Background(), fail), errBoom)
			assert.Equal(t, breaker.Open, b.State())
		})
	}
}

func TestBreaker_FailsFastWhileOpen(t *testing.T) {
	b, clock := newBreaker(t)
	trip(t, b)
	clock.Advance(10 * time.Second)
	fn := &counter{}

	err := b.Call(context.Background(), fn.call)

	openErr := requireOpenError(t, err)
	assert.Zero(t, fn.runs.Load(), "the guarded function must not run while open")
	assert.Equal(t, 20*time.Second, openErr.RetryAfter())
	assert.Equal(t, "dep", openErr.Name)
	assert.Equal(t, breaker.Open, openErr.State)
	assert.Equal(t, fakeclock.Start.Add(breaker.DefaultOpenTimeout), openErr.Until)
	assert.Equal(t, breaker.Open, b.State())
}

func TestBreaker_RecoversThroughHalfOpen(t *testing.T) {
	b, clock := newBreaker(t)
	trip(t, b)

	clock.Advance(breaker.DefaultOpenTimeout)
	fn := &counter{}
	require.NoError(t, b.Call(context.Background(), fn.call))

	assert.Equal(t, int64(1), fn.runs.Load(), "the probe runs the function")
	assert.Equal(t, breaker.Closed, b.State())
	require.NoError(t, b.Call(context.Background(), fn.call))
	assert.Equal(t, int64(2), fn.runs.Load())
}

// --- One test per rule ---

func TestBreaker_SuccessResetsTheFailureCount(t *testing.T) {
	b, _ := newBreaker(t)
	ctx := context.Background()

	require.ErrorIs(t, b.Call(ctx, fail), errBoom)
	require.ErrorIs(t, b.Call(ctx, fail), errBoom)
	require.NoError(t, b.Call(ctx, succeed))
	require.ErrorIs(t, b.Call(ctx, fail), errBoom)
	require.ErrorIs(t, b.Call(ctx, fail), errBoom)

	assert.Equal(t, breaker.Closed, b.State(), "the success in the middle reset the count")
	require.ErrorIs(t, b.Call(ctx, fail), errBoom)
	assert.Equal(t, breaker.Open, b.State())
}

func TestBreaker_ReportsHalfOpenOnceTheTimeoutPassesWithoutACall(t *testing.T) {
	listen, changes := recordChanges()
	b, clock := newBreaker(t, listen)
	trip(t, b)

	clock.Advance(breaker.DefaultOpenTimeout - time.Nanosecond)
	assert.Equal(t, breaker.Open, b.State())

	clock.Advance(time.Nanosecond)
	assert.Equal(t, breaker.HalfOpen, b.State())
	assert.Equal(t, breaker.HalfOpen, b.State(), "reading the state again changes nothing")
	assert.Equal(t, []string{"closed->open", "open->half-open"}, edges(changes()))
	assert.Equal(t, breaker.Counts{Failure: 3}, b.Counts(), "State() is not a call")
}

func TestBreaker_LetsExactlyOneProbeThroughInHalfOpen(t *testing.T) {
	b, clock := newBreaker(t)
	toHalfOpen(t, b, clock)

	probeStarted := make(chan struct{})
	releaseProbe := make(chan struct{})
	probeDone := make(chan error)
	go func() {
		probeDone <- b.Call(context.Background(), func(context.Context) error {
			close(probeStarted)
			<-releaseProbe
			return nil
		})
	}()
	<-probeStarted

	const others = 16
	other := &counter{}
	var wg sync.WaitGroup
	errs := make([]error, others)
	for i := range others {
		wg.Go(func() { errs[i] = b.Call(context.Background(), other.call) })
	}
	wg.Wait()

	assert.Zero(t, other.runs.Load(), "no second call may run while the probe is in flight")
	for _, err := range errs {
		openErr := requireOpenError(t, err)
		assert.Equal(t, breaker.HalfOpen, openErr.State)
		assert.Zero(t, openErr.RetryAfter(), "a probe may go through as soon as this one ends")
	}
	assert.Equal(t, breaker.HalfOpen, b.State())

	close(releaseProbe)
	require.NoError(t, <-probeDone)
	assert.Equal(t, breaker.Closed, b.State())
	assert.Equal(t, breaker.Counts{Success: 1, Failure: 3, Rejected: others}, b.Counts())
}

func TestBreaker_ConcurrentCallersAtTheEndOfTheTimeoutAdmitOneProbe(t *testing.T) {
	b, clock := newBreaker(t)
	trip(t, b)
	clock.Advance(breaker.DefaultOpenTimeout) // no State(): the first call makes the transition

	const callers = 64
	var running, rejected atomic.Int64
	release := make(chan struct{})
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range callers {
		wg.Go(func() {
			<-start
			err := b.Call(context.Background(), func(context.Context) error {
				running.Add(1)
				<-release
				return nil
			})
			if errors.Is(err, breaker.ErrOpen) {
				rejected.Add(1)
			}
		})
	}
	close(start)
	require.Eventually(t, func() bool { return rejected.Load() == callers-1 }, time.Second, time.Millisecond)
	assert.Equal(t, int64(1), running.Load())
	close(release)
	wg.Wait()
	assert.Equal(t, breaker.Closed, b.State())
}

func TestBreaker_ProbeSuccessClosesAndResetsTheCount(t *testing.T) {
	b, clock := newBreaker(t)
	toHalfOpen(t, b, clock)

	require.NoError(t, b.Call(context.Background(), succeed))
	require.Equal(t, breaker.Closed, b.State())

	require.ErrorIs(t, b.Call(context.Background(), fail), errBoom)
	require.ErrorIs(t, b.Call(context.Background(), fail), errBoom)
	assert.Equal(t, breaker.Closed, b.State(), "the count started again from zero")
	require.ErrorIs(t, b.Call(context.Background(), fail), errBoom)
	assert.Equal(t, breaker.Open, b.State())
}

func TestBreaker_ProbeFailureReopensWithAFreshFullTimeout(t *testing.T) {
	listen, changes := recordChanges()
	b, clock := newBreaker(t, listen)
	trip(t, b)
	clock.Advance(breaker.DefaultOpenTimeout + 5*time.Second) // the probe comes late

	require.ErrorIs(t, b.Call(context.Background(), fail), errBoom)

	require.Equal(t, breaker.Open, b.State())
	fn := &counter{}
	openErr := requireOpenError(t, b.Call(context.Background(), fn.call))
	assert.Equal(t, breaker.DefaultOpenTimeout, openErr.RetryAfter(), "the timeout starts again at the failed probe")

	clock.Advance(breaker.DefaultOpenTimeout - time.Second)
	openErr = requireOpenError(t, b.Call(context.Background(), fn.call))
	assert.Equal(t, time.Second, openErr.RetryAfter())
	assert.Equal(t, breaker.Open, b.State())
	assert.Zero(t, fn.runs.Load())

	clock.Advance(time.Second)
	assert.Equal(t, breaker.HalfOpen, b.State())

	got := changes()
	require.Len(t, got, 4)
	assert.Equal(t, []string{"closed->open", "open->half-open", "half-open->open", "open->half-open"}, edges(got))
	assert.Equal(t, 3, got[0].ConsecutiveFailures)
	assert.Equal(t, 1, got[2].ConsecutiveFailures, "a failed probe is one failure")
}

func TestBreaker_CallerContextEndingCountsNeitherWay(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancelExpired := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancelExpired()

	for name, ctx := range map[string]context.Context{"canceled": canceled, "deadline": expired} {
		t.Run(name, func(t *testing.T) {
			b, _ := newBreaker(t)
			bg := context.Background()
			returnCtxErr := func(ctx context.Context) error { return ctx.Err() }

			require.ErrorIs(t, b.Call(bg, fail), errBoom)
			require.ErrorIs(t, b.Call(bg, fail), errBoom)
			err := b.Call(ctx, returnCtxErr)
			assert.Equal(t, ctx.Err(), err, "the error comes back unchanged")
			assert.Equal(t, breaker.Closed, b.State(), "not counted as a failure")

			require.ErrorIs(t, b.Call(bg, fail), errBoom)
			assert.Equal(t, breaker.Open, b.State(), "not counted as a success either: the count was kept")
			assert.Equal(t, breaker.Counts{Failure: 3, Ignored: 1}, b.Counts())
		})
	}
}

func TestBreaker_CallerContextEndingInHalfOpenFreesTheProbeSlot(t *testing.T) {
	b, clock := newBreaker(t)
	toHalfOpen(t, b, clock)
	ctx, cancel := context.WithCancel(context.Background())

	err := b.Call(ctx, func(ctx context.Context) error {
		cancel() // the caller gives up while its probe runs
		return ctx.Err()
	})
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, breaker.HalfOpen, b.State(), "an ignored probe neither closes nor reopens")

	fn := &counter{}
	require.NoError(t, b.Call(context.Background(), fn.call))
	assert.Equal(t, int64(1), fn.runs.Load(), "the next call is the probe")
	assert.Equal(t, breaker.Closed, b.State())
	assert.Equal(t, int64(1), b.Counts().Ignored)
}

func TestBreaker_WithIsFailureFalseCountsAsSuccess(t *testing.T) {
	isFailure := func(err error) bool {
		assert.Error(t, err, "isFailure is called only with errors")
		return !errors.Is(err, errNotFound)
	}
	b, _ := newBreaker(t, breaker.WithIsFailure(isFailure))
	ctx := context.Background()
	notFound := func(context.Context) error { return fmt.Errorf("user 7: %w", errNotFound) }

	require.ErrorIs(t, b.Call(ctx, fail), errBoom)
	require.ErrorIs(t, b.Call(ctx, fail), errBoom)
	err := b.Call(ctx, notFound)
	assert.ErrorIs(t, err, errNotFound, "the caller still gets the error")
	require.ErrorIs(t, b.Call(ctx, fail), errBoom)
	require.ErrorIs(t, b.Call(ctx, fail), errBoom)

	assert.Equal(t, breaker.Closed, b.State(), "the not-found reset the count")
	assert.Equal(t, breaker.Counts{Success: 1, Failure: 4}, b.Counts())
	require.NoError(t, b.Call(ctx, succeed), "a nil error never reaches isFailure")
}

func TestBreaker_WithIsFailureFalseClosesFromHalfOpen(t *testing.T) {
	b, clock := newBreaker(t, breaker.WithIsFailure(func(err error) bool { return !errors.Is(err, errNotFound) }))
	toHalfOpen(t, b, clock)

	require.ErrorIs(t, b.Call(context.Background(), func(context.Context) error { return errNotFound }), errNotFound)
	assert.Equal(t, breaker.Closed, b.State())
}

func TestBreaker_WithIsFailureDoesNotOverrideTheCallersContext(t *testing.T) {
	b, _ := newBreaker(t, breaker.WithFailureThreshold(1), breaker.WithIsFailure(func(error) bool { return true }))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	require.ErrorIs(t, b.Call(ctx, func(ctx context.Context) error { return ctx.Err() }), context.Canceled)
	assert.Equal(t, breaker.Closed, b.State())
	assert.Equal(t, breaker.Counts{Ignored: 1}, b.Counts())
}

func TestBreaker_PanicCountsAsFailureAndRepanicsTheSameValue(t *testing.T) {
	b, _ := newBreaker(t)
	require.ErrorIs(t, b.Call(context.Background(), fail), errBoom)
	require.ErrorIs(t, b.Call(context.Background(), fail), errBoom)
	value := &struct{ reason string }{"kaboom"}

	var recovered any
	func() {
		defer func() { recovered = recover() }()
		_ = b.Call(context.Background(), func(context.Context) error { panic(value) })
	}()

	assert.Same(t, value, recovered, "the panic goes on unchanged")
	assert.Equal(t, breaker.Open, b.State(), "the panic was the third failure")
	assert.Equal(t, breaker.Counts{Failure: 3}, b.Counts())
}

func TestBreaker_PanickingProbeDoesNotKeepTheProbeSlot(t *testing.T) {
	b, clock := newBreaker(t)
	toHalfOpen(t, b, clock)

	assert.PanicsWithValue(t, "probe exploded", func() {
		_ = b.Call(context.Background(), func(context.Context) error { panic("probe exploded") })
	})
	openErr := requireOpenError(t, b.Call(context.Background(), succeed))
	assert.Equal(t, breaker.Open, openErr.State, "a panicking probe is a failed probe")
	assert.Equal(t, breaker.DefaultOpenTimeout, openErr.RetryAfter())

	clock.Advance(breaker.DefaultOpenTimeout)
	fn := &counter{}
	require.NoError(t, b.Call(context.Background(), fn.call))
	assert.Equal(t, int64(1), fn.runs.Load(), "the next period's probe was free")
	assert.Equal(t, breaker.Closed, b.State())
}

func TestBreaker_PanicWithCanceledContextStillCountsAsFailure(t *testing.T) {
	b, _ := newBreaker(t, breaker.WithFailureThreshold(1))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	assert.Panics(t, func() {
		_ = b.Call(ctx, func(context.Context) error { panic("boom") })
	})
	assert.Equal(t, breaker.Open, b.State())
}

func TestNew_PanicsOnInvalidSettingsNamingThem(t *testing.T) {
	tests := []struct {
		name      string
		breaker   string
		opts      []breaker.Option
		wantNames []string
	}{
		{"zero threshold", "dep", []breaker.Option{breaker.WithFailureThreshold(0)}, []string{"WithFailureThreshold", "got 0"}},
		{"negative threshold", "dep", []breaker.Option{breaker.WithFailureThreshold(-1)}, []string{"WithFailureThreshold", "got -1"}},
		{"zero open timeout", "dep", []breaker.Option{breaker.WithOpenTimeout(0)}, []string{"WithOpenTimeout", "got 0s"}},
		{"negative open timeout", "dep", []breaker.Option{breaker.WithOpenTimeout(-time.Second)}, []string{"WithOpenTimeout", "got -1s"}},
		{"zero retry-after limit", "dep", []breaker.Option{breaker.WithRetryAfter(0)}, []string{"WithRetryAfter", "got 0s"}},
		{"nil clock", "dep", []breaker.Option{breaker.WithClock(nil)}, []string{"WithClock"}},
		{"nil predicate", "dep", []breaker.Option{breaker.WithIsFailure(nil)}, []string{"WithIsFailure"}},
		{"nil listener", "dep", []breaker.Option{breaker.WithStateChangeListener(nil)}, []string{"WithStateChangeListener"}},
		{"nil tracer provider", "dep", []breaker.Option{breaker.WithTracerProvider(nil)}, []string{"WithTracerProvider"}},
		{"nil meter provider", "dep", []breaker.Option{breaker.WithMeterProvider(nil)}, []string{"WithMeterProvider"}},
		{"nil option", "dep", []breaker.Option{breaker.WithFailureThreshold(2), nil}, []string{"option 1 is nil"}},
		{"empty name", "", nil, []string{"name must not be empty"}},
		{"every problem at once", "dep", []breaker.Option{breaker.WithFailureThreshold(0), breaker.WithOpenTimeout(0)}, []string{"WithFailureThreshold", "WithOpenTimeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := testkit.PanicMessage(t, func() { breaker.New(tt.breaker, tt.opts...) })
			assert.Contains(t, msg, "levee: breaker.New(")
			for _, want := range tt.wantNames {
				assert.Contains(t, msg, want)
			}
		})
	}
}

func TestNew_UsesTheDocumentedDefaults(t *testing.T) {
	b, clock := newBreaker(t)
	for range breaker.DefaultFailureThreshold - 1 {
		require.ErrorIs(t, b.Call(context.Background(), fail), errBoom)
	}
	require.Equal(t, breaker.Closed, b.State())
	require.ErrorIs(t, b.Call(context.Background(), fail), errBoom)
	require.Equal(t, breaker.Open, b.State())
	clock.Advance(30*time.Second - time.Nanosecond)
	assert.Equal(t, breaker.Open, b.State())
	clock.Advance(time.Nanosecond)
	assert.Equal(t, breaker.HalfOpen, b.State())
	assert.Equal(t, 3, breaker.DefaultFailureThreshold)
	assert.Equal(t, 30*time.Second, breaker.DefaultOpenTimeout)
}

func TestBreaker_UsesTheConfiguredOpenTimeout(t *testing.T) {
	b, clock := newBreaker(t, breaker.WithOpenTimeout(5*time.Second))
	trip(t, b)
	openErr := requireOpenError(t, b.Call(context.Background(), succeed))
	assert.Equal(t, 5*time.Second, openErr.RetryAfter())
	clock.Advance(5 * time.Second)
	assert.Equal(t, breaker.HalfOpen, b.State())
}

// retryLater is a dependency's error asking to be left alone for a while,
// as an HTTP 503 with Retry-After does.
type retryLater time.Duration

func (e retryLater) Error() string             { return "try again later" }
func (e retryLater) RetryAfter() time.Duration { return time.Duration(e) }

func TestBreaker_WithRetryAfterLetsTheOpeningFailureLengthenTheOpenPeriod(t *testing.T) {
	tests := []struct {
		name     string
		opts     []breaker.Option
		err      error
		wantOpen time.Duration
	}{
		{"hint longer than the open timeout", []breaker.Option{breaker.WithRetryAfter(time.Hour)}, retryLater(45 * time.Second), 45 * time.Second},
		{"hint found through wrapping", []breaker.Option{breaker.WithRetryAfter(time.Hour)}, fmt.Errorf("GET /prices: %w", retryLater(time.Minute)), time.Minute},
		{"capped at the limit", []breaker.Option{breaker.WithRetryAfter(2 * time.Minute)}, retryLater(24 * time.Hour), 2 * time.Minute},
		{"never shorter than the open timeout", []breaker.Option{breaker.WithRetryAfter(time.Hour)}, retryLater(time.Second), breaker.DefaultOpenTimeout},
		{"limit below the open timeout", []breaker.Option{breaker.WithRetryAfter(time.Second)}, retryLater(time.Minute), breaker.DefaultOpenTimeout},
		{"error without a hint", []breaker.Option{breaker.WithRetryAfter(time.Hour)}, errBoom, breaker.DefaultOpenTimeout},
		{"ignored without WithRetryAfter", nil, retryLater(time.Minute), breaker.DefaultOpenTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, probe := range []bool{false, true} {
				b, clock := newBreaker(t, tt.opts...)
				failing := func(context.Context) error { return tt.err }
				if probe {
					toHalfOpen(t, b, clock)
					require.ErrorIs(t, b.Call(context.Background(), failing), tt.err)
				} else {
					for range 3 {
						require.ErrorIs(t, b.Call(context.Background(), failing), tt.err)
					}
				}

				openErr := requireOpenError(t, b.Call(context.Background(), succeed))
				assert.Equal(t, tt.wantOpen, openErr.RetryAfter(), "probe=%v", probe)
				clock.Advance(tt.wantOpen - time.Nanosecond)
				assert.Equal(t, breaker.Open, b.State(), "probe=%v", probe)
				clock.Advance(time.Nanosecond)
				assert.Equal(t, breaker.HalfOpen, b.State(), "probe=%v", probe)
			}
		})
	}
}

func TestBreaker_WithRetryAfterOnlyHearsTheFailureThatOpens(t *testing.T) {
	b, _ := newBreaker(t, breaker.WithRetryAfter(time.Hour))
	ctx := context.Background()
	require.Error(t, b.Call(ctx, func(context.Context) error { return retryLater(time.Minute) }))
	require.Error(t, b.Call(ctx, func(context.Context) error { return retryLater(time.Minute) }))
	require.Error(t, b.Call(ctx, fail)) // the third failure opens, and asks nothing

	openErr := requireOpenError(t, b.Call(ctx, succeed))
	assert.Equal(t, breaker.DefaultOpenTimeout, openErr.RetryAfter())
}

func TestBreaker_WithRetryAfterHearsADownstreamBreaker(t *testing.T) {
	inner, clock := newBreaker(t, breaker.WithOpenTimeout(time.Minute))
	outer := breaker.New("outer", breaker.WithClock(clock.Now), breaker.WithRetryAfter(time.Hour))
	trip(t, inner)
	clock.Advance(10 * time.Second)

	for range 3 {
		require.ErrorIs(t, outer.Call(context.Background(), func(ctx context.Context) error {
			return inner.Call(ctx, succeed)
		}), breaker.ErrOpen)
	}

	openErr := requireOpenError(t, outer.Call(context.Background(), succeed))
	assert.Equal(t, "outer", openErr.Name)
	assert.Equal(t, 50*time.Second, openErr.RetryAfter(), "open until the inner breaker may probe")
}

func TestBreaker_CallsEveryListenerInOrderWithTheChange(t *testing.T) {
	var order []string
	var got []breaker.StateChange
	b, clock := newBreaker(t,
		breaker.WithStateChangeListener(func(c breaker.StateChange) {
			order = append(order, "first")
			got = append(got, c)
		}),
		breaker.WithStateChangeListener(func(breaker.StateChange) { order = append(order, "second") }),
	)

	trip(t, b)

	assert.Equal(t, []string{"first", "second"}, order)
	require.Len(t, got, 1)
	assert.Equal(t, breaker.StateChange{
		Name:                "dep",
		From:                breaker.Closed,
		To:                  breaker.Open,
		At:                  fakeclock.Start,
		ConsecutiveFailures: 3,
	}, got[0])

	clock.Advance(breaker.DefaultOpenTimeout)
	require.NoError(t, b.Call(context.Background(), succeed))
	assert.Equal(t, []string{"first", "second", "first", "second", "first", "second"}, order)
	require.Len(t, got, 3)
	assert.Equal(t, []string{"closed->open", "open->half-open", "half-open->closed"}, edges(got))
	for _, c := range got[1:] {
		assert.Zero(t, c.ConsecutiveFailures, "only openings carry a failure count")
		assert.False(t, c.Forced)
		assert.Equal(t, fakeclock.Start.Add(breaker.DefaultOpenTimeout), c.At)
	}
}

func TestBreaker_ListenerMayCallTheBreakerBecauseNoLockIsHeld(t *testing.T) {
	var b *breaker.Breaker
	clock := fakeclock.New()
	var seen []string
	var stateInListener breaker.State
	b = breaker.New("dep", breaker.WithClock(clock.Now), breaker.WithStateChangeListener(func(c breaker.StateChange) {
		seen = append(seen, c.From.String()+"->"+c.To.String())
		if c.To == breaker.Open {
			// Making the open -> half-open transition from here takes the
			// breaker's lock: this deadlocks if the listener runs under it.
			clock.Advance(breaker.DefaultOpenTimeout)
			stateInListener = b.State()
		}
	}))

	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 3 {
			_ = b.Call(context.Background(), fail)
		}
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("a listener calling the breaker deadlocked")
	}

	assert.Equal(t, breaker.HalfOpen, stateInListener)
	assert.Equal(t, []string{"closed->open", "open->half-open"}, seen, "the change made inside the listener is delivered after, in order")
}

func TestBreaker_PanickingListenerDoesNotDisturbTheCallOrOtherListeners(t *testing.T) {
	var secondCalls int
	b, _ := newBreaker(t,
		breaker.WithStateChangeListener(func(breaker.StateChange) { panic("listener bug") }),
		breaker.WithStateChangeListener(func(breaker.StateChange) { secondCalls++ }),
	)

	for range 3 {
		assert.Same(t, errBoom, b.Call(context.Background(), fail))
	}

	assert.Equal(t, breaker.Open, b.State())
	assert.Equal(t, 1, secondCalls)
}

func TestBreaker_ForceOpenRejectsUntilReset(t *testing.T) {
	listen, changes := recordChanges()
	b, clock := newBreaker(t, listen)
	fn := &counter{}

	b.ForceOpen(context.Background())

	openErr := requireOpenError(t, b.Call(context.Background(), fn.call))
	assert.Equal(t, `levee: circuit breaker "dep" is forced open`, openErr.Error())
	assert.Equal(t, breaker.DefaultOpenTimeout, openErr.RetryAfter(), "no probe is scheduled: the open timeout is a hint")
	assert.True(t, openErr.Until.IsZero())

	clock.Advance(time.Hour)
	assert.Equal(t, breaker.Open, b.State(), "a forced breaker never half-opens")
	requireOpenError(t, b.Call(context.Background(), fn.call))
	assert.Zero(t, fn.runs.Load())

	b.ForceOpen(context.Background())
	assert.Len(t, changes(), 1, "forcing a forced breaker does nothing")

	b.Reset(context.Background())
	assert.Equal(t, breaker.Closed, b.State())
	require.NoError(t, b.Call(context.Background(), fn.call))
	assert.Equal(t, int64(1), fn.runs.Load())

	got := changes()
	require.Len(t, got, 2)
	assert.Equal(t, []string{"closed->open", "open->closed"}, edges(got))
	assert.True(t, got[0].Forced)
	assert.True(t, got[1].Forced)
}

func TestBreaker_ForceOpenTakesOverAnOpenPeriod(t *testing.T) {
	b, clock := newBreaker(t)
	trip(t, b)

	b.ForceOpen(context.Background())
	clock.Advance(breaker.DefaultOpenTimeout)

	assert.Equal(t, breaker.Open, b.State())
	openErr := requireOpenError(t, b.Call(context.Background(), succeed))
	assert.Contains(t, openErr.Error(), "forced open")
}

func TestBreaker_ResetClosesFromAnyState(t *testing.T) {
	tests := []struct {
		name string
		from func(*testing.T, *breaker.Breaker, *fakeclock.Clock)
	}{
		{"open", func(t *testing.T, b *breaker.Breaker, _ *fakeclock.Clock) { trip(t, b) }},
		{"forced open", func(_ *testing.T, b *breaker.Breaker, _ *fakeclock.Clock) { b.ForceOpen(context.Background()) }},
		{"half-open", toHalfOpen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			listen, changes := recordChanges()
			b, clock := newBreaker(t, listen)
			tt.from(t, b, clock)
			before := len(changes())

			b.Reset(context.Background())

			assert.Equal(t, breaker.Closed, b.State())
			got := changes()
			require.Len(t, got, before+1)
			assert.Equal(t, breaker.Closed, got[before].To)
			assert.True(t, got[before].Forced)
			// The count starts from zero: two failures do not open it.
			require.ErrorIs(t, b.Call(context.Background(), fail), errBoom)
			require.ErrorIs(t, b.Call(context.Background(), fail), errBoom)
			assert.Equal(t, breaker.Closed, b.State())
		})
	}
}

func TestBreaker_ResetWhileClosedClearsTheCountWithoutATransition(t *testing.T) {
	listen, changes := recordChanges()
	b, _ := newBreaker(t, listen)
	ctx := context.Background()
	require.ErrorIs(t, b.Call(ctx, fail), errBoom)
	require.ErrorIs(t, b.Call(ctx, fail), errBoom)

	b.Reset(ctx)

	require.ErrorIs(t, b.Call(ctx, fail), errBoom)
	require.ErrorIs(t, b.Call(ctx, fail), errBoom)
	assert.Equal(t, breaker.Closed, b.State())
	assert.Empty(t, changes())
	require.ErrorIs(t, b.Call(ctx, fail), errBoom)
	assert.Equal(t, breaker.Open, b.State())
}

// blockedCall starts a call through b that blocks until release is called,
// then returns err. It returns once the function is running.
func blockedCall(b *breaker.Breaker, err error) (release func() error) {
	started := make(chan struct{})
	unblock := make(chan struct{})
	result := make(chan error, 1)
	go func() {
		result <- b.Call(context.Background(), func(context.Context) error {
			close(started)
			<-unblock
			return err
		})
	}()
	<-started
	return func() error {
		close(unblock)
		return <-result
	}
}

func TestBreaker_StaleFailureAfterResetDoesNotCountInTheNewPeriod(t *testing.T) {
	b, _ := newBreaker(t)
	release := blockedCall(b, errBoom) // admitted while closed
	b.ForceOpen(context.Background())
	b.Reset(context.Background())

	require.ErrorIs(t, release(), errBoom)
	require.ErrorIs(t, b.Call(context.Background(), fail), errBoom)
	require.ErrorIs(t, b.Call(context.Background(), fail), errBoom)

	assert.Equal(t, breaker.Closed, b.State(), "the stale failure belonged to the period before the reset")
}

func TestBreaker_StaleResultsWhileOpenChangeNothing(t *testing.T) {
	for _, stale := range []error{nil, errBoom} {
		t.Run(fmt.Sprint(stale), func(t *testing.T) {
			listen, changes := recordChanges()
			b, clock := newBreaker(t, listen)
			release := blockedCall(b, stale) // admitted while closed
			trip(t, b)
			clock.Advance(10 * time.Second)

			_ = release()

			assert.Equal(t, breaker.Open, b.State())
			openErr := requireOpenError(t, b.Call(context.Background(), succeed))
			assert.Equal(t, 20*time.Second, openErr.RetryAfter(), "the open period was not restarted")
			assert.Equal(t, []string{"closed->open"}, edges(changes()))
		})
	}
}

func TestBreaker_StaleProbeAfterResetDoesNotReopen(t *testing.T) {
	b, clock := newBreaker(t)
	toHalfOpen(t, b, clock)
	release := blockedCall(b, errBoom) // the probe
	b.Reset(context.Background())

	require.ErrorIs(t, release(), errBoom)

	assert.Equal(t, breaker.Closed, b.State())
	require.ErrorIs(t, b.Call(context.Background(), fail), errBoom)
	require.ErrorIs(t, b.Call(context.Background(), fail), errBoom)
	assert.Equal(t, breaker.Closed, b.State())
}

func TestBreaker_CountsEveryCallByOutcome(t *testing.T) {
	b, clock := newBreaker(t, breaker.WithIsFailure(func(err error) bool { return !errors.Is(err, errNotFound) }))
	ctx := context.Background()
	canceled, cancel := context.WithCancel(ctx)
	cancel()

	require.NoError(t, b.Call(ctx, succeed))
	_ = b.Call(ctx, func(context.Context) error { return errNotFound })
	_ = b.Call(canceled, func(ctx context.Context) error { return ctx.Err() })
	trip(t, b)
	_ = b.Call(ctx, succeed)
	_ = b.Call(ctx, succeed)
	clock.Advance(breaker.DefaultOpenTimeout)
	require.NoError(t, b.Call(ctx, succeed))

	assert.Equal(t, breaker.Counts{Success: 3, Failure: 3, Rejected: 2, Ignored: 1}, b.Counts())
}

func TestOpenError_MessagesNameTheBreakerAndWhy(t *testing.T) {
	open, clock := newBreaker(t)
	trip(t, open)
	openErr := requireOpenError(t, open.Call(context.Background(), succeed))

	halfOpen, clock2 := newBreaker(t)
	toHalfOpen(t, halfOpen, clock2)
	release := blockedCall(halfOpen, nil)
	halfOpenErr := requireOpenError(t, halfOpen.Call(context.Background(), succeed))
	require.NoError(t, release())

	forced, _ := newBreaker(t)
	forced.ForceOpen(context.Background())
	forcedErr := requireOpenError(t, forced.Call(context.Background(), succeed))

	assert.Equal(t, `levee: circuit breaker "dep" is open`, openErr.Error())
	assert.Equal(t, `levee: circuit breaker "dep" is half-open and its probe is in flight`, halfOpenErr.Error())
	assert.Equal(t, `levee: circuit breaker "dep" is forced open`, forcedErr.Error())
	for _, err := range []*breaker.OpenError{openErr, halfOpenErr, forcedErr} {
		assert.ErrorIs(t, err, breaker.ErrOpen)
		assert.NotErrorIs(t, err, errBoom)
		assert.Equal(t, "circuit_open", err.ErrorType())
	}

	clock.Advance(time.Minute)
	assert.Zero(t, openErr.RetryAfter(), "0 once the open timeout has passed")
}

func TestOpenError_RejectionsOfOnePeriodShareOneValue(t *testing.T) {
	b, clock := newBreaker(t)
	trip(t, b)

	first := b.Call(context.Background(), succeed)
	second := b.Call(context.Background(), succeed)
	assert.Same(t, first, second)

	clock.Advance(breaker.DefaultOpenTimeout)
	require.ErrorIs(t, b.Call(context.Background(), fail), errBoom)
	third := b.Call(context.Background(), succeed)
	assert.NotSame(t, first, third, "a new open period has its own error")
}

func TestOpenError_ZeroValueRetryAfterIsZero(t *testing.T) {
	var openErr breaker.OpenError
	assert.Zero(t, openErr.RetryAfter())
	assert.ErrorIs(t, &openErr, breaker.ErrOpen)
}

// hookedClock is a fake clock that runs hook, once, inside the next read:
// it puts another goroutine's action at an exact point of a call, between
// the breaker's loading its state and its acting on it.
type hookedClock struct {
	now  time.Time
	hook func()
}

func (c *hookedClock) Now() time.Time {
	if h := c.hook; h != nil {
		c.hook = nil
		h()
	}
	return c.now
}

func TestBreaker_CallRacingAResetRunsInTheNewClosedPeriod(t *testing.T) {
	listen, changes := recordChanges()
	clock := &hookedClock{now: fakeclock.Start}
	b := breaker.New("dep", breaker.WithClock(clock.Now), listen)
	trip(t, b)
	clock.now = clock.now.Add(breaker.DefaultOpenTimeout)
	clock.hook = func() { b.Reset(context.Background()) } // as the call checks the open timeout
	fn := &counter{}

	require.NoError(t, b.Call(context.Background(), fn.call))

	assert.Equal(t, int64(1), fn.runs.Load())
	assert.Equal(t, breaker.Closed, b.State())
	assert.Equal(t, []string{"closed->open", "open->closed"}, edges(changes()), "no half-open in between")
}

func TestBreaker_CallRacingAForceOpenIsRejected(t *testing.T) {
	clock := &hookedClock{now: fakeclock.Start}
	b := breaker.New("dep", breaker.WithClock(clock.Now))
	trip(t, b)
	clock.now = clock.now.Add(breaker.DefaultOpenTimeout)
	clock.hook = func() { b.ForceOpen(context.Background()) }
	fn := &counter{}

	openErr := requireOpenError(t, b.Call(context.Background(), fn.call))

	assert.Zero(t, fn.runs.Load())
	assert.Contains(t, openErr.Error(), "forced open")
}

func TestBreaker_ResetRacingTheOpeningFailureLeavesItClosed(t *testing.T) {
	clock := &hookedClock{now: fakeclock.Start}
	b := breaker.New("dep", breaker.WithClock(clock.Now), breaker.WithFailureThreshold(1))
	resetDone := make(chan struct{})
	// The failure has been counted and its transition to Open is under
	// way (the clock is read inside it) when an operator resets.
	clock.hook = func() {
		go func() {
			defer close(resetDone)
			b.Reset(context.Background())
		}()
		select { // a Reset that must wait for the transition waits in vain here
		case <-resetDone:
		case <-time.After(5 * time.Millisecond):
		}
	}

	require.ErrorIs(t, b.Call(context.Background(), fail), errBoom)
	<-resetDone

	assert.Equal(t, breaker.Closed, b.State(), "the reset came after the failure that opened the breaker")
}

func TestBreaker_StateRacingAResetReportsTheResetState(t *testing.T) {
	clock := &hookedClock{now: fakeclock.Start}
	b := breaker.New("dep", breaker.WithClock(clock.Now))
	trip(t, b)
	clock.now = clock.now.Add(breaker.DefaultOpenTimeout)
	clock.hook = func() { b.Reset(context.Background()) }

	assert.Equal(t, breaker.Closed, b.State())
}

// --- The real clock: a timer makes the half-open transition ---

func TestBreaker_RealClockHalfOpensOnTimeWithoutACall(t *testing.T) {
	const openTimeout = 5 * time.Millisecond
	changes := make(chan breaker.StateChange, 8)
	b := breaker.New("dep",
		breaker.WithOpenTimeout(openTimeout),
		breaker.WithStateChangeListener(func(c breaker.StateChange) { changes <- c }))

	for range 3 {
		require.ErrorIs(t, b.Call(context.Background(), fail), errBoom)
	}
	opened := <-changes
	require.Equal(t, breaker.Open, opened.To)

	// No call and no State() from here: only the timer can move the breaker.
	var halfOpened breaker.StateChange
	select {
	case halfOpened = <-changes:
	case <-time.After(time.Second):
		t.Fatal("the breaker did not half-open by itself")
	}
	assert.Equal(t, breaker.Open, halfOpened.From)
	assert.Equal(t, breaker.HalfOpen, halfOpened.To)
	assert.GreaterOrEqual(t, halfOpened.At.Sub(opened.At), openTimeout)

	assert.Equal(t, breaker.HalfOpen, b.State())
	require.NoError(t, b.Call(context.Background(), succeed))
	assert.Equal(t, breaker.Closed, b.State())
}

func TestBreaker_RealClockRejectsWithTheTimeLeft(t *testing.T) {
	b := breaker.New("dep", breaker.WithOpenTimeout(time.Hour))
	for range 3 {
		require.ErrorIs(t, b.Call(context.Background(), fail), errBoom)
	}
	t.Cleanup(func() { b.Reset(context.Background()) }) // stops the timer

	openErr := requireOpenError(t, b.Call(context.Background(), succeed))
	assert.LessOrEqual(t, openErr.RetryAfter(), time.Hour)
	assert.Greater(t, openErr.RetryAfter(), time.Hour-time.Minute)
	assert.Equal(t, breaker.Open, b.State())
}

// --- Concurrency ---

func TestBreaker_ManyGoroutinesKeepCountsAndStateConsistent(t *testing.T) {
	const (
		goroutines = 64
		callsEach  = 200
		threshold  = 3
	)
	clock := fakeclock.New()
	listen, changes := recordChanges()
	b := breaker.New("dep",
		breaker.WithClock(clock.Now),
		breaker.WithFailureThreshold(threshold),
		breaker.WithOpenTimeout(250*time.Millisecond),
		listen)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	var (
		successes, failures, ignored, rejected atomic.Int64
		violations                             atomic.Int64
	)
	guarded := func(g, i int) func(context.Context) (int, error) {
		return func(ctx context.Context) (int, error) {
			switch {
			case ctx.Err() != nil:
				ignored.Add(1)
				return 0, ctx.Err()
			case (g+i)%3 != 0:
				failures.Add(1)
				return 0, errBoom
			}
			successes.Add(1)
			return g, nil
		}
	}
	asInt := breaker.Policy[int](b)

	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range callsEach {
				ctx := context.Background()
				if i%10 == 9 {
					ctx = canceled
				}
				if i%4 == 0 {
					clock.Advance(250 * time.Millisecond)
				}
				ran := false
				fn := guarded(g, i)
				var err error
				if g%2 == 0 {
					err = b.Call(ctx, func(ctx context.Context) error { ran = true; _, err := fn(ctx); return err })
				} else {
					var v int
					v, err = asInt.Apply(func(ctx context.Context) (int, error) { ran = true; return fn(ctx) })(ctx)
					if err == nil && v != g {
						violations.Add(1)
					}
				}
				if errors.Is(err, breaker.ErrOpen) {
					rejected.Add(1)
					if ran {
						violations.Add(1) // a rejected call must not run
					}
				} else if !ran {
					violations.Add(1) // an admitted call must run
				}
				if g%8 == 0 && i%32 == 0 {
					if s := b.State(); s != breaker.Closed && s != breaker.Open && s != breaker.HalfOpen {
						violations.Add(1)
					}
				}
			}
		})
	}
	wg.Wait()

	assert.Zero(t, violations.Load())
	counts := b.Counts()
	assert.Equal(t, int64(goroutines*callsEach), counts.Success+counts.Failure+counts.Rejected+counts.Ignored)
	assert.Equal(t, successes.Load(), counts.Success)
	assert.Equal(t, failures.Load(), counts.Failure)
	assert.Equal(t, ignored.Load(), counts.Ignored)
	assert.Equal(t, rejected.Load(), counts.Rejected)

	final := b.State()
	got := changes()
	require.NotEmpty(t, got, "the mix of failures must have opened the breaker")
	valid := map[string]bool{"closed->open": true, "open->half-open": true, "half-open->closed": true, "half-open->open": true}
	from := breaker.Closed
	for i, c := range got {
		edge := c.From.String() + "->" + c.To.String()
		assert.True(t, valid[edge], "change %d: %s is not a transition of the state machine", i, edge)
		assert.Equal(t, from, c.From, "change %d does not follow the one before", i)
		if c.To == breaker.Open {
			if c.From == breaker.Closed {
				assert.GreaterOrEqual(t, c.ConsecutiveFailures, threshold)
			} else {
				assert.Equal(t, 1, c.ConsecutiveFailures)
			}
		}
		from = c.To
	}
	assert.Equal(t, final, from, "listeners saw every change, the last one being the current state")
}

func TestBreaker_OperatorControlsDuringConcurrentCallsKeepTheMachineConsistent(t *testing.T) {
	const (
		callers   = 16
		callsEach = 300
		operator  = 200
	)
	clock := fakeclock.New()
	listen, changes := recordChanges()
	b := breaker.New("dep", breaker.WithClock(clock.Now), breaker.WithOpenTimeout(time.Second), listen)
	var ran atomic.Int64

	var wg sync.WaitGroup
	for g := range callers {
		wg.Go(func() {
			for i := range callsEach {
				_ = b.Call(context.Background(), func(context.Context) error {
					ran.Add(1)
					if (g+i)%3 == 0 {
						return nil
					}
					return errBoom
				})
			}
		})
	}
	wg.Go(func() {
		for i := range operator {
			switch i % 4 {
			case 0:
				b.ForceOpen(context.Background())
			case 1, 3:
				clock.Advance(time.Second)
				_ = b.State()
			case 2:
				b.Reset(context.Background())
			}
		}
	})
	wg.Wait()
	b.Reset(context.Background())

	counts := b.Counts()
	assert.Equal(t, int64(callers*callsEach), counts.Success+counts.Failure+counts.Rejected+counts.Ignored)
	assert.Equal(t, ran.Load(), counts.Success+counts.Failure)
	assert.Equal(t, breaker.Closed, b.State())
	require.NoError(t, b.Call(context.Background(), succeed))

	got := changes()
	from := breaker.Closed
	for i, c := range got {
		assert.Equal(t, from, c.From, "change %d does not follow the one before", i)
		edge := c.From.String() + "->" + c.To.String()
		switch {
		case c.From == c.To:
			assert.True(t, c.Forced && c.To == breaker.Open, "change %d: %s", i, edge)
		case edge == "open->closed":
			assert.True(t, c.Forced, "change %d: only Reset closes an open breaker", i)
		case edge == "open->half-open":
			assert.False(t, c.Forced, "change %d: only the timeout half-opens", i)
		}
		from = c.To
	}
	assert.Equal(t, breaker.Closed, from)
}

func TestBreaker_ListenerCallingGoexitDoesNotStopLaterDeliveries(t *testing.T) {
	clock := fakeclock.New()
	var seen []breaker.StateChange
	exitOnce := true
	b := breaker.New("goexit",
		breaker.WithFailureThreshold(1),
		breaker.WithClock(clock.Now),
		breaker.WithStateChangeListener(func(c breaker.StateChange) {
			if exitOnce {
				exitOnce = false
				runtime.Goexit()
			}
			seen = append(seen, c)
		}))

	// The call that trips the breaker runs in a goroutine that the listener
	// ends with runtime.Goexit, as t.FailNow would.
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = b.Call(context.Background(), func(context.Context) error { return errors.New("down") })
	}()
	<-done
	require.Equal(t, breaker.Open, b.State())

	b.Reset(context.Background())
	require.Len(t, seen, 1, "the listener must still hear of changes after one of its calls ended its goroutine")
	assert.Equal(t, breaker.Open, seen[0].From)
	assert.Equal(t, breaker.Closed, seen[0].To)
}

func TestBreaker_ListenerEndingItsGoroutineOnHalfOpenLeavesNoProbeSlotTaken(t *testing.T) {
	clock := fakeclock.New()
	b := breaker.New("goexit-half-open",
		breaker.WithFailureThreshold(1),
		breaker.WithClock(clock.Now),
		breaker.WithStateChangeListener(func(c breaker.StateChange) {
			if c.To == breaker.HalfOpen {
				runtime.Goexit() // as t.FailNow would inside a listener
			}
		}))
	require.Error(t, b.Call(context.Background(), func(context.Context) error { return errors.New("down") }))
	clock.Advance(breaker.DefaultOpenTimeout)

	// The call that finds the open timeout passed makes the half-open
	// transition; its listener ends that goroutine before the call runs.
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = b.Call(context.Background(), func(context.Context) error { return nil })
	}()
	<-done
	require.Equal(t, breaker.HalfOpen, b.State())

	ran := false
	require.NoError(t, b.Call(context.Background(), func(context.Context) error { ran = true; return nil }),
		"the next call must be let through as the probe")
	assert.True(t, ran)
	assert.Equal(t, breaker.Closed, b.State())
}
