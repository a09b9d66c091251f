package leveeredis

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"

	"github.com/levee-go/levee/leveeredis/internal/redistest"
	"github.com/levee-go/levee/ratelimit"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/telemetry/telemetrytest"
)

// newLimitFleets returns k seats of one fleet, each with a client of its own, as
// k processes would have.
func newLimitFleets(t *testing.T, s *redistest.Server, k int, opts ...FleetOption) []*Fleet {
	t.Helper()
	fleets := make([]*Fleet, k)
	for i := range fleets {
		fleets[i] = NewFleet(newClient(t, s), append([]FleetOption{WithInstanceID(fmt.Sprintf("i%d", i))}, opts...)...)
		t.Cleanup(fleets[i].Close)
	}
	return fleets
}

// waitLimits polls cond every 2 ms until it holds, and fails the test with msg
// if it does not within bound.
func waitLimits(t *testing.T, bound time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", bound, msg)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// hammer runs workers goroutines per limiter calling it until stop is
// closed, and returns when they have all returned. Each admitted call's time
// goes to admitted; a worker pauses 200µs between calls so that hundreds of
// them do not starve the machine.
type hammerResult struct {
	mu       sync.Mutex
	admitted []time.Time
	per      []int64 // admitted per limiter
	other    []error
	slowest  time.Duration
	elapsed  time.Duration
}

func hammer(limiters []*Limiter, workers int, d time.Duration) *hammerResult {
	r := &hammerResult{per: make([]int64, len(limiters))}
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for i, l := range limiters {
		for range workers {
			wg.Go(func() {
				var mine []time.Time
				var slowest time.Duration
				for time.Now().Before(stop) {
					start := time.Now()
					err := l.Call(context.Background(), nopCall)
					slowest = max(slowest, time.Since(start))
					switch {
					case err == nil:
						mine = append(mine, time.Now())
					case errors.Is(err, ratelimit.ErrLimited):
					default:
						r.mu.Lock()
						r.other = append(r.other, err)
						r.mu.Unlock()
					}
					time.Sleep(200 * time.Microsecond)
				}
				r.mu.Lock()
				r.admitted = append(r.admitted, mine...)
				r.per[i] += int64(len(mine))
				r.slowest = max(r.slowest, slowest)
				r.mu.Unlock()
			})
		}
	}
	start := time.Now()
	wg.Wait()
	r.elapsed = time.Since(start)
	sort.Slice(r.admitted, func(i, j int) bool { return r.admitted[i].Before(r.admitted[j]) })
	return r
}

// maxInWindow is the most admissions within any stretch of length w.
func maxInWindow(times []time.Time, w time.Duration) int {
	best, j := 0, 0
	for i := range times {
		for times[i].Sub(times[j]) > w {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}

// Three instances under 300 goroutines share one limit: over the whole run
// and over every window the fleet admits at most what the bucket grants
// (burst + w·rate) plus one batch per instance, and it does use its limit.
func TestLimiter_HoldsAcrossInstancesUnderConcurrentLoad(t *testing.T) {
	s := redistest.Start(t)
	const (
		instances = 3
		n         = 100
		per       = 200 * time.Millisecond
		batch     = 5
		run       = 800 * time.Millisecond
	)
	fleets := newLimitFleets(t, s, instances, WithSyncInterval(20*time.Millisecond))
	start := time.Now()
	limiters := make([]*Limiter, instances)
	for i, f := range fleets {
		limiters[i] = NewLimiter(f, "api", n, per, WithLimitBatch(batch))
	}
	r := hammer(limiters, 100, run)
	elapsed := time.Since(start)
	require.Empty(t, r.other, "only rate limit refusals are expected")

	rate := float64(n) / per.Seconds()
	overshoot := batch * instances
	total := len(r.admitted)
	t.Logf("%d admitted in %v by %d instances (%v), GCRA allows %.0f", total, elapsed, instances, r.per, n+rate*elapsed.Seconds())
	assert.LessOrEqual(t, float64(total), n+rate*elapsed.Seconds()+float64(overshoot),
		"the fleet admitted %d in %v: more than burst %d + rate·t + %d leased", total, elapsed, n, overshoot)
	assert.GreaterOrEqual(t, total, n,
		"the fleet admitted only %d in %v: it should admit at least its burst", total, run)
	for _, w := range []time.Duration{per / 4, per, 2 * per} {
		got := maxInWindow(r.admitted, w)
		bound := n + int(rate*w.Seconds()+1) + overshoot
		t.Logf("window %v: at most %d admitted; GCRA allows %d, bound with leases %d", w, got, n+int(rate*w.Seconds()+1), bound)
		assert.LessOrEqual(t, got, bound, "admitted %d within %v; the bound is burst + w·rate + batch·instances = %d", got, w, bound)
	}
	for i, k := range r.per {
		assert.Positive(t, k, "instance %d admitted nothing", i)
	}
	for _, l := range limiters {
		assert.False(t, l.LocalOnly(), "Redis was up the whole time")
	}
}

// With no token, the rejection is ratelimit's own error, with a RetryAfter,
// through Call and through a pipeline; the first calls after construction
// find the first lease there.
func TestLimiter_RefusesWithRatelimitsError(t *testing.T) {
	s := redistest.Start(t)
	f := newLimitFleets(t, s, 1, WithSyncInterval(time.Hour))[0]
	l := NewLimiter(f, "api", 3, time.Hour, WithLimitBatch(3))
	waitLimits(t, 2*time.Second, "the first lease", func() bool { return l.tokens.Load() == 3 })

	get := resilience.Wrap(func(context.Context) (string, error) { return "ok", nil }, LimiterPolicy[string](l))
	for range 3 {
		v, err := get(context.Background())
		require.NoError(t, err)
		assert.Equal(t, "ok", v)
	}
	_, err := get(context.Background())
	require.ErrorIs(t, err, ratelimit.ErrLimited)
	var le *ratelimit.LimitedError
	require.ErrorAs(t, err, &le)
	assert.Equal(t, "api", le.Name())
	// The bucket earns a token every 20 minutes.
	assert.Greater(t, le.RetryAfter(), 19*time.Minute)
	assert.LessOrEqual(t, le.RetryAfter(), 20*time.Minute)

	assert.ErrorIs(t, l.Call(context.Background(), nopCall), ratelimit.ErrLimited)
	assert.Error(t, l.Call(context.Background(), nil))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, l.Call(ctx, nopCall), context.Canceled)
	assert.False(t, l.LocalOnly())
}

// A call that finds no token waits, with WithLimitMaxWait, for the lease it
// wakes, and gets a token from it.
func TestLimiter_MaxWaitWaitsForTheLeaseInFlight(t *testing.T) {
	s := redistest.Start(t)
	f := newLimitFleets(t, s, 1, WithSyncInterval(time.Hour))[0]
	l := NewLimiter(f, "api", 1000, time.Second, WithLimitBatch(1), WithLimitMaxWait(time.Second))
	waitLimits(t, 2*time.Second, "the first lease", func() bool { return l.tokens.Load() == 1 })
	for range 20 {
		require.NoError(t, l.Call(context.Background(), nopCall), "each call waits for its lease")
	}
	assert.Equal(t, int64(20), l.admitted.Load()+l.waited.Load())
	assert.Positive(t, l.waited.Load(), "calls that found no token waited for the lease they woke")
	assert.Zero(t, l.rejected.Load())
}

// Redis killed mid-run: every instance falls back to its share at once,
// no call waits for Redis, the fleet stays near its limit; restarted, every
// instance rejoins the fleet's bucket.
func TestLimiter_RedisKilledAndRestarted(t *testing.T) {
	s := redistest.Start(t)
	const (
		instances = 3
		n         = 150
		per       = 300 * time.Millisecond
	)
	fleets := newLimitFleets(t, s, instances, WithSyncInterval(20*time.Millisecond), WithOpTimeout(50*time.Millisecond))
	limiters := make([]*Limiter, instances)
	for i, f := range fleets {
		limiters[i] = NewLimiter(f, "api", n, per, WithLimitBatch(5))
	}
	r := hammer(limiters, 30, 150*time.Millisecond)
	require.Empty(t, r.other)
	for _, l := range limiters {
		assert.Equal(t, int64(instances), l.members.Load(), "each instance sees the fleet's size")
	}

	s.Kill()
	var outage *hammerResult
	done := make(chan struct{})
	go func() { defer close(done); outage = hammer(limiters, 30, 400*time.Millisecond) }()
	waitLimits(t, 2*time.Second, "every instance falls back to its local share", func() bool {
		for _, l := range limiters {
			if !l.LocalOnly() {
				return false
			}
		}
		return true
	})
	<-done
	require.Empty(t, outage.other, "Redis gone is never a caller's error")
	// Each instance's share is n/3 per period; add one local burst each
	// for the switch and the batches held when Redis went.
	rate := float64(n) / per.Seconds()
	bound := float64(n) + rate*outage.elapsed.Seconds() + float64(instances*5)
	assert.LessOrEqual(t, float64(len(outage.admitted)), bound, "while Redis is gone the shares add up to the limit")
	assert.Positive(t, len(outage.admitted))

	s.Restart()
	waitLimits(t, 3*time.Second, "every instance rejoins the fleet", func() bool {
		for _, l := range limiters {
			if l.LocalOnly() {
				return false
			}
			_ = l.Call(context.Background(), nopCall) // drives the leases
		}
		return true
	})
	after := hammer(limiters, 30, 300*time.Millisecond)
	require.Empty(t, after.other)
	assert.LessOrEqual(t, float64(len(after.admitted)), float64(n)+rate*after.elapsed.Seconds()+float64(instances*5))
	for i, l := range limiters {
		assert.False(t, l.LocalOnly(), "instance %d is back on the fleet's bucket", i)
		assert.Positive(t, after.per[i])
	}
}

// Garbage in the limiter's keys is a clear error, counted with its own
// error.type; the instance falls back at once, the key is reset, and the
// next lease rejoins the fleet. Nothing panics.
func TestLimiter_GarbageInKeys(t *testing.T) {
	for _, tc := range []struct {
		name  string
		key   string
		spoil func(c Client, key string) error
		says  string
	}{
		{"not a number", "tat", func(c Client, k string) error { return c.Set(context.Background(), k, "garbage", 0).Err() }, "not a time"},
		{"wrong type", "tat", func(c Client, k string) error { return c.LPush(context.Background(), k, "x").Err() }, "WRONGTYPE"},
		{"a time far ahead", "tat", func(c Client, k string) error { return c.Set(context.Background(), k, "9e15", 0).Err() }, "ahead"},
		{"members of the wrong type", "members", func(c Client, k string) error { return c.Set(context.Background(), k, "x", 0).Err() }, "WRONGTYPE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := redistest.Start(t)
			h := telemetrytest.New(t)
			c := newClient(t, s)
			f := NewFleet(c, WithInstanceID("a"), WithSyncInterval(20*time.Millisecond), WithMeterProvider(h.MeterProvider))
			defer f.Close()
			key := f.keyspace("limiter", "api").key(tc.key)
			require.NoError(t, tc.spoil(c, key))

			_, err := runLease(context.Background(), c, "api", []string{f.keyspace("limiter", "api").key("tat"), f.keyspace("limiter", "api").key("members")}, 1000.0, 0.0, 1, "probe", 1000)
			var se *DataError
			require.ErrorAs(t, err, &se, "the script says what is wrong")
			assert.Contains(t, se.Error(), tc.says)
			assert.Contains(t, se.Error(), key)
			require.NoError(t, tc.spoil(c, key))

			l := NewLimiter(f, "api", 100, time.Second, WithLimitBatch(5))
			waitLimits(t, 2*time.Second, "the bad state is reported", func() bool { return l.fallbacks.Load() > 0 })
			h.AssertInt64(MetricSyncErrors, 1,
				attribute.String("levee.policy.name", "api"),
				attribute.String("levee.fleet.operation", "lease"),
				attribute.String("error.type", ErrorTypeBadData))
			waitLimits(t, 2*time.Second, "the limiter rejoins once the key is reset", func() bool { return !l.LocalOnly() && l.tokens.Load() > 0 })
			require.NoError(t, l.Call(context.Background(), nopCall))
		})
	}
}

// Closed, the limiter goes on as its local share: no call is refused for
// want of a background loop.
func TestLimiter_AfterCloseGoesOnLocally(t *testing.T) {
	s := redistest.Start(t)
	f := newLimitFleets(t, s, 1)[0]
	l := NewLimiter(f, "api", 10, time.Hour, WithLimitBatch(1))
	waitLimits(t, 2*time.Second, "the first lease", func() bool { return l.tokens.Load() == 1 })
	f.Close()
	assert.True(t, l.LocalOnly())
	admitted := 0
	for range 20 {
		if l.Call(context.Background(), nopCall) == nil {
			admitted++
		}
	}
	assert.Equal(t, 11, admitted, "the leased token, then the local burst of 10")
}

func TestLimiter_BadSettingsPanicNamingThem(t *testing.T) {
	s := redistest.Start(t)
	f := newLimitFleets(t, s, 1)[0]
	for _, tc := range []struct {
		want string
		make func()
	}{
		{`leveeredis: NewLimiter("api"): n: must be at least 1, got 0`, func() { NewLimiter(f, "api", 0, time.Second) }},
		{`leveeredis: NewLimiter("api"): per: must be positive, got 0s`, func() { NewLimiter(f, "api", 1, 0) }},
		{`leveeredis: NewLimiter("api"): WithLimitBatch: must be at least 1, got 0`, func() { NewLimiter(f, "api", 1, time.Second, WithLimitBatch(0)) }},
		{`leveeredis: NewLimiter("api"): WithLimitBatch: 11 is more than the burst, 10`, func() { NewLimiter(f, "api", 10, time.Second, WithLimitBatch(11)) }},
		{`leveeredis: NewLimiter("api"): WithLimitBurst: must be at least 1, got -1`, func() { NewLimiter(f, "api", 1, time.Second, WithLimitBurst(-1)) }},
		{`leveeredis: NewLimiter("api"): WithLimitMaxWait: must not be negative, got -1s`, func() { NewLimiter(f, "api", 1, time.Second, WithLimitMaxWait(-time.Second)) }},
		{`leveeredis: NewLimiter("api"): WithLimitLocalShare: must be at least 1, got 0`, func() { NewLimiter(f, "api", 1, time.Second, WithLimitLocalShare(0)) }},
		{`leveeredis: NewLimiter("api"): WithLimitExpectedInstances: must be at least 1, got 0`, func() { NewLimiter(f, "api", 1, time.Second, WithLimitExpectedInstances(0)) }},
		{`leveeredis: NewLimiter("api"): option 0 is nil`, func() { NewLimiter(f, "api", 1, time.Second, nil) }},
		{`leveeredis: the policy name must not be empty`, func() { NewLimiter(f, "", 1, time.Second) }},
		{`leveeredis: NewLimiter: the fleet must not be nil`, func() { NewLimiter(nil, "api", 1, time.Second) }},
		{`leveeredis: LimiterPolicy: limiter must not be nil`, func() { LimiterPolicy[int](nil) }},
	} {
		assert.PanicsWithValue(t, tc.want, tc.make)
	}
}

// An instance that starts while Redis is unreachable applies n over the
// expected instances alone, at once; WithLimitLocalShare sets the share;
// the default batch shrinks as the fleet grows.
func TestLimiter_LocalShareAndAdaptiveBatch(t *testing.T) {
	s := redistest.Start(t)
	f := newLimitFleets(t, s, 1, WithSyncInterval(time.Hour), WithOpTimeout(50*time.Millisecond))[0]
	s.Kill()
	count := func(l *Limiter) int {
		admitted := 0
		for range 1000 {
			if l.Call(context.Background(), nopCall) == nil {
				admitted++
			}
		}
		return admitted
	}
	l := NewLimiter(f, "api", 1000, time.Hour, WithLimitExpectedInstances(4))
	assert.Equal(t, int64(1000/40), l.batchNow.Load(), "burst / (10 × expected instances)")
	waitLimits(t, 2*time.Second, "the first lease fails", l.LocalOnly)
	assert.Equal(t, 250, count(l), "the local share of 4 instances is a quarter of the limit")

	m := NewLimiter(f, "other", 1000, time.Hour, WithLimitLocalShare(7))
	waitLimits(t, 2*time.Second, "the first lease fails", m.LocalOnly)
	assert.Equal(t, 7, count(m))

	l.setMembers(1000)
	assert.Equal(t, int64(1), l.batchNow.Load(), "never below 1")
	l.setMembers(2)
	assert.Equal(t, int64(50), l.batchNow.Load())
}

// A Redis that stops answering (a script that spins for 600ms) never delays a call: the lease
// times out in the background, the instance falls back, and calls go on
// at their usual speed.
func TestLimiter_SlowRedisNeverDelaysACall(t *testing.T) {
	s := redistest.Start(t)
	f := newLimitFleets(t, s, 1, WithSyncInterval(10*time.Millisecond), WithOpTimeout(30*time.Millisecond))[0]
	l := NewLimiter(f, "api", 100000, time.Second, WithLimitBatch(1))
	waitLimits(t, 2*time.Second, "the first lease", func() bool { return l.tokens.Load() == 1 })

	sleeper := newClient(t, s)
	slept := make(chan error, 1)
	spin := `local t = redis.call('TIME'); local stop = t[1] * 1e6 + t[2] + 600000
while true do t = redis.call('TIME'); if t[1] * 1e6 + t[2] >= stop then return 1 end end`
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		slept <- sleeper.WithTimeout(3*time.Second).Eval(ctx, spin, nil).Err()
	}()
	time.Sleep(20 * time.Millisecond) // let the server begin its sleep
	var slowest time.Duration
	stop := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(stop) {
		start := time.Now()
		_ = l.Call(context.Background(), nopCall)
		slowest = max(slowest, time.Since(start))
		time.Sleep(time.Millisecond)
	}
	assert.True(t, l.LocalOnly(), "a lease that times out falls back to the local share")
	assert.Less(t, slowest, 150*time.Millisecond, "a call waited %v while Redis slept for 600ms", slowest)
	select {
	case err := <-slept:
		require.NoError(t, err)
	case <-time.After(3 * time.Second):
		t.Fatal("the spinning script did not return within 3s")
	}
	waitLimits(t, 2*time.Second, "the limiter rejoins once Redis answers", func() bool {
		_ = l.Call(context.Background(), nopCall)
		return !l.LocalOnly()
	})
}

