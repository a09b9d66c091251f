package breaker_test

import (
	"context"
	"errors"
	"flag"
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/internal/testkit"
	"github.com/levee-go/levee/resilience"
)

// The benchmarks here watch the breaker's own paths for regressions:
//
//	go test -run='^$' -bench=. -benchmem ./breaker
//
// Each runs three ways: sdk=none (no-op providers), sdk=on (an OpenTelemetry
// SDK MeterProvider and a TracerProvider sampling every span) and
// sdk=on+span (the SDK, and a recording span in the caller's context). The
// closed path must cost the same all three ways. The side-by-side
// comparison with other libraries, and the goals, live in the bench module
// (bench/run.sh, docs/performance.md).

// benchEnv is the telemetry a benchmark's breaker reports to, and the
// context its calls carry.
type benchEnv = testkit.BenchEnv

func benchOptions(e benchEnv, opts ...breaker.Option) []breaker.Option {
	return append([]breaker.Option{breaker.WithMeterProvider(e.MP), breaker.WithTracerProvider(e.TP)}, opts...)
}

var (
	benchNoSDK   = testkit.BenchNoSDK
	benchSDK     = testkit.BenchSDK
	benchSDKSpan = testkit.BenchSDKSpan
	benchEach    = testkit.BenchEach
)

var errBench = errors.New("bench: dependency failed")

//go:noinline
func benchWork(context.Context) (int, error) { return 1, nil }

//go:noinline
func benchFail(context.Context) (int, error) { return 0, errBench }

//go:noinline
func benchWorkErr(context.Context) error { return nil }

func benchRequireState(b *testing.B, br *breaker.Breaker, want breaker.State) {
	b.Helper()
	if got := br.State(); got != want {
		b.Fatalf("breaker is %v, want %v", got, want)
	}
}

// benchTrip opens br with failing calls.
func benchTrip(b *testing.B, ctx context.Context, br *breaker.Breaker) {
	b.Helper()
	trip := resilience.Wrap(benchFail, breaker.Policy[int](br))
	for br.State() == breaker.Closed {
		_, _ = trip(ctx)
	}
	benchRequireState(b, br, breaker.Open)
}

// BenchmarkClosed: a successful call through a closed breaker in a
// pipeline (breaker.Policy), the path almost every call takes.
func BenchmarkClosed(b *testing.B) {
	benchEach(b, func(b *testing.B, env benchEnv) {
		br := breaker.New("bench", benchOptions(env)...)
		get := resilience.Wrap(benchWork, breaker.Policy[int](br))
		testkit.BenchCall(b, env.Ctx, get)
		b.StopTimer()
		benchRequireState(b, br, breaker.Closed)
	})
}

// BenchmarkClosedCall: the same through Breaker.Call.
func BenchmarkClosedCall(b *testing.B) {
	benchEach(b, func(b *testing.B, env benchEnv) {
		br := breaker.New("bench", benchOptions(env)...)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			_ = br.Call(env.Ctx, benchWorkErr)
		}
	})
}

// BenchmarkClosedParallel: BenchmarkClosed from every core at once. ns/op
// is wall time over all calls; it stays close to BenchmarkClosed's only if
// the cores do not fight over the breaker's cache lines.
func BenchmarkClosedParallel(b *testing.B) {
	benchEach(b, func(b *testing.B, env benchEnv) {
		br := breaker.New("bench", benchOptions(env)...)
		get := resilience.Wrap(benchWork, breaker.Policy[int](br))
		ctx := env.Ctx
		start := benchStartPerCall(b)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				for range benchParallelBatch {
					_, _ = get(ctx)
				}
			}
		})
		benchReportPerCall(b, start)
	})
}

