package testkit

import (
	"context"
	"runtime"
	"testing"

	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// BenchEnv is the telemetry a benchmark's policies report to, and the
// context its calls carry.
type BenchEnv struct {
	MP  metric.MeterProvider
	TP  trace.TracerProvider
	Ctx context.Context
}

// BenchNoSDK returns no-op providers and a background context: what a
// program that installed no OpenTelemetry SDK has.
func BenchNoSDK(testing.TB) BenchEnv {
	return BenchEnv{MP: metricnoop.NewMeterProvider(), TP: tracenoop.NewTracerProvider(), Ctx: context.Background()}
}

// BenchSDK returns an SDK MeterProvider read by a ManualReader and an SDK
// TracerProvider sampling every span, both shut down when tb ends.
func BenchSDK(tb testing.TB) BenchEnv {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithSyncer(tracetest.NewNoopExporter()))
	tb.Cleanup(func() {
		_ = mp.Shutdown(context.Background())
		_ = tp.Shutdown(context.Background())
	})
	return BenchEnv{MP: mp, TP: tp, Ctx: context.Background()}
}

// BenchSDKSpan is BenchSDK with a recording span in the context, as a
// request handler's calls carry.
func BenchSDKSpan(tb testing.TB) BenchEnv {
	env := BenchSDK(tb)
	ctx, span := env.TP.Tracer("bench").Start(context.Background(), "request")
	tb.Cleanup(func() { span.End() })
	env.Ctx = ctx
	return env
}

// BenchEach runs bench once per telemetry setting, as sub-benchmarks named
// sdk=none, sdk=on and sdk=on+span.
func BenchEach(b *testing.B, bench func(b *testing.B, env BenchEnv)) {
	for _, setting := range []struct {
		name string
		env  func(testing.TB) BenchEnv
	}{
		{"sdk=none", BenchNoSDK},
		{"sdk=on", BenchSDK},
		{"sdk=on+span", BenchSDKSpan},
	} {
		b.Run(setting.name, func(b *testing.B) { bench(b, setting.env(b)) })
	}
}

// benchSink keeps the compiler from discarding the benchmarked calls.
var benchSink any

// BenchCall measures get called b.N times with ctx, reporting allocations.
// The timer is still running when it returns: stop it before checking
// anything about the run.
func BenchCall[T any](b *testing.B, ctx context.Context, get func(context.Context) (T, error)) {
	b.ReportAllocs()
	b.ResetTimer()
	var last T
	for i := 0; i < b.N; i++ {
		last, _ = get(ctx)
	}
	b.StopTimer() // boxing last may allocate: keep it out of the measure
	benchSink = last
	b.StartTimer()
}

// BenchParallelBatch is how many calls a BenchParallel goroutine makes per
// pb.Next(). Next writes to the goroutine's testing.PB, and the PBs of two
// goroutines often share a cache line: a call with an atomic
// read-modify-write (a full fence) then waits for that falsely shared
// store, and the benchmark would measure the testing package's layout.
const BenchParallelBatch = 64

// BenchParallel measures get called from every core at once (b.RunParallel),
// BenchParallelBatch calls per pb.Next(), and reports ns/op, B/op and
// allocs/op per call in place of the per-Next figures. ns/op is wall time
// over all calls: it stays at the serial figure only if the cores do not
// fight over cache lines.
func BenchParallel[T any](b *testing.B, ctx context.Context, get func(context.Context) (T, error)) {
	start := benchStartPerCall(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			for range BenchParallelBatch {
				_, _ = get(ctx)
			}
		}
	})
	benchReportPerCall(b, start)
}

// BenchParallelEach is BenchParallel for calls that differ by goroutine:
// each goroutine makes its calls with the function newCall returns to it.
func BenchParallelEach(b *testing.B, newCall func() func()) {
	start := benchStartPerCall(b)
	b.RunParallel(func(pb *testing.PB) {
		call := newCall()
		for pb.Next() {
			for range BenchParallelBatch {
				call()
			}
		}
	})
	benchReportPerCall(b, start)
}

func benchStartPerCall(b *testing.B) runtime.MemStats {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ResetTimer()
	return ms
}

func benchReportPerCall(b *testing.B, start runtime.MemStats) {
	b.StopTimer()
	var end runtime.MemStats
	runtime.ReadMemStats(&end)
	calls := float64(b.N) * BenchParallelBatch
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/calls, "ns/op")
	b.ReportMetric(float64(end.TotalAlloc-start.TotalAlloc)/calls, "B/op")
	b.ReportMetric(float64(end.Mallocs-start.Mallocs)/calls, "allocs/op")
}