// The telemetry of a fleet limiter: calls by outcome, lease requests and
// tokens, tokens held, and the fallback state.
func TestLimiter_Telemetry(t *testing.T) {
	s := redistest.Start(t)
	h := telemetrytest.New(t)
	f := NewFleet(newClient(t, s), WithInstanceID("a"), WithSyncInterval(time.Hour), WithOpTimeout(100*time.Millisecond), WithMeterProvider(h.MeterProvider))
	defer f.Close()
	// The whole bucket in one lease: the fleet's bucket is empty after it.
	l := NewLimiter(f, "api", 4, time.Hour, WithLimitBatch(4))
	waitLimits(t, 2*time.Second, "the first lease", func() bool { return l.tokens.Load() == 4 })
	name := attribute.String("levee.policy.name", "api")
	h.AssertInt64(MetricLeaseRequests, 1, name)
	h.AssertInt64(MetricLeaseTokens, 4, name)
	h.AssertInt64(MetricTokensHeld, 4, name)
	h.AssertInt64(MetricLocalFallback, 0, name, attribute.String("levee.fleet.policy", "limiter"))

	ctx, span := h.StartSpan(context.Background(), "caller")
	for range 5 {
		_ = l.Call(ctx, nopCall)
	}
	span.End()
	h.AssertInt64(MetricLimitCalls, 4, name, attribute.String("levee.outcome", "admitted"))
	h.AssertInt64(MetricLimitCalls, 1, name, attribute.String("levee.outcome", "rejected"))
	h.AssertInt64(MetricTokensHeld, 0, name)
	h.AssertInt64(MetricLeaseTokens, 4, name)
	require.Len(t, h.Events("levee.rate_limit.rejected"), 1, "a rejection adds ratelimit's event to the caller's span")

	m := NewLimiter(f, "other", 1000, time.Hour, WithLimitBatch(1))
	waitLimits(t, 2*time.Second, "the first lease", func() bool { return m.tokens.Load() == 1 })
	s.Kill()
	require.NoError(t, m.Call(context.Background(), nopCall), "the leased token")
	waitLimits(t, 2*time.Second, "the limiter falls back when its lease fails", m.LocalOnly)
	other := attribute.String("levee.policy.name", "other")
	h.AssertInt64(MetricLocalFallback, 1, other, attribute.String("levee.fleet.policy", "limiter"))
	require.NoError(t, m.Call(context.Background(), nopCall), "the local share admits")
	h.AssertInt64(MetricLimitCalls, 2, other, attribute.String("levee.outcome", "admitted"))
}

