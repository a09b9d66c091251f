package bench

import (
	"context"
	"errors"
	"testing"

	gobreaker "github.com/sony/gobreaker/v2"

	eapache "github.com/eapache/go-resiliency/breaker"
	fscb "github.com/failsafe-go/failsafe-go/circuitbreaker"
	fortifycb "github.com/felixgeelhaar/fortify/circuitbreaker"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/resilience"
)

// BenchmarkOpenRejection: a call refused by an open breaker. levee runs
// with the OpenTelemetry SDK installed; levee-span adds a recording parent
// span, on which each rejection adds a levee.circuit_breaker.rejected
// event (the SDK keeps the newest 128 events of a span and counts the
// rest as dropped).
func BenchmarkOpenRejection(b *testing.B) {
	ctx := context.Background()
	leveeOpen := func(b *testing.B, withSpan bool) {
		s := newSDK(b)
		ctx := ctx
		if withSpan {
			ctx = s.spanCtx(b)
		}
		br := newLevee(s)
		get := resilience.Wrap(workFn, breaker.Policy[int](br))
		trip := resilience.Wrap(failFn, breaker.Policy[int](br))
		for range threshold {
			_, _ = trip(ctx)
		}
		requireLeveeState(b, br, breaker.Open)
		if _, err := get(ctx); !errors.Is(err, breaker.ErrOpen) {
			b.Fatalf("levee: got %v, want a rejection", err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			sink, _ = get(ctx)
		}
		b.StopTimer()
		requireLeveeState(b, br, breaker.Open)
	}
	b.Run("lib=levee", func(b *testing.B) { leveeOpen(b, false) })
	b.Run("lib=levee-span", func(b *testing.B) { leveeOpen(b, true) })
	b.Run("lib=gobreaker", func(b *testing.B) {
		cb := newGobreaker()
		failing := func() (int, error) { return failFn(ctx) }
		for range threshold {
			_, _ = cb.Execute(failing)
		}
		requireGobreakerState(b, cb, gobreaker.StateOpen)
		fn := func() (int, error) { return workFn(ctx) }
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			sink, _ = cb.Execute(fn)
		}
	})
	b.Run("lib=failsafe-go", func(b *testing.B) {
		cb := newFailsafe()
		exec := failsafeExecutor(ctx, cb)
		failing := func() (int, error) { return failFn(ctx) }
		for range threshold {
			_, _ = exec.Get(failing)
		}
		requireFailsafeState(b, cb, fscb.OpenState)
		fn := func() (int, error) { return workFn(ctx) }
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			sink, _ = exec.Get(fn)
		}
	})
	b.Run("lib=fortify", func(b *testing.B) {
		cb := newFortify()
		for range threshold {
			_, _ = cb.Execute(ctx, failFn)
		}
		requireFortifyState(b, cb, fortifycb.StateOpen)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			sink, _ = cb.Execute(ctx, workFn)
		}
	})
	b.Run("lib=go-resiliency", func(b *testing.B) {
		br := newEapache(openFor)
		failing := func() error { _, err := failFn(ctx); return err }
		for range threshold {
			_ = br.Run(failing)
		}
		requireEapacheState(b, br, eapache.Open)
		fn := func() error { _, err := workFn(ctx); return err }
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			_ = br.Run(fn)
		}
	})
}