// benchWindows are the windowed breakers of issue 12's budget ("a
// failure-rate window, count or time, closed success: at most 2x the
// consecutive path, 0 allocs, no lock"), and the options that make a
// breaker read the clock per call.
var benchWindows = []struct {
	name string
	opts []breaker.Option
}{
	{"count", []breaker.Option{breaker.WithCountWindow(100), breaker.WithFailureRate(0.5)}},
	{"time", []breaker.Option{breaker.WithTimeWindow(10*time.Second, 10), breaker.WithFailureRate(0.5)}},
	{"slow", []breaker.Option{breaker.WithCountWindow(100), breaker.WithSlowCallDuration(time.Second), breaker.WithSlowCallRate(0.5)}},
	{"histogram", []breaker.Option{breaker.WithCallDurationHistogram()}},
}

// BenchmarkClosedWindow: BenchmarkClosed with a count window, a time window,
// slow calls (two clock reads per call), and the call duration histogram
// (two clock reads and a record per call). Compare window=count and
// window=time with BenchmarkClosed: the goal is at most twice its ns/op.
func BenchmarkClosedWindow(b *testing.B) {
	for _, w := range benchWindows {
		b.Run("window="+w.name, func(b *testing.B) {
			benchEach(b, func(b *testing.B, env benchEnv) {
				br := breaker.New("bench", benchOptions(env, w.opts...)...)
				get := resilience.Wrap(benchWork, breaker.Policy[int](br))
				testkit.BenchCall(b, env.Ctx, get)
				b.StopTimer()
				benchRequireState(b, br, breaker.Closed)
			})
		})
	}
}

// BenchmarkClosedWindowParallel: BenchmarkClosedWindow from every core at
// once; the goal is at most 1.5x the serial figure.
func BenchmarkClosedWindowParallel(b *testing.B) {
	for _, w := range benchWindows[:2] {
		b.Run("window="+w.name, func(b *testing.B) {
			benchEach(b, func(b *testing.B, env benchEnv) {
				br := breaker.New("bench", benchOptions(env, w.opts...)...)
				get := resilience.Wrap(benchWork, breaker.Policy[int](br))
				ctx := env.Ctx
				start := benchStartPerCall(b)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						for range benchParallelBatch {
							_, _ = get(ctx)
						}
					}
				})
				benchReportPerCall(b, start)
			})
		})
	}
}

// BenchmarkFailingWindow: a failing call through a closed windowed breaker
// that stays closed (its ratio is never reached): the path that reads the
// window and asks the rule.
func BenchmarkFailingWindow(b *testing.B) {
	for _, w := range []struct {
		name string
		opt  breaker.Option
	}{{"count", breaker.WithCountWindow(100)}, {"time", breaker.WithTimeWindow(10*time.Second, 10)}} {
		b.Run("window="+w.name, func(b *testing.B) {
			env := benchNoSDK(b)
			br := breaker.New("bench", benchOptions(env, w.opt, breaker.WithTripRule(func(breaker.WindowCounts) bool { return false }))...)
			get := resilience.Wrap(benchFail, breaker.Policy[int](br))
			testkit.BenchCall(b, env.Ctx, get)
			b.StopTimer()
			benchRequireState(b, br, breaker.Closed)
		})
	}
}

// BenchmarkOpenShadow: a call an open breaker in shadow mode lets through.
func BenchmarkOpenShadow(b *testing.B) {
	env := benchNoSDK(b)
	br := breaker.New("bench", benchOptions(env, breaker.WithOpenTimeout(time.Hour))...)
	benchTrip(b, env.Ctx, br)
	br.SetShadowMode(true)
	get := resilience.Wrap(benchWork, breaker.Policy[int](br))
	testkit.BenchCall(b, env.Ctx, get)
	b.StopTimer()
	benchRequireState(b, br, breaker.Open)
}

// benchParallelBatch is how many calls a RunParallel goroutine makes per
// pb.Next(). Next writes to the goroutine's testing.PB, and the PBs of two
// goroutines often share a cache line: a call with an atomic
// read-modify-write (a full fence) then waits for that falsely shared
// store, and the benchmark would measure the testing package's layout.
const benchParallelBatch = 64

func benchStartPerCall(b *testing.B) runtime.MemStats {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ResetTimer()
	return ms
}

