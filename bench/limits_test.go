package bench

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/failsafe-go/failsafe-go/adaptivethrottler"
	fsbulkhead "github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/ratelimiter"
	uberratelimit "go.uber.org/ratelimit"
	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"

	"github.com/levee-go/levee/bulkhead"
	"github.com/levee-go/levee/internal/stripe"
	"github.com/levee-go/levee/ratelimit"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/throttle"
)

// The limits side by side (issue 13): a bulkhead against
// golang.org/x/sync/semaphore and failsafe-go's bulkhead, a rate limit
// against golang.org/x/time/rate, go.uber.org/ratelimit and failsafe-go's
// ratelimiter, keyed rate limits against a map of x/time/rate limiters, and
// the adaptive throttle against failsafe-go's adaptivethrottler. Every call
// is admitted; levee runs with the OpenTelemetry SDK installed, each peer is
// called the cheapest way it offers, built once outside the timed loop.

// limitCall is one admitted call of a limit library: it returns 1 when the
// call ran, 0 when the limit refused it (which the benchmarks check never
// happens).
type limitCall func() int

// floorSlots is the counter of lib=floor, alone on its cache line.
var floorSlots struct {
	_ [64]byte
	n atomic.Int64
	_ [56]byte
}

// floorReleases are the per-stripe release counts of lib=floor-admit, each
// on a cache line of its own.
var floorReleases [stripe.Count]struct {
	n atomic.Int64
	_ [56]byte
}

// bulkheadLibs build, for a limit of maxConcurrent calls at once, one call
// of workFn with ctx through each library. lib=floor is what the issue
// calls the floor: two atomic operations around the call (one to take a
// slot, one to give it back, with an open-coded defer), on a counter alone
// on its cache line.
var bulkheadLibs = []struct {
	name  string
	build func(ctx context.Context, s *sdk, maxConcurrent int) limitCall
}{
	{"floor", func(ctx context.Context, _ *sdk, _ int) limitCall {
		return func() int {
			floorSlots.n.Add(1)
			defer floorSlots.n.Add(-1)
			v, _ := workFn(ctx)
			return v
		}
	}},
	// floor-admit is the least an exact bulkhead's admission can cost: one
	// atomic add to one counter shared by every core (a limit that holds
	// exactly, at every instant, is one number that admissions move), with
	// the release on a stripe of the calling goroutine's own, which no
	// other core writes. It has no limit to check at all.
	{"floor-admit", func(ctx context.Context, _ *sdk, _ int) limitCall {
		return func() int {
			floorSlots.n.Add(1)
			defer floorReleases[stripe.Hint(unsafe.Pointer(&floorReleases))].n.Add(1)
			v, _ := workFn(ctx)
			return v
		}
	}},
	{"levee", func(ctx context.Context, s *sdk, maxConcurrent int) limitCall {
		bh := bulkhead.New("dep", maxConcurrent, bulkhead.WithMeterProvider(s.mp), bulkhead.WithTracerProvider(s.tp))
		get := resilience.Wrap(workFn, bulkhead.Policy[int](bh))
		return func() int { v, _ := get(ctx); return v }
	}},
	{"semaphore", func(ctx context.Context, _ *sdk, maxConcurrent int) limitCall {
		sem := semaphore.NewWeighted(int64(maxConcurrent))
		return func() int {
			if !sem.TryAcquire(1) {
				return 0
			}
			v, _ := workFn(ctx)
			sem.Release(1)
			return v
		}
	}},
	{"failsafe-go", func(ctx context.Context, _ *sdk, maxConcurrent int) limitCall {
		bh := fsbulkhead.New[int](uint(maxConcurrent))
		return func() int {
			if !bh.TryAcquirePermit() {
				return 0
			}
			v, _ := workFn(ctx)
			bh.ReleasePermit()
			return v
		}
	}},
	// failsafe-go-executor is failsafe-go's bulkhead in an executor, the
	// way its pipelines call it, built once with the context.
	{"failsafe-go-executor", func(ctx context.Context, _ *sdk, maxConcurrent int) limitCall {
		exec := failsafeExecutor(ctx, fsbulkhead.New[int](uint(maxConcurrent)))
		fn := func() (int, error) { return workFn(ctx) }
		return func() int { v, _ := exec.Get(fn); return v }
	}},
}

