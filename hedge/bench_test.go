package hedge_test

import (
	"context"
	"testing"
	"time"

	"github.com/levee-go/levee/hedge"
	"github.com/levee-go/levee/internal/testkit"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/retry"
)

// The benchmarks here watch the hedge for regressions:
//
//	go test -run='^$' -bench=. -benchmem ./hedge
//
// Each runs three ways: sdk=none (no-op providers), sdk=on (an OpenTelemetry
// SDK MeterProvider and a TracerProvider sampling every span) and
// sdk=on+span (the SDK, and a recording span in the caller's context).
// BenchmarkWithCancelAndTimer is the floor: a cancellable context and a
// timer armed and stopped, what a hedged call needs in case its first
// attempt is slow.

//go:noinline
func benchWork(context.Context) (int, error) { return 1, nil }

var benchSink int

// BenchmarkWithCancelAndTimer: context.WithCancel and time.AfterFunc
// around the call, without levee.
func BenchmarkWithCancelAndTimer(b *testing.B) {
	ctx := context.Background()
	fire := func() {}
	b.ReportAllocs()
	for b.Loop() {
		actx, cancel := context.WithCancel(ctx)
		timer := time.AfterFunc(time.Hour, fire)
		benchSink, _ = benchWork(actx)
		timer.Stop()
		cancel()
	}
}

func benchPipeline(env testkit.BenchEnv, opts ...hedge.Option) resilience.Func[int] {
	tel := resilience.Telemetry{Name: "bench", TracerProvider: env.TP, MeterProvider: env.MP}
	return resilience.WrapWith(tel, benchWork, hedge.Policy[int](time.Hour, opts...))
}

// BenchmarkHedge_FirstAttemptFast: the first attempt answers within the
// delay: no hedge.
func BenchmarkHedge_FirstAttemptFast(b *testing.B) {
	testkit.BenchEach(b, func(b *testing.B, env testkit.BenchEnv) {
		testkit.BenchCall(b, env.Ctx, benchPipeline(env))
	})
}

// BenchmarkHedge_FirstAttemptFastWithQuantileAndBudget: the same, measuring
// the latency (two clock reads) and depositing in a budget.
func BenchmarkHedge_FirstAttemptFastWithQuantileAndBudget(b *testing.B) {
	testkit.BenchEach(b, func(b *testing.B, env testkit.BenchEnv) {
		testkit.BenchCall(b, env.Ctx, benchPipeline(env,
			hedge.WithQuantileDelay(0.95, 10*time.Second), hedge.WithBudget(retry.NewBudget(0.2, 10))))
	})
}

// BenchmarkHedge_FirstAttemptFastParallel: the first attempt answers within
// the delay, from every core at once.
func BenchmarkHedge_FirstAttemptFastParallel(b *testing.B) {
	env := testkit.BenchSDK(b)
	get := benchPipeline(env)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, _ = get(env.Ctx)
		}
	})
}

// BenchmarkHedge_Hedged: the first attempt is slow (it waits for its
// context), a hedge is started after a microsecond and wins: a goroutine,
// the telemetry of a hedge and a win. Watch its allocations: its time is
// mostly the wait for the timer to fire, which the scheduler rounds up.
func BenchmarkHedge_Hedged(b *testing.B) {
	testkit.BenchEach(b, func(b *testing.B, env testkit.BenchEnv) {
		first := true
		fn := func(ctx context.Context) (int, error) {
			// Calls alternate: a first attempt that waits, then its hedge.
			if first {
				first = false
				<-ctx.Done()
				return 0, ctx.Err()
			}
			first = true
			return 2, nil
		}
		tel := resilience.Telemetry{Name: "bench", TracerProvider: env.TP, MeterProvider: env.MP}
		testkit.BenchCall(b, env.Ctx, resilience.WrapWith(tel, fn, hedge.Policy[int](time.Microsecond)))
	})
}
