package bulkhead_test

import (
	"context"
	"errors"
	"runtime"
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

	"github.com/levee-go/levee/bulkhead"
	"github.com/levee-go/levee/internal/testkit"
	"github.com/levee-go/levee/resilience"
)

// Most tests run in a synctest bubble: a wait of a minute passes at once,
// and a goroutine that would block for ever fails the test as a deadlock
// instead of hanging it.

// held is a call that holds a slot of a bulkhead until its release.
type held struct {
	done     chan struct{}
	finished chan error
}

// hold starts a call through b that holds its slot until release, and
// returns once the call runs. Inside a bubble only.
func hold(t *testing.T, b *bulkhead.Bulkhead) *held {
	t.Helper()
	h := &held{done: make(chan struct{}), finished: make(chan error, 1)}
	running := make(chan struct{})
	go func() {
		h.finished <- b.Call(context.Background(), func(context.Context) error {
			close(running)
			<-h.done
			return nil
		})
	}()
	select {
	case <-running:
	case err := <-h.finished:
		require.FailNow(t, "the holding call did not run", "it returned %v", err)
	}
	return h
}

// release ends the held call and waits for it to return.
func (h *held) release(t *testing.T) {
	t.Helper()
	close(h.done)
	require.NoError(t, <-h.finished)
}

func succeed(context.Context) error { return nil }

func TestNew_RefusesBadSettingsNamingThem(t *testing.T) {
	t.Parallel()
	var nilTP *sdktrace.TracerProvider
	var nilMP *sdkmetric.MeterProvider
	tests := []struct {
		name    string
		build   func()
		message string
	}{
		{"empty name", func() { bulkhead.New("", 1) }, `levee: bulkhead.New(""): name must not be empty`},
		{"zero slots", func() { bulkhead.New("db", 0) }, `levee: bulkhead.New("db"): maxConcurrent: must be at least 1, got 0`},
		{"negative slots", func() { bulkhead.New("db", -3) }, `levee: bulkhead.New("db"): maxConcurrent: must be at least 1, got -3`},
		{"negative wait", func() { bulkhead.New("db", 1, bulkhead.WithMaxWait(-time.Second)) }, `levee: bulkhead.New("db"): WithMaxWait: must not be negative, got -1s`},
		{"nil option", func() { bulkhead.New("db", 1, nil) }, `levee: bulkhead.New("db"): option 0 is nil`},
		{"nil tracer provider", func() { bulkhead.New("db", 1, bulkhead.WithTracerProvider(nil)) }, `levee: bulkhead.New("db"): WithTracerProvider: provider must not be nil`},
		{"typed nil tracer provider", func() { bulkhead.New("db", 1, bulkhead.WithTracerProvider(nilTP)) }, `levee: bulkhead.New("db"): WithTracerProvider: provider is a nil *trace.TracerProvider`},
		{"nil meter provider", func() { bulkhead.New("db", 1, bulkhead.WithMeterProvider(nil)) }, `levee: bulkhead.New("db"): WithMeterProvider: provider must not be nil`},
		{"typed nil meter provider", func() { bulkhead.New("db", 1, bulkhead.WithMeterProvider(nilMP)) }, `levee: bulkhead.New("db"): WithMeterProvider: provider is a nil *metric.MeterProvider`},
		{"every problem at once", func() { bulkhead.New("", 0, bulkhead.WithMaxWait(-1)) }, `levee: bulkhead.New(""): name must not be empty; maxConcurrent: must be at least 1, got 0; WithMaxWait: must not be negative, got -1ns`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.message, testkit.PanicMessage(t, tt.build))
		})
	}
}

func TestNew_AcceptsTheSmallestSettings(t *testing.T) {
	t.Parallel()
	b := bulkhead.New("db", 1, bulkhead.WithMaxWait(0), bulkhead.WithTracerProvider(tracenoop.NewTracerProvider()))
	assert.Equal(t, "db", b.Name())
	assert.Equal(t, 1, b.MaxConcurrent())
	assert.Zero(t, b.InFlight())
	assert.Zero(t, b.Queued())
}

