package retry_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/levee-go/levee/internal/testkit"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/retry"
)

// The benchmarks here watch the retry for regressions:
//
//	go test -run='^$' -bench=. -benchmem ./retry
//
// Each runs three ways: sdk=none (no-op providers), sdk=on (an OpenTelemetry
// SDK MeterProvider and a TracerProvider sampling every span) and
// sdk=on+span (the SDK, and a recording span in the caller's context, on
// which each retry adds an event). BenchmarkFloor is what DESIGN.md calls
// the floor of a guarded call: a call through a func value, an open-coded
// defer and one atomic add to a counter alone on its cache line. The
// comparison with other libraries belongs to the bench module.

var errBench = errors.New("bench: dependency failed")

//go:noinline
func benchWork(context.Context) (int, error) { return 1, nil }

// benchFailOnce fails every other call: a retried call fails once, then
// succeeds.
type benchFailOnce struct{ calls int }

//go:noinline
func (f *benchFailOnce) call(context.Context) (int, error) {
	f.calls++
	if f.calls%2 == 1 {
		return 0, errBench
	}
	return 1, nil
}

var benchSink int

// benchCounter is a counter alone on its cache line.
var benchCounter struct {
	_ [64]byte
	n atomic.Int64
	_ [56]byte
}

// BenchmarkFloor: a call through a func value, an open-coded defer and an
// atomic add, without levee.
func BenchmarkFloor(b *testing.B) {
	fn := benchWork
	ctx := context.Background()
	call := func() (int, error) {
		defer benchCounter.n.Add(1)
		return fn(ctx)
	}
	b.ReportAllocs()
	for b.Loop() {
		benchSink, _ = call()
	}
}

func benchPipeline(env testkit.BenchEnv, fn resilience.Func[int], opts ...retry.Option) resilience.Func[int] {
	tel := resilience.Telemetry{Name: "bench", TracerProvider: env.TP, MeterProvider: env.MP}
	return resilience.WrapWith(tel, fn, retry.Policy[int](opts...))
}

// BenchmarkRetry_FirstAttemptSucceeds: the common path, with the default
// settings.
func BenchmarkRetry_FirstAttemptSucceeds(b *testing.B) {
	testkit.BenchEach(b, func(b *testing.B, env testkit.BenchEnv) {
		testkit.BenchCall(b, env.Ctx, benchPipeline(env, benchWork))
	})
}

// BenchmarkRetry_FirstAttemptSucceedsWithBudget: the common path with a
// budget: one deposit.
func BenchmarkRetry_FirstAttemptSucceedsWithBudget(b *testing.B) {
	testkit.BenchEach(b, func(b *testing.B, env testkit.BenchEnv) {
		testkit.BenchCall(b, env.Ctx, benchPipeline(env, benchWork, retry.WithBudget(retry.NewBudget(0.2, 10))))
	})
}

// BenchmarkRetry_FirstAttemptSucceedsParallel: the common path with a
// shared budget, from every core at once.
func BenchmarkRetry_FirstAttemptSucceedsParallel(b *testing.B) {
	env := testkit.BenchSDK(b)
	get := benchPipeline(env, benchWork, retry.WithBudget(retry.NewBudget(0.2, 10)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var last int
		for pb.Next() {
			last, _ = get(env.Ctx)
		}
		_ = last
	})
}

// BenchmarkRetry_OneFailureThenSuccess: a retried call, one failure then a
// success, with no delay between them: the decision, the telemetry of a
// retry, and the second attempt.
func BenchmarkRetry_OneFailureThenSuccess(b *testing.B) {
	testkit.BenchEach(b, func(b *testing.B, env testkit.BenchEnv) {
		dep := &benchFailOnce{}
		testkit.BenchCall(b, env.Ctx, benchPipeline(env, dep.call, retry.WithDelay(0)))
	})
}

// BenchmarkRetry_OneFailureThenSuccessWithBudget: as above, the retry
// drawn from a budget (a clock read and a lock).
func BenchmarkRetry_OneFailureThenSuccessWithBudget(b *testing.B) {
	testkit.BenchEach(b, func(b *testing.B, env testkit.BenchEnv) {
		dep := &benchFailOnce{}
		testkit.BenchCall(b, env.Ctx, benchPipeline(env, dep.call, retry.WithDelay(0), retry.WithBudget(retry.NewBudget(1, 1<<30))))
	})
}