// BenchmarkBulkheadAcquireRelease: a call through a bulkhead with a free
// slot, uncontended: take the slot, call, give it back. One slot: what
// matters is the path, not the limit.
func BenchmarkBulkheadAcquireRelease(b *testing.B) {
	ctx := context.Background()
	for _, lib := range bulkheadLibs {
		b.Run("lib="+lib.name, func(b *testing.B) {
			call := lib.build(ctx, newSDK(b), 1)
			benchLimitSerial(b, call)
		})
	}
}

// BenchmarkBulkheadAcquireReleaseParallel is BenchmarkBulkheadAcquireRelease
// from every core at once (b.RunParallel), with a slot for every call, 64
// calls per pb.Next() and the figures per call (see reportPerCall). One
// bulkhead serves every goroutine.
func BenchmarkBulkheadAcquireReleaseParallel(b *testing.B) {
	ctx := context.Background()
	for _, lib := range bulkheadLibs {
		b.Run("lib="+lib.name, func(b *testing.B) {
			call := lib.build(ctx, newSDK(b), 1<<20)
			benchLimitParallel(b, call)
		})
	}
}

// limitRate is the rate of every rate limit here: a billion calls a second
// in bursts of as many, so that every call finds a token.
const limitRate = 1_000_000_000

// limitLib builds one call of workFn with ctx through a library, levee
// reporting to the SDK s.
type limitLib struct {
	name  string
	build func(ctx context.Context, s *sdk) limitCall
}

// rateLibs build one call through each rate limit library, at limitRate.
var rateLibs = []limitLib{
	{"levee", func(ctx context.Context, s *sdk) limitCall {
		l := ratelimit.New("dep", limitRate, time.Second, ratelimit.WithMeterProvider(s.mp), ratelimit.WithTracerProvider(s.tp))
		get := resilience.Wrap(workFn, ratelimit.Policy[int](l))
		return func() int { v, _ := get(ctx); return v }
	}},
	{"x-time-rate", func(ctx context.Context, _ *sdk) limitCall {
		l := rate.NewLimiter(limitRate, limitRate)
		return func() int {
			if !l.Allow() {
				return 0
			}
			v, _ := workFn(ctx)
			return v
		}
	}},
	// uber-go/ratelimit has no Allow: Take blocks until the call's turn,
	// which at a billion a second is now (it sleeps for nothing).
	{"uber-ratelimit", func(ctx context.Context, _ *sdk) limitCall {
		l := uberratelimit.New(limitRate)
		return func() int {
			l.Take()
			v, _ := workFn(ctx)
			return v
		}
	}},
	{"failsafe-go", func(ctx context.Context, _ *sdk) limitCall {
		l := ratelimiter.NewBursty[int](limitRate, time.Second)
		return func() int {
			if !l.TryAcquirePermit() {
				return 0
			}
			v, _ := workFn(ctx)
			return v
		}
	}},
	{"failsafe-go-executor", func(ctx context.Context, _ *sdk) limitCall {
		exec := failsafeExecutor(ctx, ratelimiter.NewBursty[int](limitRate, time.Second))
		fn := func() (int, error) { return workFn(ctx) }
		return func() int { v, _ := exec.Get(fn); return v }
	}},
}

// BenchmarkRateLimitAllowed: a call through a rate limit that finds a
// token.
func BenchmarkRateLimitAllowed(b *testing.B) { benchLimitLibs(b, rateLibs, benchLimitSerial) }

// BenchmarkRateLimitAllowedParallel is BenchmarkRateLimitAllowed from every
// core at once, on one bucket.
func BenchmarkRateLimitAllowedParallel(b *testing.B) { benchLimitLibs(b, rateLibs, benchLimitParallel) }

