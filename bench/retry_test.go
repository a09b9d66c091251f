package bench

import (
	"context"
	"sync/atomic"
	"testing"

	retrygo "github.com/avast/retry-go/v4"
	backoff "github.com/cenkalti/backoff/v5"
	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/retrypolicy"

	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/retry"
)

// Every retry here makes at most retryAttempts attempts in all, the first
// included, with no delay between them: what is measured is the policy, not
// a sleep.
const retryAttempts = 3

// floorCount is the counter of lib=floor, alone on its cache line.
var floorCount struct {
	_ [64]byte
	n atomic.Int64
	_ [56]byte
}

// floorCall is what DESIGN.md calls the floor of a guarded call: a call
// through a func value, an open-coded defer and one atomic add to a counter
// alone on its cache line.
func floorCall(ctx context.Context, fn resilience.Func[int]) (int, error) {
	defer floorCount.n.Add(1)
	return fn(ctx)
}

// failOnce fails every other call: a call retried once fails, then
// succeeds. Each goroutine of a parallel benchmark has its own.
type failOnce struct{ calls int }

//go:noinline
func (f *failOnce) call(context.Context) (int, error) {
	f.calls++
	if f.calls&1 == 1 {
		return 0, errDep
	}
	return 1, nil
}

// A retry library, set up to call fn (a resilience.Func[int]) with ctx at
// most retryAttempts times with no delay, built once: the cheapest way each
// can be called. The returned function is one call.

func leveeRetry(s *sdk, fn resilience.Func[int], opts ...retry.Option) resilience.Func[int] {
	tel := resilience.Telemetry{Name: "dep", TracerProvider: s.tp, MeterProvider: s.mp}
	opts = append([]retry.Option{retry.WithMaxAttempts(retryAttempts), retry.WithDelay(0)}, opts...)
	return resilience.WrapWith(tel, fn, retry.Policy[int](opts...))
}

func failsafeRetry(ctx context.Context, fn resilience.Func[int]) func() (int, error) {
	rp := retrypolicy.NewBuilder[int]().WithMaxAttempts(retryAttempts).WithDelay(0).Build()
	exec := failsafeExecutor(ctx, rp)
	call := func(e failsafe.Execution[int]) (int, error) { return fn(e.Context()) }
	return func() (int, error) { return exec.GetWithExecution(call) }
}

func backoffRetry(ctx context.Context, fn resilience.Func[int]) func() (int, error) {
	opts := []backoff.RetryOption{backoff.WithBackOff(&backoff.ZeroBackOff{}), backoff.WithMaxTries(retryAttempts)}
	op := func() (int, error) { return fn(ctx) }
	return func() (int, error) { return backoff.Retry(ctx, op, opts...) }
}

func retrygoRetry(ctx context.Context, fn resilience.Func[int]) func() (int, error) {
	opts := []retrygo.Option{
		retrygo.Attempts(retryAttempts), retrygo.Delay(0), retrygo.DelayType(retrygo.FixedDelay),
		retrygo.Context(ctx), retrygo.LastErrorOnly(true),
	}
	op := func() (int, error) { return fn(ctx) }
	return func() (int, error) { return retrygo.DoWithData(op, opts...) }
}

// retryLibs are the libraries of the side-by-side retry benchmarks: each
// builds, for fn, the function that makes one call (ctx bound in), with
// levee reporting to the SDK s.
var retryLibs = []struct {
	name  string
	build func(ctx context.Context, s *sdk, fn resilience.Func[int]) func() (int, error)
}{
	{"floor", func(ctx context.Context, _ *sdk, fn resilience.Func[int]) func() (int, error) {
		return func() (int, error) { return floorCall(ctx, fn) }
	}},
	{"levee", func(ctx context.Context, s *sdk, fn resilience.Func[int]) func() (int, error) {
		get := leveeRetry(s, fn)
		return func() (int, error) { return get(ctx) }
	}},
	// levee-budget draws its retries from a budget, as the docs advise:
	// every call deposits its first attempt (one atomic add), every retry
	// withdraws (a clock read and a lock).
	{"levee-budget", func(ctx context.Context, s *sdk, fn resilience.Func[int]) func() (int, error) {
		get := leveeRetry(s, fn, retry.WithBudget(retry.NewBudget(1, 1<<30)))
		return func() (int, error) { return get(ctx) }
	}},
	{"failsafe-go", func(ctx context.Context, _ *sdk, fn resilience.Func[int]) func() (int, error) {
		return failsafeRetry(ctx, fn)
	}},
	{"backoff", func(ctx context.Context, _ *sdk, fn resilience.Func[int]) func() (int, error) {
		return backoffRetry(ctx, fn)
	}},
	{"retry-go", func(ctx context.Context, _ *sdk, fn resilience.Func[int]) func() (int, error) {
		return retrygoRetry(ctx, fn)
	}},
}

