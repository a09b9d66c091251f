package throttle_test

import (
	"context"
	"errors"
	"math"
	"runtime"
	"strconv"
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
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/throttle"
)

// The throttle's window moves on a timer: its tests run in synctest
// bubbles, where minutes pass at once and exactly.

var (
	errDown     = errors.New("dependency down")
	errNotFound = errors.New("not found")
)

func down(context.Context) error { return errDown }
func up(context.Context) error   { return nil }

// want is the SRE book's probability for a history of requests and
// accepts.
func want(k float64, requests, accepts int) float64 {
	return math.Max(0, (float64(requests)-k*float64(accepts))/float64(requests+1))
}

func TestNew_RefusesBadSettingsNamingThem(t *testing.T) {
	t.Parallel()
	var nilTP *sdktrace.TracerProvider
	var nilMP *sdkmetric.MeterProvider
	tests := []struct {
		name    string
		build   func()
		message string
	}{
		{"empty name", func() { throttle.New("") }, `levee: throttle.New(""): name must not be empty`},
		{"K below 1", func() { throttle.New("db", throttle.WithK(0.99)) }, `levee: throttle.New("db"): WithK: must be at least 1 and finite, got 0.99`},
		{"K not a number", func() { throttle.New("db", throttle.WithK(math.NaN())) }, `levee: throttle.New("db"): WithK: must be at least 1 and finite, got NaN`},
		{"K infinite", func() { throttle.New("db", throttle.WithK(math.Inf(1))) }, `levee: throttle.New("db"): WithK: must be at least 1 and finite, got +Inf`},
		{"negative window", func() { throttle.New("db", throttle.WithWindow(-time.Minute)) }, `levee: throttle.New("db"): WithWindow: must be at least 10ms, got -1m0s`},
		{"tiny window", func() { throttle.New("db", throttle.WithWindow(time.Millisecond)) }, `levee: throttle.New("db"): WithWindow: must be at least 10ms, got 1ms`},
		{"nil predicate", func() { throttle.New("db", throttle.WithIsFailure(nil)) }, `levee: throttle.New("db"): WithIsFailure: isFailure must not be nil`},
		{"nil option", func() { throttle.New("db", nil) }, `levee: throttle.New("db"): option 0 is nil`},
		{"nil tracer provider", func() { throttle.New("db", throttle.WithTracerProvider(nil)) }, `levee: throttle.New("db"): WithTracerProvider: provider must not be nil`},
		{"typed nil tracer provider", func() { throttle.New("db", throttle.WithTracerProvider(nilTP)) }, `levee: throttle.New("db"): WithTracerProvider: provider is a nil *trace.TracerProvider`},
		{"nil meter provider", func() { throttle.New("db", throttle.WithMeterProvider(nil)) }, `levee: throttle.New("db"): WithMeterProvider: provider must not be nil`},
		{"typed nil meter provider", func() { throttle.New("db", throttle.WithMeterProvider(nilMP)) }, `levee: throttle.New("db"): WithMeterProvider: provider is a nil *metric.MeterProvider`},
		{"every problem at once", func() { throttle.New("", throttle.WithK(0), throttle.WithWindow(0)) }, `levee: throttle.New(""): name must not be empty; WithK: must be at least 1 and finite, got 0; WithWindow: must be at least 10ms, got 0s`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.message, testkit.PanicMessage(t, tt.build))
		})
	}
}

func TestThrottle_WithNoHistoryRefusesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := throttle.New("db", throttle.WithK(1))
		assert.Equal(t, "db", th.Name())
		assert.Zero(t, th.Probability())
		ran := false
		require.ErrorIs(t, th.Call(t.Context(), func(context.Context) error { ran = true; return errDown }), errDown)
		assert.True(t, ran, "the first call runs, whatever its dependency is going to say")
		assert.Equal(t, 0.5, th.Probability(), "one request, no accept")
	})
}

func TestThrottle_NeverRefusesACallToAHealthyDependency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := throttle.New("db")
		for i := range 10_000 {
			require.NoError(t, th.Call(t.Context(), up), "call %d", i)
			if i%100 == 0 {
				time.Sleep(time.Second)
			}
		}
		assert.Zero(t, th.Probability())
	})
}

