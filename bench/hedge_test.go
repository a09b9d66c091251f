package bench

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/hedgepolicy"

	"github.com/levee-go/levee/hedge"
	"github.com/levee-go/levee/resilience"
)

// hedgeDelay is the delay of every hedge here: long enough never to pass,
// so that every call's first attempt answers within it.
const hedgeDelay = time.Hour

func leveeHedge(s *sdk, fn resilience.Func[int]) resilience.Func[int] {
	tel := resilience.Telemetry{Name: "dep", TracerProvider: s.tp, MeterProvider: s.mp}
	return resilience.WrapWith(tel, fn, hedge.Policy[int](hedgeDelay))
}

func failsafeHedge(ctx context.Context, fn resilience.Func[int]) func() (int, error) {
	exec := failsafeExecutor(ctx, hedgepolicy.NewWithDelay[int](hedgeDelay))
	call := func(e failsafe.Execution[int]) (int, error) { return fn(e.Context()) }
	return func() (int, error) { return exec.GetWithExecution(call) }
}

// hedgeLibs are the libraries of the side-by-side hedge benchmarks, as
// retryLibs are for retries. lib=withcancel+timer is what any hedge must
// pay in case the first attempt is slow: a cancellable context for the
// attempt and a timer for the hedge, armed and stopped.
var hedgeLibs = []struct {
	name  string
	build func(ctx context.Context, s *sdk, fn resilience.Func[int]) func() (int, error)
}{
	{"withcancel+timer", func(ctx context.Context, _ *sdk, fn resilience.Func[int]) func() (int, error) {
		fire := func() {}
		return func() (int, error) {
			actx, cancel := context.WithCancel(ctx)
			timer := time.AfterFunc(hedgeDelay, fire)
			v, err := fn(actx)
			timer.Stop()
			cancel()
			return v, err
		}
	}},
	{"levee", func(ctx context.Context, s *sdk, fn resilience.Func[int]) func() (int, error) {
		get := leveeHedge(s, fn)
		return func() (int, error) { return get(ctx) }
	}},
	{"failsafe-go", func(ctx context.Context, _ *sdk, fn resilience.Func[int]) func() (int, error) {
		return failsafeHedge(ctx, fn)
	}},
}

// BenchmarkHedgeFirstFast: a hedged call whose first attempt answers
// within the delay, so that no hedge starts: the path almost every hedged
// call takes. levee runs with the OpenTelemetry SDK installed. The caller's
// context is cancellable, as a request's is, so that a child context has a
// parent to register with.
func BenchmarkHedgeFirstFast(b *testing.B) { benchHedgeFirstFast(b, workFn) }

// benchHedgeFirstFast runs a hedged call of fn through each library, from
// a cancellable caller's context.
func benchHedgeFirstFast(b *testing.B, fn resilience.Func[int]) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, lib := range hedgeLibs {
		b.Run("lib="+lib.name, func(b *testing.B) {
			call := lib.build(ctx, newSDK(b), fn)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				sink, _ = call()
			}
		})
	}
}

// BenchmarkHedgeFirstFastDone is BenchmarkHedgeFirstFast with a function
// that looks at its context's Done channel, as one that honours its
// context (an HTTP or gRPC client) does: the attempt's context must then
// make its channel and register with the caller's.
func BenchmarkHedgeFirstFastDone(b *testing.B) { benchHedgeFirstFast(b, doneFn) }

// BenchmarkHedgeFirstFastParallel is BenchmarkHedgeFirstFast from every
// core at once, parallelBatch calls per pb.Next() and the figures reported
// per call (see reportPerCall). One pipeline serves every goroutine.
func BenchmarkHedgeFirstFastParallel(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, lib := range hedgeLibs {
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

// hedgedFn is the function of BenchmarkHedgeHedged: of each call's two
// attempts, the one that starts first waits for its context, the other
// answers at once. Attempts are told apart by the parity of a shared count,
// as they may run in goroutines of their own.
func hedgedFn() resilience.Func[int] {
	var attempts atomic.Int64
	return func(ctx context.Context) (int, error) {
		if attempts.Add(1)%2 == 1 {
			<-ctx.Done()
			return 0, ctx.Err()
		}
		return 2, nil
	}
}

// hedgedDelay is the delay of BenchmarkHedgeHedged: short, so that the
// hedge starts at once and its timer's wake-up is most of the time.
const hedgedDelay = time.Millisecond

// BenchmarkHedgeHedged: a hedged call whose first attempt is slow, so that
// a hedge starts, wins, and the first attempt is cancelled. Its time is
// mostly the timer's wake-up, which the scheduler rounds up: compare
// allocations, and time only within a run. Each call checks that the hedge
// won.
func BenchmarkHedgeHedged(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.Run("lib=levee", func(b *testing.B) {
		s := newSDK(b)
		tel := resilience.Telemetry{Name: "dep", TracerProvider: s.tp, MeterProvider: s.mp}
		get := resilience.WrapWith(tel, hedgedFn(), hedge.Policy[int](hedgedDelay))
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if v, err := get(ctx); v != 2 || err != nil {
				b.Fatalf("call %d = %d, %v; want the hedge's 2, nil", i, v, err)
			}
		}
	})
	b.Run("lib=failsafe-go", func(b *testing.B) {
		fn := hedgedFn()
		exec := failsafeExecutor(ctx, hedgepolicy.NewWithDelay[int](hedgedDelay))
		call := func(e failsafe.Execution[int]) (int, error) { return fn(e.Context()) }
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if v, err := exec.GetWithExecution(call); v != 2 || err != nil {
				b.Fatalf("call %d = %d, %v; want the hedge's 2, nil", i, v, err)
			}
		}
	})
}
