package dashboard_test

import (
	"context"
	"fmt"
	"net/url"
	"runtime"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/dashboard"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/retry"
)

// providers are the two ways a pipeline reports: to an SDK alone, and to
// the dashboard's provider in front of the same SDK.
func providers(b *testing.B) map[string]metric.MeterProvider {
	sdk := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() { _ = sdk.Shutdown(context.Background()) })
	return map[string]metric.MeterProvider{
		"sdk":           sdk,
		"dashboard+sdk": dashboard.New().MeterProvider(sdk),
	}
}

// BenchmarkRetry_FirstAttemptSucceeds: the retry's fast path does no
// telemetry, so the dashboard's provider costs it nothing.
func BenchmarkRetry_FirstAttemptSucceeds(b *testing.B) {
	for _, name := range []string{"sdk", "dashboard+sdk"} {
		mp := providers(b)[name]
		b.Run(name, func(b *testing.B) {
			call := resilience.WrapWith(resilience.Telemetry{Name: "bench", MeterProvider: mp},
				func(context.Context) (int, error) { return 1, nil }, retry.Policy[int]())
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				_, _ = call(ctx)
			}
		})
	}
}

// BenchmarkRetry_OneFailureThenSuccess: one retried attempt, counted by the
// SDK, and by the dashboard too under dashboard+sdk.
func BenchmarkRetry_OneFailureThenSuccess(b *testing.B) {
	for _, name := range []string{"sdk", "dashboard+sdk"} {
		mp := providers(b)[name]
		b.Run(name, func(b *testing.B) {
			fail := true
			call := resilience.WrapWith(resilience.Telemetry{Name: "bench", MeterProvider: mp},
				func(context.Context) (int, error) {
					fail = !fail
					if !fail {
						return 0, errDown
					}
					return 1, nil
				}, retry.Policy[int](retry.WithDelay(0)))
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				_, _ = call(ctx)
			}
		})
	}
}

// BenchmarkSnapshot reads every registered breaker and encodes nothing:
// what one page's update costs the server, per number of breakers.
func BenchmarkSnapshot(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("breakers=%d", n), func(b *testing.B) {
			d := dashboard.New()
			bs := make([]*breaker.Breaker, n)
			for i := range bs {
				bs[i] = breaker.New(fmt.Sprintf("host-%04d", i), breaker.WithOpenTimeout(time.Hour))
			}
			d.AddBreaker(bs...)
			q := url.Values{"limit": {"50"}}.Encode()
			b.ReportAllocs()
			for b.Loop() {
				if rec := get(d, "api/snapshot?"+q); rec.Code != 200 {
					b.Fatal(rec.Code)
				}
			}
			runtime.KeepAlive(bs) // the dashboard holds them weakly
		})
	}
}
