package throttle_test

import (
	"context"
	"errors"
	"testing"

	"github.com/levee-go/levee/internal/testkit"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/throttle"
)

// The benchmarks here watch the throttle's own paths for regressions:
//
//	go test -run='^$' -bench=. -benchmem ./throttle
//
// The side-by-side comparison with other libraries lives in the bench
// module.

func benchOptions(env testkit.BenchEnv) []throttle.Option {
	return []throttle.Option{throttle.WithMeterProvider(env.MP), throttle.WithTracerProvider(env.TP)}
}

var errBench = errors.New("bench: overloaded")

//go:noinline
func benchWork(context.Context) (int, error) { return 1, nil }

//go:noinline
func benchFail(context.Context) (int, error) { return 0, errBench }

// BenchmarkHealthy: a call through a pipeline (throttle.Policy) to a
// dependency that accepts it.
func BenchmarkHealthy(b *testing.B) {
	testkit.BenchEach(b, func(b *testing.B, env testkit.BenchEnv) {
		th := throttle.New("bench", benchOptions(env)...)
		get := resilience.Wrap(benchWork, throttle.Policy[int](th))
		testkit.BenchCall(b, env.Ctx, get)
	})
}

// BenchmarkOverloaded: calls to a dependency that refuses them all, most of
// them refused by the throttle at once.
func BenchmarkOverloaded(b *testing.B) {
	testkit.BenchEach(b, func(b *testing.B, env testkit.BenchEnv) {
		th := throttle.New("bench", append(benchOptions(env), throttle.WithSeed(1))...)
		get := resilience.Wrap(benchFail, throttle.Policy[int](th))
		for range 1000 {
			_, _ = get(env.Ctx)
		}
		testkit.BenchCall(b, env.Ctx, get)
	})
}

// BenchmarkHealthyParallel: BenchmarkHealthy from every core at once. ns/op
// is wall time over all calls.
func BenchmarkHealthyParallel(b *testing.B) {
	testkit.BenchEach(b, func(b *testing.B, env testkit.BenchEnv) {
		th := throttle.New("bench", benchOptions(env)...)
		get := resilience.Wrap(benchWork, throttle.Policy[int](th))
		testkit.BenchParallel(b, env.Ctx, get)
	})
}
