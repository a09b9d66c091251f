package bench

import (
	"context"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go"
	fsfallback "github.com/failsafe-go/failsafe-go/fallback"
	fstimeout "github.com/failsafe-go/failsafe-go/timeout"
	fortifycb "github.com/felixgeelhaar/fortify/circuitbreaker"
	fortifyfb "github.com/felixgeelhaar/fortify/fallback"
	fortifytm "github.com/felixgeelhaar/fortify/timeout"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/fallback"
	"github.com/levee-go/levee/resilience"
)

// callTimeout is the timeout of every pipeline: long enough never to fire.
const callTimeout = time.Second

// BenchmarkPipeline: a successful call through fallback + breaker +
// timeout (outermost first), the pipeline the README advises. The breaker
// is closed and the fallback is not needed, as for almost every call. The
// floor is lib=withtimeout: context.WithTimeout and its cancel around the
// call, which every timeout policy must pay.
func BenchmarkPipeline(b *testing.B) {
	ctx := context.Background()
	b.Run("lib=withtimeout", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			tctx, cancel := context.WithTimeout(ctx, callTimeout)
			sink, _ = workFn(tctx)
			cancel()
		}
	})
	leveePipeline := func(b *testing.B, withSpan bool) {
		s := newSDK(b)
		ctx := ctx
		if withSpan {
			ctx = s.spanCtx(b)
		}
		br := newLevee(s)
		get := resilience.Wrap(workFn,
			fallback.Value(0), // reports under the breaker's name and providers
			breaker.Policy[int](br),
			resilience.Timeout[int](callTimeout),
		)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			sink, _ = get(ctx)
		}
		b.StopTimer()
		requireLeveeState(b, br, breaker.Closed)
	}
	b.Run("lib=levee", func(b *testing.B) { leveePipeline(b, false) })
	b.Run("lib=levee-span", func(b *testing.B) { leveePipeline(b, true) })
	b.Run("lib=failsafe-go", func(b *testing.B) {
		exec := failsafeExecutor(ctx,
			fsfallback.NewWithResult(0),
			newFailsafe(),
			fstimeout.New[int](callTimeout))
		fn := func(e failsafe.Execution[int]) (int, error) { return workFn(e.Context()) }
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			sink, _ = exec.GetWithExecution(fn)
		}
	})
	b.Run("lib=fortify", func(b *testing.B) {
		fb := fortifyfb.New[int](fortifyfb.Config[int]{
			Fallback: func(context.Context, error) (int, error) { return 0, nil },
		})
		cb := newFortify()
		tm := fortifytm.New[int](fortifytm.Config{DefaultTimeout: callTimeout})
		// The chain is built once, as levee's Wrap does.
		timed := func(ctx context.Context) (int, error) { return tm.Execute(ctx, callTimeout, workFn) }
		guarded := func(ctx context.Context) (int, error) { return cb.Execute(ctx, timed) }
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			sink, _ = fb.Execute(ctx, guarded)
		}
		b.StopTimer()
		requireFortifyState(b, cb, fortifycb.StateClosed)
	})
}