// The probability of each call comes from the history before it, refused
// calls counted as requests: a test that keeps the same tally finds the
// same probability before every call.
func TestThrottle_ProbabilityFollowsTheFormulaOverTheHistoryBeforeEachCall(t *testing.T) {
	for _, k := range []float64{1, 1.5, 2, 3} {
		t.Run("K="+formatK(k), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				th := throttle.New("db", throttle.WithK(k), throttle.WithSeed(7))
				requests, accepts, refused := 0, 0, 0
				for i := range 500 {
					require.InDelta(t, want(k, requests, accepts), th.Probability(), 1e-12, "before call %d", i)
					ran := false
					err := th.Call(t.Context(), func(context.Context) error {
						ran = true
						if i%5 == 0 { // the dependency accepts one call in five
							return nil
						}
						return errDown
					})
					requests++
					switch {
					case !ran:
						require.ErrorIs(t, err, throttle.ErrThrottled)
						refused++
					case err == nil:
						accepts++
					}
				}
				assert.Positive(t, refused, "the throttle refused calls")
				assert.Less(t, refused, 500-accepts, "and let some through")
			})
		})
	}
}

// The same from many goroutines taking turns: their calls land in different
// stripes of the throttle's counts, and the probability is still that of
// the whole history, refusals and all.
func TestThrottle_ProbabilityIsThatOfTheWholeHistoryWhicheverGoroutinesCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const goroutines, turns = 16, 40
		th := throttle.New("db", throttle.WithSeed(11))
		requests, accepts, refused := 0, 0, 0
		turn := make([]chan struct{}, goroutines)
		for g := range turn {
			turn[g] = make(chan struct{})
		}
		done := make(chan struct{})
		for g := range goroutines {
			go func() {
				for range turns {
					<-turn[g]
					assert.InDelta(t, want(2, requests, accepts), th.Probability(), 1e-12, "before request %d", requests)
					ran := false
					err := th.Call(t.Context(), func(context.Context) error {
						ran = true
						if requests%4 == 0 { // one call in four is accepted
							return nil
						}
						return errDown
					})
					requests++
					switch {
					case !ran:
						refused++
					case err == nil:
						accepts++
					}
					if requests == goroutines*turns {
						close(done)
					} else {
						go func() { turn[requests%goroutines] <- struct{}{} }()
					}
				}
			}()
		}
		turn[0] <- struct{}{}
		<-done
		assert.Positive(t, refused, "calls were refused")
	})
}

func formatK(k float64) string { return strconv.FormatFloat(k, 'g', -1, 64) }

func TestThrottle_ARefusedCallDoesNotRunAndSaysWhy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := throttle.New("db", throttle.WithSeed(1))
		for range 1000 {
			_ = th.Call(t.Context(), down)
		}
		require.Greater(t, th.Probability(), 0.99)
		var err error
		ran := false
		for range 10 { // at p > 0.99 a refusal comes at once; the seed makes it certain
			ran = false
			if err = th.Call(t.Context(), func(context.Context) error { ran = true; return nil }); err != nil {
				break
			}
		}
		require.ErrorIs(t, err, throttle.ErrThrottled)
		assert.EqualError(t, err, `levee: throttle "db" refused the call: its dependency is refusing calls`)
		assert.False(t, ran, "the refused call did not run")
	})
}

func TestThrottle_TheSameSeedMakesTheSameDecisions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		decisions := func(seed uint64) []bool {
			th := throttle.New("db", throttle.WithSeed(seed))
			var refused []bool
			for range 300 {
				refused = append(refused, errors.Is(th.Call(t.Context(), down), throttle.ErrThrottled))
			}
			return refused
		}
		first := decisions(42)
		assert.Equal(t, first, decisions(42))
		assert.NotEqual(t, first, decisions(43))
	})
}

// The SRE book's claim: against a dependency that accepts a fixed capacity
// and refuses the rest, K = 2 lets through about twice what it accepts,
// however much more is offered.
func TestThrottle_LetsThroughAboutKTimesWhatTheDependencyAccepts(t *testing.T) {
	for _, tt := range []struct {
		k       float64
		offered int // calls a second; the dependency accepts 100
	}{{2, 500}, {2, 1000}, {1.5, 500}, {3, 1000}} {
		t.Run("K="+formatK(tt.k)+",offered="+strconv.Itoa(tt.offered), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				th := throttle.New("db", throttle.WithK(tt.k), throttle.WithSeed(3))
				var sent, accepted int
				second, acceptedThisSecond := -1, 0
				start := time.Now()
				backend := func(context.Context) error {
					if s := int(time.Since(start) / time.Second); s != second {
						second, acceptedThisSecond = s, 0
					}
					if time.Since(start) >= 2*throttle.DefaultWindow {
						sent++ // measured over the third and fourth minutes
					}
					if acceptedThisSecond < 100 {
						acceptedThisSecond++
						if time.Since(start) >= 2*throttle.DefaultWindow {
							accepted++
						}
						return nil
					}
					return errors.New("overloaded")
				}
				for time.Since(start) < 4*throttle.DefaultWindow {
					for range tt.offered / 100 {
						_ = th.Call(t.Context(), backend)
					}
					time.Sleep(10 * time.Millisecond)
				}
				ratio := float64(sent) / float64(accepted)
				assert.InDelta(t, tt.k, ratio, 0.1*tt.k, "sent %d for %d accepted", sent, accepted)
				assert.InDelta(t, 100*2*throttle.DefaultWindow.Seconds(), accepted, 100, "the dependency was kept at its capacity")
			})
		})
	}
}