func TestBulkhead_RejectsTheCallPastTheLimitAtOnceWithoutRunningIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := bulkhead.New("db", 3)
		var holders []*held
		for range 3 {
			holders = append(holders, hold(t, b))
		}
		require.Equal(t, 3, b.InFlight())

		ran := false
		start := time.Now()
		err := b.Call(t.Context(), func(context.Context) error { ran = true; return nil })
		require.ErrorIs(t, err, bulkhead.ErrFull)
		assert.EqualError(t, err, `levee: bulkhead "db" is full`)
		assert.False(t, ran, "a rejected call must not run")
		assert.Zero(t, time.Since(start), "rejected at once")
		assert.Zero(t, b.Queued())

		holders[0].release(t)
		require.NoError(t, b.Call(t.Context(), succeed), "a freed slot admits the next call")
		for _, h := range holders[1:] {
			h.release(t)
		}
		assert.Zero(t, b.InFlight())
	})
}

func TestBulkhead_ReturnsTheFunctionsResultUnchanged(t *testing.T) {
	t.Parallel()
	b := bulkhead.New("db", 1)
	errNotFound := errors.New("not found")
	assert.Same(t, errNotFound, b.Call(context.Background(), func(context.Context) error { return errNotFound }))
	v, err := resilience.Do(context.Background(), func(context.Context) (string, error) { return "row", nil }, bulkhead.Policy[string](b))
	require.NoError(t, err)
	assert.Equal(t, "row", v)
	assert.Zero(t, b.InFlight(), "both calls gave their slot back")
}

func TestBulkhead_APanickingCallGivesItsSlotBack(t *testing.T) {
	t.Parallel()
	b := bulkhead.New("db", 1)
	assert.PanicsWithValue(t, "boom", func() {
		_ = b.Call(context.Background(), func(context.Context) error { panic("boom") })
	})
	assert.Zero(t, b.InFlight())
	get := resilience.Wrap(func(context.Context) (int, error) { panic("boom") }, bulkhead.Policy[int](b))
	assert.PanicsWithValue(t, "boom", func() { _, _ = get(context.Background()) })
	assert.Zero(t, b.InFlight())
	require.NoError(t, b.Call(context.Background(), succeed), "the only slot is free again")
}

func TestBulkhead_ACallThatExitsItsGoroutineGivesItsSlotBack(t *testing.T) {
	t.Parallel()
	b := bulkhead.New("db", 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = b.Call(context.Background(), func(context.Context) error { runtime.Goexit(); return nil })
	}()
	<-done
	assert.Zero(t, b.InFlight())
}

func TestBulkhead_ACallWhoseContextIsDoneRunsNothing(t *testing.T) {
	t.Parallel()
	b := bulkhead.New("db", 1, bulkhead.WithMaxWait(time.Minute))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	err := b.Call(ctx, func(context.Context) error { ran = true; return nil })
	assert.Same(t, context.Canceled, err)
	assert.False(t, ran)
	assert.Zero(t, b.InFlight())
	_, err = resilience.Wrap(func(context.Context) (int, error) { ran = true; return 1, nil }, bulkhead.Policy[int](b))(ctx)
	assert.Same(t, context.Canceled, err)
	assert.False(t, ran)
}

func TestBulkhead_CallRefusesANilFunction(t *testing.T) {
	t.Parallel()
	b := bulkhead.New("db", 1)
	assert.EqualError(t, b.Call(context.Background(), nil), "levee: bulkhead.Call: fn must not be nil")
	assert.Zero(t, b.InFlight())
}

func TestBulkhead_AWaiterGetsTheSlotTheMomentItIsFreed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := bulkhead.New("db", 1, bulkhead.WithMaxWait(100*time.Millisecond))
		h := hold(t, b)
		go func() {
			time.Sleep(40 * time.Millisecond)
			h.release(t)
		}()
		start := time.Now()
		require.NoError(t, b.Call(t.Context(), succeed))
		assert.Equal(t, 40*time.Millisecond, time.Since(start))
		assert.Zero(t, b.InFlight())
		assert.Zero(t, b.Queued())
	})
}

func TestBulkhead_AWaiterIsRejectedWhenItsMaximumWaitRunsOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := bulkhead.New("db", 1, bulkhead.WithMaxWait(100*time.Millisecond))
		h := hold(t, b)
		start := time.Now()
		ran := false
		err := b.Call(t.Context(), func(context.Context) error { ran = true; return nil })
		require.ErrorIs(t, err, bulkhead.ErrFull)
		assert.EqualError(t, err, `levee: bulkhead "db" is full: no slot within 100ms`)
		assert.Equal(t, 100*time.Millisecond, time.Since(start), "it waited exactly the maximum")
		assert.False(t, ran)
		assert.Zero(t, b.Queued(), "it left the queue")
		assert.Equal(t, 1, b.InFlight(), "the holder still has its slot")
		h.release(t)
		assert.Zero(t, b.InFlight())
	})
}

