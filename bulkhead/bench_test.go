package bulkhead_test

import (
	"context"
	"testing"

	"github.com/levee-go/levee/bulkhead"
	"github.com/levee-go/levee/internal/testkit"
	"github.com/levee-go/levee/resilience"
)

// The benchmarks here watch the bulkhead's own paths for regressions:
//
//	go test -run='^$' -bench=. -benchmem ./bulkhead
//
// Each runs with no SDK, with an OpenTelemetry SDK installed, and with the
// SDK and a recording span in the caller's context: a call that gets a slot
// at once must cost the same all three ways. The side-by-side comparison
// with other libraries lives in the bench module.

func benchOptions(env testkit.BenchEnv) []bulkhead.Option {
	return []bulkhead.Option{bulkhead.WithMeterProvider(env.MP), bulkhead.WithTracerProvider(env.TP)}
}

//go:noinline
func benchWork(context.Context) (int, error) { return 1, nil }

//go:noinline
func benchWorkErr(context.Context) error { return nil }

// BenchmarkAcquireRelease: an uncontended call through a pipeline
// (bulkhead.Policy): take a free slot, call, give it back.
func BenchmarkAcquireRelease(b *testing.B) {
	testkit.BenchEach(b, func(b *testing.B, env testkit.BenchEnv) {
		bh := bulkhead.New("bench", 1, benchOptions(env)...)
		get := resilience.Wrap(benchWork, bulkhead.Policy[int](bh))
		testkit.BenchCall(b, env.Ctx, get)
	})
}

// BenchmarkAcquireReleaseCall: the same through Bulkhead.Call.
func BenchmarkAcquireReleaseCall(b *testing.B) {
	testkit.BenchEach(b, func(b *testing.B, env testkit.BenchEnv) {
		bh := bulkhead.New("bench", 1, benchOptions(env)...)
		b.ReportAllocs()
		for b.Loop() {
			_ = bh.Call(env.Ctx, benchWorkErr)
		}
	})
}

// BenchmarkRejected: a call that finds the only slot taken.
func BenchmarkRejected(b *testing.B) {
	testkit.BenchEach(b, func(b *testing.B, env testkit.BenchEnv) {
		bh := bulkhead.New("bench", 1, benchOptions(env)...)
		entered, done := make(chan struct{}), make(chan struct{})
		go func() {
			_ = bh.Call(context.Background(), func(context.Context) error { close(entered); <-done; return nil })
		}()
		<-entered
		defer close(done)
		get := resilience.Wrap(benchWork, bulkhead.Policy[int](bh))
		testkit.BenchCall(b, env.Ctx, get)
	})
}

// BenchmarkAcquireReleaseParallel: BenchmarkAcquireRelease from every core
// at once, with slots for all of them. ns/op is wall time over all calls.
func BenchmarkAcquireReleaseParallel(b *testing.B) {
	testkit.BenchEach(b, func(b *testing.B, env testkit.BenchEnv) {
		bh := bulkhead.New("bench", 1<<20, benchOptions(env)...)
		get := resilience.Wrap(benchWork, bulkhead.Policy[int](bh))
		testkit.BenchParallel(b, env.Ctx, get)
	})
}