// A call counts for between nine tenths of the window and the window: the
// window moves on by tenths. Against a dependency that refuses everything
// every call is a request, refused or not, so the probability tells how
// many calls the window holds: p = requests / (requests + 1).
func TestThrottle_ForgetsCallsOlderThanTheWindowWhileBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := throttle.New("db", throttle.WithSeed(1))
		for range 50 {
			_ = th.Call(t.Context(), down) // at 0
		}
		time.Sleep(500 * time.Millisecond)
		requestsIn := func(p float64) int { return int(math.Round(p / (1 - p))) }
		for s := range 130 { // one call a second, at s + 0.5s
			switch s {
			case 119:
				assert.Equal(t, 50+119, requestsIn(th.Probability()), "at 119.5s every call is in the window")
			case 120:
				assert.Equal(t, 108, requestsIn(th.Probability()), "at 120.5s the window begins at 12s")
			case 129:
				assert.Equal(t, 117, requestsIn(th.Probability()), "and still at 129.5s")
			}
			_ = th.Call(t.Context(), down)
			time.Sleep(time.Second)
		}
	})
}

func TestThrottle_ForgetsEverythingAfterAWindowWithoutCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := throttle.New("db", throttle.WithWindow(time.Minute))
		for range 100 {
			_ = th.Call(t.Context(), down)
		}
		require.Greater(t, th.Probability(), 0.9)
		time.Sleep(54 * time.Second)
		synctest.Wait()
		assert.Greater(t, th.Probability(), 0.9, "at nine tenths of the window the calls are still remembered")
		time.Sleep(6 * time.Second)
		synctest.Wait()
		assert.Zero(t, th.Probability(), "a whole window later they are forgotten")
		ran := false
		require.NoError(t, th.Call(t.Context(), func(context.Context) error { ran = true; return nil }))
		assert.True(t, ran)
		assert.Zero(t, th.Probability())
	})
}

func TestThrottle_WithIsFailureCountsServedErrorsAsAccepted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := throttle.New("db", throttle.WithIsFailure(func(err error) bool { return !errors.Is(err, errNotFound) }))
		for range 100 {
			require.ErrorIs(t, th.Call(t.Context(), func(context.Context) error { return errNotFound }), errNotFound)
		}
		assert.Zero(t, th.Probability(), "a not-found is a call the dependency served")
		for range 300 {
			_ = th.Call(t.Context(), down)
		}
		assert.Positive(t, th.Probability(), "the predicate's other errors are failures")
	})
}

func TestThrottle_ACallWhoseCallerGaveUpCountsNeitherWay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := throttle.New("db")
		for range 100 {
			ctx, cancel := context.WithCancel(t.Context())
			err := th.Call(ctx, func(ctx context.Context) error {
				cancel() // the caller gives up while the call runs
				return ctx.Err()
			})
			require.ErrorIs(t, err, context.Canceled)
		}
		assert.Zero(t, th.Probability(), "no request was counted")
		require.NoError(t, th.Call(t.Context(), up))
		_ = th.Call(t.Context(), down)
		_ = th.Call(t.Context(), down)
		_ = th.Call(t.Context(), down)
		assert.InDelta(t, want(2, 4, 1), th.Probability(), 1e-12, "four requests, one accept: the canceled calls count nothing")
	})
}

func TestThrottle_ACallWhoseContextIsDoneRunsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := throttle.New("db")
		_ = th.Call(t.Context(), down)
		require.Equal(t, 0.5, th.Probability())
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		ran := false
		assert.Same(t, context.Canceled, th.Call(ctx, func(context.Context) error { ran = true; return nil }))
		_, err := resilience.Wrap(func(context.Context) (int, error) { ran = true; return 1, nil }, throttle.Policy[int](th))(ctx)
		assert.Same(t, context.Canceled, err)
		assert.False(t, ran)
		assert.Equal(t, 0.5, th.Probability(), "still one request: the calls that ran nothing count nothing")
	})
}