// benchReportPerCall reports ns/op, B/op and allocs/op per call (b.N *
// benchParallelBatch calls) in place of the per-pb.Next() figures.
func benchReportPerCall(b *testing.B, start runtime.MemStats) {
	b.StopTimer()
	var end runtime.MemStats
	runtime.ReadMemStats(&end)
	calls := float64(b.N) * benchParallelBatch
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/calls, "ns/op")
	b.ReportMetric(float64(end.TotalAlloc-start.TotalAlloc)/calls, "B/op")
	b.ReportMetric(float64(end.Mallocs-start.Mallocs)/calls, "allocs/op")
}

// BenchmarkOpen: a call rejected by an open breaker, whose timer makes the
// half-open transition, so no rejection reads the clock. With sdk=on+span each rejection adds an event to the span.
func BenchmarkOpen(b *testing.B) {
	benchEach(b, func(b *testing.B, env benchEnv) {
		br := breaker.New("bench", benchOptions(env, breaker.WithOpenTimeout(time.Hour))...)
		benchTrip(b, env.Ctx, br)
		get := resilience.Wrap(benchWork, breaker.Policy[int](br))
		testkit.BenchCall(b, env.Ctx, get)
		b.StopTimer()
		benchRequireState(b, br, breaker.Open)
	})
}

// BenchmarkOpenParallel: BenchmarkOpen from every core at once.
func BenchmarkOpenParallel(b *testing.B) {
	benchEach(b, func(b *testing.B, env benchEnv) {
		br := breaker.New("bench", benchOptions(env, breaker.WithOpenTimeout(time.Hour))...)
		benchTrip(b, env.Ctx, br)
		get := resilience.Wrap(benchWork, breaker.Policy[int](br))
		ctx := env.Ctx
		start := benchStartPerCall(b)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				for range benchParallelBatch {
					_, _ = get(ctx)
				}
			}
		})
		benchReportPerCall(b, start)
	})
}

// BenchmarkOpenRetryAfter: a rejection by an open breaker, and the
// caller reading its RetryAfter hint, as a client honouring it does: the
// clock read the rejection itself no longer makes. (It replaces the
// benchmark of an injected clock's rejection path: there is one time path
// now.)
func BenchmarkOpenRetryAfter(b *testing.B) {
	benchEach(b, func(b *testing.B, env benchEnv) {
		br := breaker.New("bench", benchOptions(env, breaker.WithOpenTimeout(time.Hour))...)
		benchTrip(b, env.Ctx, br)
		get := resilience.Wrap(benchWork, breaker.Policy[int](br))
		testkit.BenchCall(b, env.Ctx, func(ctx context.Context) (time.Duration, error) {
			_, err := get(ctx)
			if openErr, ok := errors.AsType[*breaker.OpenError](err); ok {
				return openErr.RetryAfter(), err
			}
			return 0, err
		})
		b.StopTimer()
		benchRequireState(b, br, breaker.Open)
	})
}

// benchHalfOpenTimeout is the open timeout of BenchmarkHalfOpen's breakers.
// The open timer is the only way to half-open, so the benchmark waits that
// long, once, in real time; and a probe in flight longer than the open
// timeout no longer holds the breaker, so it must also outlast each
// sub-benchmark's run: 2s, or three times -test.benchtime when that is a
// longer duration.
func benchHalfOpenTimeout() time.Duration {
	d := 2 * time.Second
	if f := flag.Lookup("test.benchtime"); f != nil {
		if benchtime, err := time.ParseDuration(f.Value.String()); err == nil {
			d = max(d, 3*benchtime)
		}
	}
	return d
}