func TestBulkhead_AWaiterWhoseContextEndsGetsTheContextsError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := bulkhead.New("db", 1, bulkhead.WithMaxWait(time.Minute))
		h := hold(t, b)

		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(30*time.Millisecond, cancel)
		start := time.Now()
		err := b.Call(ctx, succeed)
		assert.Same(t, context.Canceled, err, "not ErrFull: the caller gave up")
		assert.Equal(t, 30*time.Millisecond, time.Since(start))

		deadline, stop := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer stop()
		start = time.Now()
		err = b.Call(deadline, succeed)
		assert.Equal(t, context.DeadlineExceeded, err, "a deadline shorter than the maximum wait ends the wait")
		assert.Equal(t, 20*time.Millisecond, time.Since(start))

		assert.Zero(t, b.Queued())
		h.release(t)
		assert.Zero(t, b.InFlight())
	})
}

func TestBulkhead_WaitersAreServedFirstComeFirstServed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := bulkhead.New("db", 1, bulkhead.WithMaxWait(time.Minute))
		h := hold(t, b)
		var order []int
		var wg sync.WaitGroup
		for i := range 5 {
			wg.Go(func() {
				assert.NoError(t, b.Call(t.Context(), func(context.Context) error {
					order = append(order, i) // one slot: the calls run one at a time
					time.Sleep(time.Millisecond)
					return nil
				}))
			})
			synctest.Wait() // waiter i is queued before waiter i+1 arrives
			require.Equal(t, i+1, b.Queued())
		}
		h.release(t)
		wg.Wait()
		assert.Equal(t, []int{0, 1, 2, 3, 4}, order)
	})
}

func TestBulkhead_ANewcomerDoesNotOvertakeTheQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := bulkhead.New("db", 1, bulkhead.WithMaxWait(time.Minute))
		h := hold(t, b)
		var order []string
		var wg sync.WaitGroup
		wg.Go(func() {
			assert.NoError(t, b.Call(t.Context(), func(context.Context) error { order = append(order, "waiter"); return nil }))
		})
		synctest.Wait()
		require.Equal(t, 1, b.Queued())
		h.release(t) // the slot goes to the waiter, not to whoever calls next
		assert.NoError(t, b.Call(t.Context(), func(context.Context) error { order = append(order, "newcomer"); return nil }))
		wg.Wait()
		assert.Equal(t, []string{"waiter", "newcomer"}, order)
	})
}

// endedCtx is a context whose Err reports it canceled once end is called,
// while its Done channel never closes: a waiter on it wakes only when it is
// handed a slot, and then finds its context ended, as when a cancellation
// and a slot come at the same moment.
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

func TestBulkhead_AWaiterCanceledAsItIsHandedASlotPassesTheSlotOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := bulkhead.New("db", 1, bulkhead.WithMaxWait(time.Minute))
		h := hold(t, b)
		ctx := &endedCtx{Context: t.Context()}
		ran := false
		first := make(chan error, 1)
		go func() { first <- b.Call(ctx, func(context.Context) error { ran = true; return nil }) }()
		synctest.Wait()
		second := make(chan error, 1)
		go func() { second <- b.Call(t.Context(), succeed) }()
		synctest.Wait()
		require.Equal(t, 2, b.Queued())

		ctx.end()
		h.release(t) // the slot is handed to the first waiter, whose caller has gone
		assert.Same(t, context.Canceled, <-first)
		assert.False(t, ran)
		assert.NoError(t, <-second, "the first waiter passed its slot on")
		assert.Zero(t, b.InFlight())
		assert.Zero(t, b.Queued())
	})
}

func TestBulkhead_SharesItsSlotsAcrossResultTypes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := bulkhead.New("db", 1)
		release := make(chan struct{})
		got := make(chan int, 1)
		getInt := resilience.Wrap(func(context.Context) (int, error) { <-release; return 7, nil }, bulkhead.Policy[int](b))
		getString := resilience.Wrap(func(context.Context) (string, error) { return "row", nil }, bulkhead.Policy[string](b))
		go func() {
			v, _ := getInt(t.Context())
			got <- v
		}()
		synctest.Wait()
		v, err := getString(t.Context())
		require.ErrorIs(t, err, bulkhead.ErrFull, "the int call holds the only slot")
		assert.Empty(t, v)
		close(release)
		assert.Equal(t, 7, <-got)
		v, err = getString(t.Context())
		require.NoError(t, err)
		assert.Equal(t, "row", v)
	})
}