func TestThrottle_APanicCountsAsAFailureAndPropagates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := throttle.New("db", throttle.WithK(1))
		assert.PanicsWithValue(t, "boom", func() { _ = th.Call(t.Context(), func(context.Context) error { panic("boom") }) })
		assert.Equal(t, 0.5, th.Probability())
		predicatePanics := throttle.New("db", throttle.WithK(1), throttle.WithIsFailure(func(error) bool { panic("predicate") }))
		assert.PanicsWithValue(t, "predicate", func() { _ = predicatePanics.Call(t.Context(), down) })
		assert.Equal(t, 0.5, predicatePanics.Probability())
	})
}

func TestThrottle_CallRefusesANilFunction(t *testing.T) {
	t.Parallel()
	th := throttle.New("db")
	assert.EqualError(t, th.Call(context.Background(), nil), "levee: throttle.Call: fn must not be nil")
	assert.Zero(t, th.Probability())
}

func TestThrottle_OneHistoryForEveryResultType(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := throttle.New("db", throttle.WithK(1))
		getInt := resilience.Wrap(func(context.Context) (int, error) { return 0, errDown }, throttle.Policy[int](th))
		getString := resilience.Wrap(func(context.Context) (string, error) { return "ok", nil }, throttle.Policy[string](th))
		_, _ = getInt(t.Context())
		assert.Equal(t, 0.5, th.Probability())
		v, err := getString(t.Context())
		if err == nil {
			assert.Equal(t, "ok", v)
		}
		assert.NotEqual(t, 0.5, th.Probability(), "the string call counted in the same history")
	})
}

func TestPolicy_RefusesANilThrottle(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "levee: throttle.Policy: throttle must not be nil", testkit.PanicMessage(t, func() { throttle.Policy[int](nil) }))
}

func TestPolicy_IsATelemetrySourceWithTheThrottlesNameAndProviders(t *testing.T) {
	t.Parallel()
	tp := tracenoop.NewTracerProvider()
	th := throttle.New("db", throttle.WithTracerProvider(tp))
	src, ok := throttle.Policy[int](th).(resilience.TelemetrySource)
	require.True(t, ok)
	assert.Equal(t, resilience.Telemetry{Name: "db", TracerProvider: tp}, src.Telemetry())
}

// Hundreds of goroutines, with the race detector: a healthy dependency is
// never throttled, and against a failing one every call is decided once.
func TestThrottle_UnderLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const goroutines, callsEach = 300, 200
		healthy, failing := throttle.New("healthy"), throttle.New("failing")
		var refusedHealthy, ran, refused, other atomic.Int64
		var wg sync.WaitGroup
		for range goroutines {
			wg.Go(func() {
				for i := range callsEach {
					if errors.Is(healthy.Call(t.Context(), up), throttle.ErrThrottled) {
						refusedHealthy.Add(1)
					}
					err := failing.Call(t.Context(), func(context.Context) error { ran.Add(1); return errDown })
					switch {
					case errors.Is(err, throttle.ErrThrottled):
						refused.Add(1)
					case !errors.Is(err, errDown):
						other.Add(1)
					}
					if i%20 == 0 {
						time.Sleep(time.Second)
					}
				}
			})
		}
		wg.Wait()
		assert.Zero(t, refusedHealthy.Load())
		assert.Zero(t, other.Load())
		assert.Equal(t, int64(goroutines*callsEach), ran.Load()+refused.Load(), "every call ran or was refused, once")
		assert.Greater(t, refused.Load(), ran.Load(), "most calls to the failing dependency were shed")
		assert.Less(t, failing.Probability(), 1.0)
	})
}

func TestThrottle_AllocatesNothingOnItsCommonPaths(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		healthy := throttle.New("db")
		get := resilience.Wrap(func(context.Context) (int, error) { return 1, nil }, throttle.Policy[int](healthy))
		ctx := context.Background()
		assert.Zero(t, testing.AllocsPerRun(1000, func() { _ = healthy.Call(ctx, up) }))
		assert.Zero(t, testing.AllocsPerRun(1000, func() { _, _ = get(ctx) }))

		failing := throttle.New("db", throttle.WithK(1))
		for range 1000 {
			_ = failing.Call(ctx, down)
		}
		assert.Zero(t, testing.AllocsPerRun(1000, func() { _ = failing.Call(ctx, down) }), "refusals and failures")
		runtime.KeepAlive(failing)
	})
}
