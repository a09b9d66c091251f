package bench

import (
	"context"
	"testing"
	"time"

	gobreaker "github.com/sony/gobreaker/v2"

	eapache "github.com/eapache/go-resiliency/breaker"
	"github.com/failsafe-go/failsafe-go"
	fscb "github.com/failsafe-go/failsafe-go/circuitbreaker"
	fortifycb "github.com/felixgeelhaar/fortify/circuitbreaker"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/resilience"
)

// tripPool is how many closed breakers a trip benchmark uses up before it
// stops the timer and restores them.
const tripPool = 1024

// BenchmarkFailuresUntilOpen: one op is the threshold (5) consecutive
// failing calls that take a closed breaker to open, the last of them making
// the transition. Each op trips a fresh closed breaker from a pool; the pool
// is restored outside the timer (with the library's own reset where it has
// one, by building new breakers where it has none). For levee the op
// includes reporting the transition: the transitions counter and a
// levee.circuit_breaker.transition span, plus, for levee-span, an event on
// the caller's span.
func BenchmarkFailuresUntilOpen(b *testing.B) {
	ctx := context.Background()
	leveeTrip := func(b *testing.B, withSpan bool) {
		s := newSDK(b)
		ctx := ctx
		if withSpan {
			ctx = s.spanCtx(b)
		}
		brs := make([]*breaker.Breaker, tripPool)
		calls := make([]resilience.Func[int], tripPool)
		for k := range brs {
			brs[k] = newLevee(s)
			calls[k] = resilience.Wrap(failFn, breaker.Policy[int](brs[k]))
		}
		tripLoop(b, func(k int) {
			for range threshold {
				_, _ = calls[k](ctx)
			}
		}, func(used int) {
			for _, br := range brs[:used] {
				requireLeveeState(b, br, breaker.Open)
				br.Reset(ctx)
			}
		})
	}
	b.Run("lib=levee", func(b *testing.B) { leveeTrip(b, false) })
	b.Run("lib=levee-span", func(b *testing.B) { leveeTrip(b, true) })
	b.Run("lib=gobreaker", func(b *testing.B) {
		brs := make([]*gobreaker.CircuitBreaker[int], tripPool)
		for k := range brs {
			brs[k] = newGobreaker()
		}
		failing := func() (int, error) { return failFn(ctx) }
		tripLoop(b, func(k int) {
			for range threshold {
				_, _ = brs[k].Execute(failing)
			}
		}, func(used int) {
			for k, br := range brs[:used] {
				requireGobreakerState(b, br, gobreaker.StateOpen)
				brs[k] = newGobreaker()
			}
		})
	})
	b.Run("lib=failsafe-go", func(b *testing.B) {
		brs := make([]fscb.CircuitBreaker[int], tripPool)
		execs := make([]failsafe.Executor[int], tripPool)
		for k := range brs {
			brs[k] = newFailsafe()
			execs[k] = failsafeExecutor(ctx, brs[k])
		}
		failing := func() (int, error) { return failFn(ctx) }
		tripLoop(b, func(k int) {
			for range threshold {
				_, _ = execs[k].Get(failing)
			}
		}, func(used int) {
			for _, br := range brs[:used] {
				requireFailsafeState(b, br, fscb.OpenState)
				br.Close()
			}
		})
	})
	b.Run("lib=fortify", func(b *testing.B) {
		brs := make([]fortifycb.CircuitBreaker[int], tripPool)
		for k := range brs {
			brs[k] = newFortify()
		}
		tripLoop(b, func(k int) {
			for range threshold {
				_, _ = brs[k].Execute(ctx, failFn)
			}
		}, func(used int) {
			for _, br := range brs[:used] {
				requireFortifyState(b, br, fortifycb.StateOpen)
				br.Reset()
			}
		})
	})
	b.Run("lib=go-resiliency", func(b *testing.B) {
		// go-resiliency starts a goroutine that sleeps for the open timeout
		// at every trip; a short timeout keeps them from piling up. By the
		// time the pool is checked a breaker may be half-open already. The
		// timeout is also how long go-resiliency remembers a failure: a
		// trip that the scheduler stalls for longer than that starts its
		// count again and leaves the breaker closed. A few of those are the
		// machine, not the benchmark.
		const timeout = 10 * time.Millisecond
		brs := make([]*eapache.Breaker, tripPool)
		for k := range brs {
			brs[k] = newEapache(timeout)
		}
		failing := func() error { _, err := failFn(ctx); return err }
		untripped := 0
		tripLoop(b, func(k int) {
			for range threshold {
				_ = brs[k].Run(failing)
			}
		}, func(used int) {
			for k, br := range brs[:used] {
				if br.GetState() == eapache.Closed {
					untripped++
				}
				brs[k] = newEapache(timeout)
			}
		})
		if untripped*100 > b.N {
			b.Fatalf("%d of %d go-resiliency breakers did not open", untripped, b.N)
		}
	})
}

// tripLoop calls trip(k) b.N times, k cycling through the pool, and
// restore(used) outside the timer whenever the pool is used up and at the
// end.
func tripLoop(b *testing.B, trip func(k int), restore func(used int)) {
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := i % tripPool
		if k == 0 && i > 0 {
			b.StopTimer()
			restore(tripPool)
			b.StartTimer()
		}
		trip(k)
	}
	b.StopTimer()
	restore((b.N-1)%tripPool + 1)
}