// BenchmarkHalfOpen: a call rejected because the half-open probe is in
// flight. The three breakers (one per telemetry setting) open together and
// their timers make them half-open after one real wait; each sub-benchmark
// then holds its breaker's probe in flight for as long as it runs.
func BenchmarkHalfOpen(b *testing.B) {
	openTimeout := benchHalfOpenTimeout()
	settings := []struct {
		name string
		env  func(testing.TB) benchEnv
	}{{"sdk=none", benchNoSDK}, {"sdk=on", benchSDK}, {"sdk=on+span", benchSDKSpan}}
	envs := make([]benchEnv, len(settings))
	breakers := make([]*breaker.Breaker, len(settings))
	for i, setting := range settings {
		envs[i] = setting.env(b)
		breakers[i] = breaker.New("bench", benchOptions(envs[i], breaker.WithOpenTimeout(openTimeout))...)
		benchTrip(b, envs[i].Ctx, breakers[i])
	}
	deadline := time.Now().Add(openTimeout + 10*time.Second)
	for _, br := range breakers {
		for br.State() != breaker.HalfOpen {
			if time.Now().After(deadline) {
				b.Fatalf("the open timer did not make the breaker half-open within %v of a %v open timeout", time.Until(deadline)+openTimeout+10*time.Second, openTimeout)
			}
			time.Sleep(time.Millisecond)
		}
	}
	parent := b
	for i, setting := range settings {
		br, env := breakers[i], envs[i]
		held := false
		b.Run(setting.name, func(b *testing.B) {
			if !held {
				held = true
				benchHoldProbe(b, parent, env.Ctx, br)
			}
			get := resilience.Wrap(benchWork, breaker.Policy[int](br))
			if _, err := get(env.Ctx); !errors.Is(err, breaker.ErrOpen) {
				b.Fatalf("got %v, want a half-open rejection", err)
			}
			testkit.BenchCall(b, env.Ctx, get)
			b.StopTimer()
			if br.State() != breaker.HalfOpen {
				b.Fatalf("breaker is %v: the held probe stopped holding it (in flight longer than the %v open timeout); run with a shorter -benchtime", br.State(), openTimeout)
			}
		})
	}
}

// benchHoldProbe makes a probe call that stays in flight until the parent
// benchmark ends (a sub-benchmark's cleanups run after each of its runs).
func benchHoldProbe(b, parent *testing.B, ctx context.Context, br *breaker.Breaker) {
	b.Helper()
	started, release, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		_ = br.Call(ctx, func(context.Context) error {
			close(started)
			<-release
			return nil
		})
	}()
	select {
	case <-started:
	case <-done:
		b.Fatal("the probe was rejected: the breaker is not half-open with its slot free")
	case <-time.After(10 * time.Second):
		b.Fatal("the probe neither ran nor returned within 10s")
	}
	parent.Cleanup(func() {
		close(release)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			parent.Error("the held probe did not return within 10s of its release")
		}
	})
}

// BenchmarkFailing: a failing call through a closed breaker that stays
// closed (its threshold is never reached).
func BenchmarkFailing(b *testing.B) {
	benchEach(b, func(b *testing.B, env benchEnv) {
		br := breaker.New("bench", benchOptions(env, breaker.WithFailureThreshold(math.MaxInt))...)
		get := resilience.Wrap(benchFail, breaker.Policy[int](br))
		testkit.BenchCall(b, env.Ctx, get)
		b.StopTimer()
		benchRequireState(b, br, breaker.Closed)
	})
}

// BenchmarkTrip: one op is the three failing calls that open a closed
// breaker, the last making the transition, and the Reset that closes it
// again: two transitions, each reported (counter, span, and an event when
// the caller's span records).
func BenchmarkTrip(b *testing.B) {
	benchEach(b, func(b *testing.B, env benchEnv) {
		br := breaker.New("bench", benchOptions(env)...)
		get := resilience.Wrap(benchFail, breaker.Policy[int](br))
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			for range breaker.DefaultFailureThreshold {
				_, _ = get(env.Ctx)
			}
			br.Reset(env.Ctx)
		}
		b.StopTimer()
		benchRequireState(b, br, breaker.Closed)
	})
}

// BenchmarkNew: creating a breaker, with its telemetry registered.
func BenchmarkNew(b *testing.B) {
	benchEach(b, func(b *testing.B, env benchEnv) {
		opts := benchOptions(env)
		keep := make([]*breaker.Breaker, 0, 1024)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if len(keep) == cap(keep) {
				keep = keep[:0]
			}
			keep = append(keep, breaker.New("bench", opts...))
		}
	})
}
