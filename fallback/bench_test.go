package fallback_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/fallback"
	"github.com/levee-go/levee/resilience"
)

// The benchmarks here watch the fallbacks for regressions:
//
//	go test -run='^$' -bench=. -benchmem ./fallback
//
// Each runs three ways: sdk=none (no-op providers), sdk=on (an OpenTelemetry
// SDK MeterProvider and a TracerProvider sampling every span) and
// sdk=on+span (the SDK, and a recording span in the caller's context, on
// which each execution adds an event).

type benchEnv struct {
	mp  metric.MeterProvider
	tp  trace.TracerProvider
	ctx context.Context
}

func benchEach(b *testing.B, bench func(b *testing.B, env benchEnv)) {
	b.Run("sdk=none", func(b *testing.B) {
		bench(b, benchEnv{mp: metricnoop.NewMeterProvider(), tp: tracenoop.NewTracerProvider(), ctx: context.Background()})
	})
	sdk := func(b *testing.B) benchEnv {
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
		tp := sdktrace.NewTracerProvider(
			sdktrace.WithSampler(sdktrace.AlwaysSample()),
			sdktrace.WithSyncer(tracetest.NewNoopExporter()))
		b.Cleanup(func() {
			_ = mp.Shutdown(context.Background())
			_ = tp.Shutdown(context.Background())
		})
		return benchEnv{mp: mp, tp: tp, ctx: context.Background()}
	}
	b.Run("sdk=on", func(b *testing.B) { bench(b, sdk(b)) })
	b.Run("sdk=on+span", func(b *testing.B) {
		env := sdk(b)
		ctx, span := env.tp.Tracer("bench").Start(context.Background(), "request")
		b.Cleanup(func() { span.End() })
		env.ctx = ctx
		bench(b, env)
	})
}

func (e benchEnv) options(opts ...fallback.Option) []fallback.Option {
	return append([]fallback.Option{fallback.WithMeterProvider(e.mp), fallback.WithTracerProvider(e.tp)}, opts...)
}

// benchNotFound is an error type of the user's own: its error.type is
// "*fallback_test.benchNotFound".
type benchNotFound struct{}

func (*benchNotFound) Error() string { return "not found" }

var (
	errBench         = errors.New("bench: dependency failed")
	errBenchNotFound = &benchNotFound{}
)

//go:noinline
func benchWork(context.Context) (int, error) { return 1, nil }

//go:noinline
func benchFail(context.Context) (int, error) { return 0, errBench }

//go:noinline
func benchNotFoundErr(context.Context) (int, error) { return 0, errBenchNotFound }

var benchSink int

func benchCall(b *testing.B, ctx context.Context, get resilience.Func[int]) {
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		benchSink, _ = get(ctx)
	}
}

// BenchmarkValue_Success: the call succeeds; the fallback only passes the
// result on.
func BenchmarkValue_Success(b *testing.B) {
	benchEach(b, func(b *testing.B, env benchEnv) {
		benchCall(b, env.ctx, resilience.Wrap(benchWork, fallback.Value(-1, env.options()...)))
	})
}

// BenchmarkValue_Executed: the call fails with a plain error (error.type
// "_OTHER") and the fallback answers: the executions counter, and an event
// when the span records.
func BenchmarkValue_Executed(b *testing.B) {
	benchEach(b, func(b *testing.B, env benchEnv) {
		benchCall(b, env.ctx, resilience.Wrap(benchFail, fallback.Value(-1, env.options()...)))
	})
}

// BenchmarkValue_ExecutedUserErrorType: as BenchmarkValue_Executed, for an
// error of the user's own type, whose error.type is its Go type name.
func BenchmarkValue_ExecutedUserErrorType(b *testing.B) {
	benchEach(b, func(b *testing.B, env benchEnv) {
		benchCall(b, env.ctx, resilience.Wrap(benchNotFoundErr, fallback.Value(-1, env.options()...)))
	})
}

// BenchmarkFunc_Executed: a fallback function answers for a failure.
func BenchmarkFunc_Executed(b *testing.B) {
	benchEach(b, func(b *testing.B, env benchEnv) {
		answer := func(context.Context, error) (int, error) { return -1, nil }
		benchCall(b, env.ctx, resilience.Wrap(benchFail, fallback.Func(answer, env.options()...)))
	})
}

// BenchmarkValue_OverOpenBreaker: the fallback answers for an open
// breaker's rejection (error.type "circuit_open"), the degraded answer of
// an outage.
func BenchmarkValue_OverOpenBreaker(b *testing.B) {
	benchEach(b, func(b *testing.B, env benchEnv) {
		br := breaker.New("bench", breaker.WithMeterProvider(env.mp), breaker.WithTracerProvider(env.tp), breaker.WithOpenTimeout(time.Hour))
		br.ForceOpen(env.ctx)
		get := resilience.Wrap(benchWork, fallback.Value(-1, env.options()...), breaker.Policy[int](br))
		if v, err := get(env.ctx); v != -1 || err != nil {
			b.Fatalf("got %d, %v; want the fallback's answer", v, err)
		}
		benchCall(b, env.ctx, get)
	})
}
