package bench

import (
	"context"
	"testing"
	"time"

	gobreaker "github.com/sony/gobreaker/v2"

	"github.com/failsafe-go/failsafe-go"
	fscb "github.com/failsafe-go/failsafe-go/circuitbreaker"

	fortifycb "github.com/felixgeelhaar/fortify/circuitbreaker"

	eapache "github.com/eapache/go-resiliency/breaker"

	"github.com/levee-go/levee/breaker"
)

// Every breaker here opens after threshold consecutive failures and stays
// open for openFor, so that no open-state benchmark sees it half-open.
const openFor = time.Hour

func newLevee(s *sdk, opts ...breaker.Option) *breaker.Breaker {
	return breaker.New("dep", append([]breaker.Option{
		breaker.WithFailureThreshold(threshold),
		breaker.WithOpenTimeout(openFor),
		breaker.WithMeterProvider(s.mp),
		breaker.WithTracerProvider(s.tp),
	}, opts...)...)
}

func newGobreaker() *gobreaker.CircuitBreaker[int] {
	return gobreaker.NewCircuitBreaker[int](gobreaker.Settings{
		Name:        "dep",
		Timeout:     openFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= threshold },
	})
}

func newFailsafe() fscb.CircuitBreaker[int] {
	return fscb.NewBuilder[int]().WithFailureThreshold(threshold).WithDelay(openFor).Build()
}

// failsafeExecutor builds the executor once, outside the timed loop, with
// the benchmark's context: the cheapest way failsafe-go can be called.
func failsafeExecutor(ctx context.Context, policies ...failsafe.Policy[int]) failsafe.Executor[int] {
	return failsafe.With(policies...).WithContext(ctx)
}

func newFortify() fortifycb.CircuitBreaker[int] {
	return fortifycb.New[int](fortifycb.Config{
		Timeout:     openFor,
		ReadyToTrip: func(c fortifycb.Counts) bool { return c.ConsecutiveFailures >= threshold },
	})
}

// go-resiliency's open breaker sleeps in a goroutine for its timeout; the
// trip benchmark gives it a short one so those goroutines do not pile up.
func newEapache(timeout time.Duration) *eapache.Breaker {
	return eapache.New(threshold, 1, timeout)
}

// Checks that a workload ran in the state it claims, made once outside the
// timed loop.

func requireLeveeState(b *testing.B, br *breaker.Breaker, want breaker.State) {
	b.Helper()
	if got := br.State(); got != want {
		b.Fatalf("levee breaker is %v, want %v", got, want)
	}
}

func requireGobreakerState(b *testing.B, br *gobreaker.CircuitBreaker[int], want gobreaker.State) {
	b.Helper()
	if got := br.State(); got != want {
		b.Fatalf("gobreaker is %v, want %v", got, want)
	}
}

func requireFailsafeState(b *testing.B, br fscb.CircuitBreaker[int], want fscb.State) {
	b.Helper()
	if got := br.State(); got != want {
		b.Fatalf("failsafe-go breaker is %v, want %v", got, want)
	}
}

func requireFortifyState(b *testing.B, br fortifycb.CircuitBreaker[int], want fortifycb.State) {
	b.Helper()
	if got := br.State(); got != want {
		b.Fatalf("fortify breaker is %v, want %v", got, want)
	}
}

func requireEapacheState(b *testing.B, br *eapache.Breaker, want eapache.State) {
	b.Helper()
	if got := br.GetState(); got != want {
		b.Fatalf("go-resiliency breaker is %v, want %v", got, want)
	}
}
