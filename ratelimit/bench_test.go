package ratelimit_test

import (
	"context"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/levee-go/levee/internal/testkit"
	"github.com/levee-go/levee/ratelimit"
	"github.com/levee-go/levee/resilience"
)

// The benchmarks here watch the limiter's own paths for regressions:
//
//	go test -run='^$' -bench=. -benchmem ./ratelimit
//
// The limits are set so high that every call is admitted. The side-by-side
// comparison with other libraries lives in the bench module.

func benchOptions(env testkit.BenchEnv, opts ...ratelimit.Option) []ratelimit.Option {
	return append([]ratelimit.Option{ratelimit.WithMeterProvider(env.MP), ratelimit.WithTracerProvider(env.TP)}, opts...)
}

//go:noinline
func benchWork(context.Context) (int, error) { return 1, nil }

//go:noinline
func benchWorkErr(context.Context) error { return nil }

// BenchmarkAllowed: a call through a pipeline (ratelimit.Policy) that finds
// a token.
func BenchmarkAllowed(b *testing.B) {
	testkit.BenchEach(b, func(b *testing.B, env testkit.BenchEnv) {
		l := ratelimit.New("bench", 1_000_000_000, time.Second, benchOptions(env)...)
		get := resilience.Wrap(benchWork, ratelimit.Policy[int](l))
		testkit.BenchCall(b, env.Ctx, get)
	})
}

// BenchmarkAllowedCall: the same through Limiter.Call.
func BenchmarkAllowedCall(b *testing.B) {
	testkit.BenchEach(b, func(b *testing.B, env testkit.BenchEnv) {
		l := ratelimit.New("bench", 1_000_000_000, time.Second, benchOptions(env)...)
		b.ReportAllocs()
		for b.Loop() {
			_ = l.Call(env.Ctx, benchWorkErr)
		}
	})
}

// BenchmarkRejected: a call that finds no token (its error carries its own
// RetryAfter, so it allocates).
func BenchmarkRejected(b *testing.B) {
	testkit.BenchEach(b, func(b *testing.B, env testkit.BenchEnv) {
		l := ratelimit.New("bench", 1, time.Hour, benchOptions(env)...)
		get := resilience.Wrap(benchWork, ratelimit.Policy[int](l))
		_, _ = get(env.Ctx)
		testkit.BenchCall(b, env.Ctx, get)
	})
}

// BenchmarkAllowedParallel: BenchmarkAllowed from every core at once, on one
// bucket. ns/op is wall time over all calls.
func BenchmarkAllowedParallel(b *testing.B) {
	testkit.BenchEach(b, func(b *testing.B, env testkit.BenchEnv) {
		l := ratelimit.New("bench", 1_000_000_000, time.Second, benchOptions(env)...)
		get := resilience.Wrap(benchWork, ratelimit.Policy[int](l))
		testkit.BenchParallel(b, env.Ctx, get)
	})
}

type benchKey struct{}

func benchKeyOf(ctx context.Context) string { k, _ := ctx.Value(benchKey{}).(string); return k }

// keyedLimiter is a keyed limiter holding keys keys, the contexts that call
// with them, and the heap the limiter holds for them.
type keyedLimiter struct {
	l    *ratelimit.Limiter
	ctxs []context.Context
	held int64
}

func newKeyedLimiter(b *testing.B, keys int) keyedLimiter {
	ctxs := make([]context.Context, keys)
	for i := range ctxs {
		ctxs[i] = context.WithValue(context.Background(), benchKey{}, "client-"+strconv.Itoa(i))
	}
	before := heapInUse()
	// A key's bucket of a million tokens gains one a minute: every call
	// is admitted, and no key goes idle (and is dropped) during the run.
	l := ratelimit.New("bench", 1, time.Minute, ratelimit.WithBurst(1_000_000),
		ratelimit.WithKey(benchKeyOf), ratelimit.WithMaxKeys(keys), ratelimit.WithMeterProvider(testkit.BenchNoSDK(b).MP))
	for _, ctx := range ctxs {
		if err := l.Call(ctx, benchWorkErr); err != nil {
			b.Fatal(err)
		}
	}
	if got := l.Keys(); got != keys {
		b.Fatalf("the limiter tracks %d keys, want %d", got, keys)
	}
	return keyedLimiter{l: l, ctxs: ctxs, held: heapInUse() - before}
}

func (k keyedLimiter) report(b *testing.B) {
	b.ReportMetric(float64(k.held)/float64(len(k.ctxs)), "B/key")
	b.ReportMetric(float64(k.held)/(1<<20), "MiB-held")
}

func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// BenchmarkKeyed: a call of one of 1 000 or 1 000 000 tracked keys, taken in
// turn, and the memory the limiter holds for them (B/key, MiB-held); then
// the same from every core at once.
func BenchmarkKeyed(b *testing.B) {
	for _, keys := range []int{1_000, 1_000_000} {
		k := newKeyedLimiter(b, keys)
		b.Run("keys="+strconv.Itoa(keys), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				_ = k.l.Call(k.ctxs[i], benchWorkErr)
				if i++; i == len(k.ctxs) {
					i = 0
				}
			}
			k.report(b)
		})
		b.Run("keys="+strconv.Itoa(keys)+"/parallel", func(b *testing.B) {
			var goroutines atomic.Int64
			testkit.BenchParallelEach(b, func() func() {
				// Each goroutine starts at a key of its own, and keeps its
				// cursor on a line of its own: two cursors side by side on
				// the heap would measure their false sharing.
				c := &struct {
					_ [64]byte
					i int
					_ [64]byte
				}{i: int(goroutines.Add(1)) * 7919 % len(k.ctxs)}
				return func() {
					_ = k.l.Call(k.ctxs[c.i], benchWorkErr)
					if c.i++; c.i == len(k.ctxs) {
						c.i = 0
					}
				}
			})
			k.report(b)
		})
	}
}
