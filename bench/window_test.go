package bench

import (
	"context"
	"testing"
	"time"

	gobreaker "github.com/sony/gobreaker/v2"

	fscb "github.com/failsafe-go/failsafe-go/circuitbreaker"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/resilience"
)

func newLeveeWindowed(s *sdk, window breaker.Option) *breaker.Breaker {
	return breaker.New("dep", window, breaker.WithFailureRate(0.5), breaker.WithMinCalls(100),
		breaker.WithOpenTimeout(openFor), breaker.WithMeterProvider(s.mp), breaker.WithTracerProvider(s.tp))
}

// BenchmarkClosedSuccessWindow: a successful call through a closed breaker
// that trips on a failure rate over a window (issue 12): the last 100 calls,
// or the last 10s in 10 buckets, 50% of at least 100 calls. levee's goal:
// at most twice its consecutive path (BenchmarkClosedSuccess/lib=levee), 0
// allocs, no lock. gobreaker's rolling window (BucketPeriod) and failsafe-go's
// count- and time-based thresholds, side by side.
func BenchmarkClosedSuccessWindow(b *testing.B) {
	ctx := context.Background()
	levee := func(b *testing.B, window breaker.Option) {
		br := newLeveeWindowed(newSDK(b), window)
		get := resilience.Wrap(workFn, breaker.Policy[int](br))
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			sink, _ = get(ctx)
		}
		b.StopTimer()
		requireLeveeState(b, br, breaker.Closed)
	}
	b.Run("lib=levee-count", func(b *testing.B) { levee(b, breaker.WithCountWindow(100)) })
	b.Run("lib=levee-time", func(b *testing.B) { levee(b, breaker.WithTimeWindow(10*time.Second, 10)) })
	b.Run("lib=gobreaker-rolling", func(b *testing.B) {
		cb := gobreaker.NewCircuitBreaker[int](gobreaker.Settings{
			Name:         "dep",
			Interval:     10 * time.Second,
			BucketPeriod: time.Second,
			Timeout:      openFor,
			ReadyToTrip: func(c gobreaker.Counts) bool {
				return c.Requests >= 100 && 2*c.TotalFailures >= c.Requests
			},
		})
		fn := func() (int, error) { return workFn(ctx) }
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			sink, _ = cb.Execute(fn)
		}
	})
	failsafeWindow := func(b *testing.B, cb fscb.CircuitBreaker[int]) {
		exec := failsafeExecutor(ctx, cb)
		fn := func() (int, error) { return workFn(ctx) }
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			sink, _ = exec.Get(fn)
		}
		b.StopTimer()
		requireFailsafeState(b, cb, fscb.ClosedState)
	}
	b.Run("lib=failsafe-go-count", func(b *testing.B) {
		failsafeWindow(b, fscb.NewBuilder[int]().WithFailureThresholdRatio(50, 100).WithDelay(openFor).Build())
	})
	b.Run("lib=failsafe-go-time", func(b *testing.B) {
		failsafeWindow(b, fscb.NewBuilder[int]().WithFailureRateThreshold(0.5, 100, 10*time.Second).WithDelay(openFor).Build())
	})
}

// BenchmarkClosedSuccessWindowParallel: levee's windowed breakers from every
// core at once; the goal is at most 1.5x the serial figure.
func BenchmarkClosedSuccessWindowParallel(b *testing.B) {
	ctx := context.Background()
	levee := func(b *testing.B, window breaker.Option) {
		br := newLeveeWindowed(newSDK(b), window)
		get := resilience.Wrap(workFn, breaker.Policy[int](br))
		start := startPerCall(b)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				for range parallelBatch {
					_, _ = get(ctx)
				}
			}
		})
		reportPerCall(b, start)
		requireLeveeState(b, br, breaker.Closed)
	}
	b.Run("lib=levee-count", func(b *testing.B) { levee(b, breaker.WithCountWindow(100)) })
	b.Run("lib=levee-time", func(b *testing.B) { levee(b, breaker.WithTimeWindow(10*time.Second, 10)) })
}
