package leveeredis

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/levee-go/levee/leveeredis/internal/redistest"
	"github.com/levee-go/levee/ratelimit"
	"github.com/levee-go/levee/resilience"
)

// The fleet limiter's call path side by side with ratelimit's local one, in
// one run (docs/fleet-limits.md):
//
//	cd leveeredis && GOWORK=off go test -run='^$' -bench='Limiter' -benchmem -count=6 .
//
// The limits are so high that every call is admitted; the fleet's calls
// spend leased tokens, and the benchmarks report the Redis round trips per
// call (leases/op) and any call that found its lease empty (rejected/op).

//go:noinline
func limiterBenchWork(context.Context) (int, error) { return 1, nil }

func benchFleetLimiter(b *testing.B, batch int) *Limiter {
	s := redistest.Start(b)
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), ContextTimeoutEnabled: true})
	b.Cleanup(func() { _ = c.Close() })
	f := NewFleet(c, WithInstanceID("bench"))
	b.Cleanup(f.Close)
	l := NewLimiter(f, "bench", 1_000_000_000, time.Second, WithLimitBatch(batch))
	deadline := time.Now().Add(5 * time.Second)
	for l.tokens.Load() == 0 {
		if time.Now().After(deadline) {
			b.Fatal("no first lease within 5s")
		}
		time.Sleep(time.Millisecond)
	}
	return l
}

func reportFleet(b *testing.B, l *Limiter) {
	b.ReportMetric(float64(l.leases.Load())/float64(b.N), "leases/op")
	b.ReportMetric(float64(l.rejected.Load())/float64(b.N), "rejected/op")
}

// benchFleetCalls calls a pipeline around a fleet limiter leasing batch
// tokens at a time, b.N times.
func benchFleetCalls(b *testing.B, batch int) {
	l := benchFleetLimiter(b, batch)
	get := resilience.Wrap(limiterBenchWork, LimiterPolicy[int](l))
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		_, _ = get(ctx)
	}
	reportFleet(b, l)
}

// BenchmarkLimiterFleet: a call through a pipeline around the fleet
// limiter that finds a leased token.
func BenchmarkLimiterFleet(b *testing.B) { benchFleetCalls(b, 100_000) }

// BenchmarkLimiterLocal: the same pipeline around ratelimit's local
// limiter.
func BenchmarkLimiterLocal(b *testing.B) {
	l := ratelimit.New("bench", 1_000_000_000, time.Second)
	get := resilience.Wrap(limiterBenchWork, ratelimit.Policy[int](l))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, _ = get(ctx)
	}
}

// BenchmarkLimiterFleetParallel and BenchmarkLimiterLocalParallel: the same
// from every processor at once.
func BenchmarkLimiterFleetParallel(b *testing.B) {
	l := benchFleetLimiter(b, 100_000)
	get := resilience.Wrap(limiterBenchWork, LimiterPolicy[int](l))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			_, _ = get(ctx)
		}
	})
	reportFleet(b, l)
}

func BenchmarkLimiterLocalParallel(b *testing.B) {
	l := ratelimit.New("bench", 1_000_000_000, time.Second)
	get := resilience.Wrap(limiterBenchWork, ratelimit.Policy[int](l))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			_, _ = get(ctx)
		}
	})
}

// BenchmarkLimiterFleetSmallBatch: batches of 100, a Redis round trip every
// 100 calls in the background; calls that outrun the lease are rejected
// and counted.
func BenchmarkLimiterFleetSmallBatch(b *testing.B) { benchFleetCalls(b, 100) }

// BenchmarkLimiterFleetSpend: the fleet's call path alone, for instruction
// counts against BenchmarkLimiterLocal (valgrind callgrind; see
// docs/fleet-limits.md): the limiter holds more tokens than the benchmark
// spends, so no lease and no Redis is involved.
func BenchmarkLimiterFleetSpend(b *testing.B) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, ContextTimeoutEnabled: true})
	b.Cleanup(func() { _ = c.Close() }) // after f.Close: cleanups run last first
	f := NewFleet(c, WithInstanceID("bench"), WithSyncInterval(time.Hour))
	b.Cleanup(f.Close)
	l := NewLimiter(f, "bench", 1_000_000_000, time.Second, WithLimitBatch(1))
	l.tokens.Store(1 << 62)
	get := resilience.Wrap(limiterBenchWork, LimiterPolicy[int](l))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, _ = get(ctx)
	}
}