// throttleLibs build one call through each adaptive throttle, to a
// dependency that accepts every call.
var throttleLibs = []limitLib{
	{"levee", func(ctx context.Context, s *sdk) limitCall {
		th := throttle.New("dep", throttle.WithMeterProvider(s.mp), throttle.WithTracerProvider(s.tp))
		get := resilience.Wrap(workFn, throttle.Policy[int](th))
		return func() int { v, _ := get(ctx); return v }
	}},
	{"failsafe-go", func(ctx context.Context, _ *sdk) limitCall {
		th := adaptivethrottler.NewWithDefaults[int]()
		return func() int {
			if !th.TryAcquirePermit() {
				return 0
			}
			v, err := workFn(ctx)
			if err != nil {
				th.RecordError(err)
			} else {
				th.RecordSuccess()
			}
			return v
		}
	}},
	{"failsafe-go-executor", func(ctx context.Context, _ *sdk) limitCall {
		exec := failsafeExecutor(ctx, adaptivethrottler.NewWithDefaults[int]())
		fn := func() (int, error) { return workFn(ctx) }
		return func() int { v, _ := exec.Get(fn); return v }
	}},
}

// BenchmarkThrottleHealthy: a call through an adaptive throttle to a
// dependency that accepts it, the path almost every call takes.
func BenchmarkThrottleHealthy(b *testing.B) { benchLimitLibs(b, throttleLibs, benchLimitSerial) }

// BenchmarkThrottleHealthyParallel is BenchmarkThrottleHealthy from every
// core at once, on one throttle.
func BenchmarkThrottleHealthyParallel(b *testing.B) {
	benchLimitLibs(b, throttleLibs, benchLimitParallel)
}

// benchLimitLibs runs bench, serial or parallel, for each of libs, with a
// context that is never done.
func benchLimitLibs(b *testing.B, libs []limitLib, bench func(*testing.B, limitCall)) {
	ctx := context.Background()
	for _, lib := range libs {
		b.Run("lib="+lib.name, func(b *testing.B) { bench(b, lib.build(ctx, newSDK(b))) })
	}
}

// benchLimitSerial times b.N calls and checks that every one ran.
func benchLimitSerial(b *testing.B, call limitCall) {
	b.ReportAllocs()
	ran := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ran += call()
	}
	b.StopTimer()
	if ran != b.N {
		b.Fatalf("%d of %d calls ran: the limit refused some", ran, b.N)
	}
}

// benchLimitParallel times b.N·parallelBatch calls from every core and
// checks that every one ran.
func benchLimitParallel(b *testing.B, call limitCall) {
	var ran atomic.Int64
	start := startPerCall(b)
	b.RunParallel(func(pb *testing.PB) {
		n := 0
		for pb.Next() {
			for range parallelBatch {
				n += call()
			}
		}
		ran.Add(int64(n))
	})
	reportPerCall(b, start)
	if want := int64(b.N) * parallelBatch; ran.Load() != want {
		b.Fatalf("%d of %d calls ran: the limit refused some", ran.Load(), want)
	}
}

// ---- keyed rate limits ----

type limitKey struct{}

func limitKeyOf(ctx context.Context) string { k, _ := ctx.Value(limitKey{}).(string); return k }

// keyedLib is a keyed rate limit holding keys keys, with the contexts that
// call with them.
type keyedLib struct {
	call func(ctx context.Context) int
	ctxs []context.Context
	held uint64 // heap the limit holds for its keys
}

// keyedLibs build a limit of one call a minute per key in bursts of a
// million, so that every call is admitted and no key goes idle during a
// run, and call it once with every key. lib=x-time-rate is what Go users
// write by hand: a sync.Map of *rate.Limiter, one per key, never dropped.
var keyedLibs = []struct {
	name  string
	build func(keys int) func(ctx context.Context) int
}{
	{"levee", func(keys int) func(ctx context.Context) int {
		l := ratelimit.New("dep", 1, time.Minute, ratelimit.WithBurst(1_000_000),
			ratelimit.WithKey(limitKeyOf), ratelimit.WithMaxKeys(keys))
		return func(ctx context.Context) int {
			if l.Call(ctx, workErr) != nil {
				return 0
			}
			return 1
		}
	}},
	{"x-time-rate", func(int) func(ctx context.Context) int {
		var limits sync.Map
		return func(ctx context.Context) int {
			key := limitKeyOf(ctx)
			l, ok := limits.Load(key)
			if !ok {
				l, _ = limits.LoadOrStore(key, rate.NewLimiter(rate.Every(time.Minute), 1_000_000))
			}
			if !l.(*rate.Limiter).Allow() {
				return 0
			}
			v, _ := workFn(ctx)
			return v
		}
	}},
}