// An idle instance costs Redis one keep-alive lease every 10 sync
// intervals, not one an interval; a busy one about one lease a batch.
func TestLimiter_BackgroundCostPerInstance(t *testing.T) {
	s := redistest.Start(t)
	f := newLimitFleets(t, s, 1, WithSyncInterval(10*time.Millisecond))[0]
	idle := NewLimiter(f, "idle", 1000, time.Second, WithLimitBatch(10))
	start := time.Now()
	time.Sleep(300 * time.Millisecond)
	intervals := int64(time.Since(start) / (10 * time.Millisecond))
	leases := idle.leases.Load()
	t.Logf("idle: %d leases in %d intervals", leases, intervals)
	assert.LessOrEqual(t, leases, intervals/keepAliveIntervals+2, "an idle instance only says it is alive")
	assert.GreaterOrEqual(t, leases, int64(2), "the first lease and at least one keep-alive")

	busy := NewLimiter(f, "busy", 1_000_000, time.Second, WithLimitBatch(50), WithLimitMaxWait(time.Second))
	for range 5000 {
		require.NoError(t, busy.Call(context.Background(), nopCall))
	}
	t.Logf("busy: %d leases for 5000 calls", busy.leases.Load())
	assert.LessOrEqual(t, busy.leases.Load(), int64(5000/25+40), "about one lease per half batch, plus keep-alives")
}

// A call waiting for a lease when Redis goes is decided by the local share
// at once, not left to wait out its WithLimitMaxWait.
func TestLimiter_WaitingCallsAreDecidedLocallyWhenRedisGoes(t *testing.T) {
	s := redistest.Start(t)
	f := newLimitFleets(t, s, 1, WithSyncInterval(time.Hour), WithOpTimeout(100*time.Millisecond))[0]
	l := NewLimiter(f, "api", 1000, time.Minute, WithLimitBatch(1), WithLimitMaxWait(time.Minute))
	waitLimits(t, 2*time.Second, "the first lease", func() bool { return l.tokens.Load() == 1 })
	// Spent without waking the loop, which sleeps for an hour: the next
	// call finds no token and waits for the lease it wakes.
	l.tokens.Store(0)
	s.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	err := l.Call(ctx, nopCall) // wakes a lease that fails; the local share admits
	require.NoError(t, err, "the local share admits the waiting call")
	assert.Less(t, time.Since(start), 2*time.Second, "the waiting call was woken when the instance fell back")
	assert.True(t, l.LocalOnly())
}