// BenchmarkRetrySuccess: a call through a retry whose first attempt
// succeeds, the path almost every call takes. levee runs with the
// OpenTelemetry SDK installed; lib=floor is the floor of a guarded call.
func BenchmarkRetrySuccess(b *testing.B) {
	ctx := context.Background()
	for _, lib := range retryLibs {
		b.Run("lib="+lib.name, func(b *testing.B) {
			call := lib.build(ctx, newSDK(b), workFn)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				sink, _ = call()
			}
		})
	}
	b.Run("lib=levee-span", func(b *testing.B) {
		s := newSDK(b)
		ctx := s.spanCtx(b)
		get := leveeRetry(s, workFn)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			sink, _ = get(ctx)
		}
	})
}

// BenchmarkRetryOneFailure: a retried call, its first attempt failing and
// its second succeeding, with no delay between them: the decision to
// retry, its telemetry and the second attempt. levee-span adds a recording
// span to the caller's context, on which levee adds a
// levee.retry.scheduled event per retry.
func BenchmarkRetryOneFailure(b *testing.B) {
	ctx := context.Background()
	for _, lib := range retryLibs[1:] { // the floor does not retry
		b.Run("lib="+lib.name, func(b *testing.B) {
			dep := &failOnce{}
			call := lib.build(ctx, newSDK(b), dep.call)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				sink, _ = call()
			}
			b.StopTimer()
			requireRetried(b, dep, b.N)
		})
	}
	b.Run("lib=levee-span", func(b *testing.B) {
		s := newSDK(b)
		ctx := s.spanCtx(b)
		dep := &failOnce{}
		get := leveeRetry(s, dep.call)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			sink, _ = get(ctx)
		}
		b.StopTimer()
		requireRetried(b, dep, b.N)
	})
}

// requireRetried checks that each of n calls made two attempts.
func requireRetried(b *testing.B, dep *failOnce, n int) {
	b.Helper()
	if dep.calls != 2*n || sink != 1 {
		b.Fatalf("%d calls made %d attempts and the last returned %d, want %d attempts and 1", n, dep.calls, sink, 2*n)
	}
}

// BenchmarkRetrySuccessParallel is BenchmarkRetrySuccess from every core
// at once (b.RunParallel), parallelBatch calls per pb.Next() and the
// figures reported per call (see reportPerCall). One retry value serves
// every goroutine.
func BenchmarkRetrySuccessParallel(b *testing.B) {
	ctx := context.Background()
	for _, lib := range retryLibs[1:] {
		b.Run("lib="+lib.name, func(b *testing.B) {
			call := lib.build(ctx, newSDK(b), workFn)
			start := startPerCall(b)
			b.RunParallel(func(pb *testing.PB) {
				n := 0
				for pb.Next() {
					for range parallelBatch {
						v, _ := call()
						n += v
					}
				}
				_ = n
			})
			reportPerCall(b, start)
		})
	}
}

// BenchmarkRetryOneFailureParallel is BenchmarkRetryOneFailure from every
// core at once. Each goroutine calls its own failing function, so each
// builds its own call with the same settings (for levee: a pipeline per
// goroutine, every one reporting to one SDK; lib=levee-budget gives each its
// own budget).
func BenchmarkRetryOneFailureParallel(b *testing.B) {
	ctx := context.Background()
	for _, lib := range retryLibs[1:] {
		b.Run("lib="+lib.name, func(b *testing.B) {
			s := newSDK(b)
			start := startPerCall(b)
			b.RunParallel(func(pb *testing.PB) {
				dep := &failOnce{}
				call := lib.build(ctx, s, dep.call)
				n := 0
				for pb.Next() {
					for range parallelBatch {
						v, _ := call()
						n += v
					}
				}
				_ = n
			})
			reportPerCall(b, start)
		})
	}
}