//go:noinline
func workErr(context.Context) error { return nil }

var keyCounts = []int{1_000, 1_000_000}

func newKeyedLib(b *testing.B, build func(int) func(context.Context) int, keys int) *keyedLib {
	ctxs := make([]context.Context, keys)
	for i := range ctxs {
		ctxs[i] = context.WithValue(context.Background(), limitKey{}, "client-"+strconv.Itoa(i))
	}
	before := heapAfterGC()
	k := &keyedLib{call: build(keys), ctxs: ctxs}
	for _, ctx := range ctxs {
		if k.call(ctx) != 1 {
			b.Fatal("a first call of its key was refused")
		}
	}
	k.held = heapAfterGC() - before
	return k
}

// report adds the heap held per key and in all.
func (k *keyedLib) report(b *testing.B) {
	b.ReportMetric(float64(k.held)/float64(len(k.ctxs)), "B/key")
	b.ReportMetric(float64(k.held)/(1<<20), "MiB-held")
}

// BenchmarkRateLimitKeyed: a call of one of 1 000 or 1 000 000 keys, taken
// in turn (each key's bucket is cold in the cache at a million), and the
// heap the limit holds for them: B/key, MiB-held. The setup's calls, one a
// key, are not timed; the limit is set up once, when its sub-benchmark
// first runs, for all the b.N tried, and its keys stay busy (a million
// tokens each) however many calls the runs make.
func BenchmarkRateLimitKeyed(b *testing.B) {
	for _, keys := range keyCounts {
		for _, lib := range keyedLibs {
			var k *keyedLib // set up once: b.Run calls its function for each b.N it tries
			b.Run("keys="+strconv.Itoa(keys)+"/lib="+lib.name, func(b *testing.B) {
				if k == nil {
					k = newKeyedLib(b, lib.build, keys)
				}
				b.ReportAllocs()
				ran, i := 0, 0
				b.ResetTimer()
				for n := 0; n < b.N; n++ {
					ran += k.call(k.ctxs[i])
					if i++; i == len(k.ctxs) {
						i = 0
					}
				}
				b.StopTimer()
				if ran != b.N {
					b.Fatalf("%d of %d calls ran", ran, b.N)
				}
				k.report(b)
			})
		}
	}
}

// BenchmarkRateLimitKeyedParallel is BenchmarkRateLimitKeyed from every
// core at once, each goroutine taking the keys in turn from a key of its
// own.
func BenchmarkRateLimitKeyedParallel(b *testing.B) {
	for _, keys := range keyCounts {
		for _, lib := range keyedLibs {
			var k *keyedLib
			b.Run("keys="+strconv.Itoa(keys)+"/lib="+lib.name, func(b *testing.B) {
				if k == nil {
					k = newKeyedLib(b, lib.build, keys)
				}
				var goroutines, ran atomic.Int64
				start := startPerCall(b)
				b.RunParallel(func(pb *testing.PB) {
					i := int(goroutines.Add(1)) * 7919 % keys
					n := 0
					for pb.Next() {
						for range parallelBatch {
							n += k.call(k.ctxs[i])
							if i++; i == keys {
								i = 0
							}
						}
					}
					ran.Add(int64(n))
				})
				reportPerCall(b, start)
				if want := int64(b.N) * parallelBatch; ran.Load() != want {
					b.Fatalf("%d of %d calls ran", ran.Load(), want)
				}
				k.report(b)
			})
		}
	}
}
