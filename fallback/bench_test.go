package fallback_test

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

// The benchmarks here watch the fallbacks for regressions:
//
//	go test -run='^$' -bench=. -benchmem ./fallback
//
// Each runs three ways: sdk=none (no-op providers), sdk=on (an OpenTelemetry
// SDK MeterProvider and a TracerProvider sampling every span) and
// sdk=on+span (the SDK, and a recording span in the caller's context, on
// which each execution adds an event).

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

// BenchmarkValue_Success: the call succeeds; the fallback only passes the
// result on.
func BenchmarkValue_Success(b *testing.B) {
	benchEach(b, func(b *testing.B, env benchEnv) {
		testkit.BenchCall(b, env.Ctx, env.wrap(benchWork, fallback.Value(-1)))
	})
}

// BenchmarkValue_Executed: the call fails with a plain error (error.type
// "*errors.errorString") and the fallback answers: the executions counter, and an event
// when the span records.
func BenchmarkValue_Executed(b *testing.B) {
	benchEach(b, func(b *testing.B, env benchEnv) {
		testkit.BenchCall(b, env.Ctx, env.wrap(benchFail, fallback.Value(-1)))
	})
}

// BenchmarkValue_ExecutedUserErrorType: as BenchmarkValue_Executed, for an
// error of the user's own type, whose error.type is its Go type name.
func BenchmarkValue_ExecutedUserErrorType(b *testing.B) {
	benchEach(b, func(b *testing.B, env benchEnv) {
		testkit.BenchCall(b, env.Ctx, env.wrap(benchNotFoundErr, fallback.Value(-1)))
	})
}

// BenchmarkFunc_Executed: a fallback function answers for a failure.
func BenchmarkFunc_Executed(b *testing.B) {
	benchEach(b, func(b *testing.B, env benchEnv) {
		answer := func(context.Context, error) (int, error) { return -1, nil }
		testkit.BenchCall(b, env.Ctx, env.wrap(benchFail, fallback.Func(answer)))
	})
}

// BenchmarkValue_OverOpenBreaker: the fallback answers for an open
// breaker's rejection (error.type "circuit_open"), the degraded answer of
// an outage.
func BenchmarkValue_OverOpenBreaker(b *testing.B) {
	benchEach(b, func(b *testing.B, env benchEnv) {
		br := breaker.New("bench", breaker.WithMeterProvider(env.MP), breaker.WithTracerProvider(env.TP), breaker.WithOpenTimeout(time.Hour))
		br.ForceOpen(env.Ctx)
		get := env.wrap(benchWork, fallback.Value(-1), breaker.Policy[int](br))
		if v, err := get(env.Ctx); v != -1 || err != nil {
			b.Fatalf("got %d, %v; want the fallback's answer", v, err)
		}
		testkit.BenchCall(b, env.Ctx, get)
	})
}