func TestPolicy_RefusesANilBulkhead(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "levee: bulkhead.Policy: bulkhead must not be nil", testkit.PanicMessage(t, func() { bulkhead.Policy[int](nil) }))
}

func TestPolicy_IsATelemetrySourceWithTheBulkheadsNameAndProviders(t *testing.T) {
	t.Parallel()
	tp := tracenoop.NewTracerProvider()
	b := bulkhead.New("db", 1, bulkhead.WithTracerProvider(tp))
	src, ok := bulkhead.Policy[int](b).(resilience.TelemetrySource)
	require.True(t, ok)
	assert.Equal(t, resilience.Telemetry{Name: "db", TracerProvider: tp}, src.Telemetry())
}

// The limit under real concurrency: hundreds of goroutines, with the race
// detector, never see more than maxConcurrent calls in flight.
func TestBulkhead_NeverMoreInFlightThanItsLimitUnderLoad(t *testing.T) {
	t.Parallel()
	for _, maxWait := range []time.Duration{0, time.Minute} {
		t.Run("maxWait="+maxWait.String(), func(t *testing.T) {
			t.Parallel()
			const limit, goroutines, callsEach = 10, 300, 20
			b := bulkhead.New("db", limit, bulkhead.WithMaxWait(maxWait))
			var inFlight, peak, admitted, full atomic.Int64
			var wg sync.WaitGroup
			for range goroutines {
				wg.Go(func() {
					for range callsEach {
						err := b.Call(context.Background(), func(context.Context) error {
							n := inFlight.Add(1)
							for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
							}
							runtime.Gosched()
							inFlight.Add(-1)
							admitted.Add(1)
							return nil
						})
						if errors.Is(err, bulkhead.ErrFull) {
							full.Add(1)
						} else {
							assert.NoError(t, err)
						}
					}
				})
			}
			wg.Wait()
			assert.LessOrEqual(t, peak.Load(), int64(limit), "calls in flight at once")
			assert.Equal(t, int64(goroutines*callsEach), admitted.Load()+full.Load(), "every call decided once")
			if maxWait > 0 {
				assert.Zero(t, full.Load(), "a minute's wait is enough for every call")
			}
			assert.Zero(t, b.InFlight())
			assert.Zero(t, b.Queued())
		})
	}
}

// The same in bubble time, where the schedule is exact: 300 calls of 10ms
// through 10 slots run in 30 rounds, and take 300ms.
func TestBulkhead_QueuedCallsRunInRoundsOfTheLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const limit, calls = 10, 300
		b := bulkhead.New("db", limit, bulkhead.WithMaxWait(time.Second))
		var inFlight, peak atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range calls {
			wg.Go(func() {
				assert.NoError(t, b.Call(t.Context(), func(context.Context) error {
					n := inFlight.Add(1)
					for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
					}
					time.Sleep(10 * time.Millisecond)
					inFlight.Add(-1)
					return nil
				}))
			})
		}
		wg.Wait()
		assert.Equal(t, int64(limit), peak.Load(), "the slots were all used, and never more")
		assert.Equal(t, calls/limit*10*time.Millisecond, time.Since(start))
	})
}

func TestBulkhead_AllocatesNothingWhenASlotIsFree(t *testing.T) {
	b := bulkhead.New("db", 1)
	get := resilience.Wrap(func(context.Context) (int, error) { return 1, nil }, bulkhead.Policy[int](b))
	ctx := context.Background()
	assert.Zero(t, testing.AllocsPerRun(1000, func() { _ = b.Call(ctx, succeed) }))
	assert.Zero(t, testing.AllocsPerRun(1000, func() { _, _ = get(ctx) }))
}

func TestBulkhead_ARejectionAllocatesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := bulkhead.New("db", 1)
		h := hold(t, b)
		ctx := context.Background()
		assert.Zero(t, testing.AllocsPerRun(1000, func() { _ = b.Call(ctx, succeed) }))
		h.release(t)
	})
}
