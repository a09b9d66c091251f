package resilience_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/fallback"
	"github.com/levee-go/levee/internal/testkit"
	"github.com/levee-go/levee/resilience"
)

// The benchmarks here watch the core and the composed pipeline for
// regressions:
//
//	go test -run='^$' -bench=. -benchmem ./resilience
//
// Each runs three ways: sdk=none (no-op providers), sdk=on (an OpenTelemetry
// SDK MeterProvider and a TracerProvider sampling every span) and
// sdk=on+span (the SDK, and a recording span in the caller's context).
// BenchmarkWithTimeout is the floor a Timeout cannot go below. The
// comparison with other libraries lives in the bench module (bench/run.sh,
// docs/performance.md).

// benchEnv is the telemetry a benchmark's policies report to, and the
// context its calls carry.
type benchEnv struct{ testkit.BenchEnv }

// benchEach runs bench once per telemetry setting.
func benchEach(b *testing.B, bench func(b *testing.B, env benchEnv)) {
	testkit.BenchEach(b, func(b *testing.B, env testkit.BenchEnv) { bench(b, benchEnv{env}) })
}

// wrap builds a pipeline reporting to the benchmark's providers.
func (e benchEnv) wrap(fn resilience.Func[int], policies ...resilience.Policy[int]) resilience.Func[int] {
	return resilience.WrapWith(resilience.Telemetry{Name: "bench", MeterProvider: e.MP, TracerProvider: e.TP}, fn, policies...)
}

func (e benchEnv) breaker(opts ...breaker.Option) *breaker.Breaker {
	return breaker.New("bench", append([]breaker.Option{
		breaker.WithMeterProvider(e.MP), breaker.WithTracerProvider(e.TP)}, opts...)...)
}

var errBench = errors.New("bench: dependency failed")

//go:noinline
func benchWork(context.Context) (int, error) { return 1, nil }

//go:noinline
func benchFail(context.Context) (int, error) { return 0, errBench }

//go:noinline
func benchHonourDeadline(ctx context.Context) (int, error) { return 0, ctx.Err() }

var benchSink int

// BenchmarkWrap: a Func wrapped in no policy is the Func itself.
func BenchmarkWrap(b *testing.B) {
	testkit.BenchCall(b, context.Background(), resilience.Wrap(benchWork))
}

// BenchmarkWithTimeout: context.WithTimeout and its cancel around the call,
// without levee: the floor of BenchmarkTimeout.
func BenchmarkWithTimeout(b *testing.B) {
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		tctx, cancel := context.WithTimeout(ctx, time.Second)
		benchSink, _ = benchWork(tctx)
		cancel()
	}
}

// BenchmarkTimeout: a call that returns well within its Timeout.
func BenchmarkTimeout(b *testing.B) {
	benchEach(b, func(b *testing.B, env benchEnv) {
		testkit.BenchCall(b, env.Ctx, env.wrap(benchWork, resilience.Timeout[int](time.Second)))
	})
}

// BenchmarkTimeoutExceeded: a call whose deadline has passed when it runs
// (the Timeout is 1ns) and that returns its context's error: the
// levee.timeout.exceeded counter, the event when the span records, and the
// error value.
func BenchmarkTimeoutExceeded(b *testing.B) {
	benchEach(b, func(b *testing.B, env benchEnv) {
		get := env.wrap(benchHonourDeadline, resilience.Timeout[int](time.Nanosecond))
		if _, err := get(env.Ctx); !errors.Is(err, resilience.ErrTimeout) {
			b.Fatalf("got %v, want a timeout", err)
		}
		testkit.BenchCall(b, env.Ctx, get)
	})
}

// BenchmarkTimeoutReturnAtDeadline: a call within a ReturnAtDeadline
// Timeout, which runs the function in a goroutine of its own.
func BenchmarkTimeoutReturnAtDeadline(b *testing.B) {
	benchEach(b, func(b *testing.B, env benchEnv) {
		testkit.BenchCall(b, env.Ctx, env.wrap(benchWork, resilience.Timeout[int](time.Second, resilience.ReturnAtDeadline())))
	})
}

// BenchmarkPipeline: fallback + breaker + timeout (outermost first), a
// successful call: the breaker is closed and the fallback not needed.
// Compare with BenchmarkWithTimeout.
func BenchmarkPipeline(b *testing.B) {
	benchEach(b, func(b *testing.B, env benchEnv) {
		testkit.BenchCall(b, env.Ctx, env.wrap(benchWork,
			fallback.Value(0), breaker.Policy[int](env.breaker()), resilience.Timeout[int](time.Second)))
	})
}

// BenchmarkPipelineOpen: the same pipeline while the breaker is open: the
// breaker rejects the call before the timeout runs, and the fallback
// answers for it.
func BenchmarkPipelineOpen(b *testing.B) {
	benchEach(b, func(b *testing.B, env benchEnv) {
		br := env.breaker(breaker.WithOpenTimeout(time.Hour))
		br.ForceOpen(env.Ctx)
		get := env.wrap(benchWork, fallback.Value(-1), breaker.Policy[int](br), resilience.Timeout[int](time.Second))
		if v, err := get(env.Ctx); v != -1 || err != nil {
			b.Fatalf("got %d, %v; want the fallback's answer", v, err)
		}
		testkit.BenchCall(b, env.Ctx, get)
	})
}

// BenchmarkPipelineFailing: the same pipeline while the dependency fails
// and the breaker, whose threshold is never reached, stays closed: the
// fallback answers for every failure.
func BenchmarkPipelineFailing(b *testing.B) {
	benchEach(b, func(b *testing.B, env benchEnv) {
		br := env.breaker(breaker.WithFailureThreshold(1 << 30))
		testkit.BenchCall(b, env.Ctx, env.wrap(benchFail, fallback.Value(-1), breaker.Policy[int](br), resilience.Timeout[int](time.Second)))
	})
}
