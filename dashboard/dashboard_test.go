package dashboard_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.uber.org/goleak"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/bulkhead"
	"github.com/levee-go/levee/dashboard"
	"github.com/levee-go/levee/hedge"
	"github.com/levee-go/levee/ratelimit"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/retry"
	"github.com/levee-go/levee/telemetry"
	"github.com/levee-go/levee/telemetry/telemetrytest"
	"github.com/levee-go/levee/throttle"
)

func TestSnapshot_ShowsEveryKindWithItsCounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := dashboard.New()
		ctx := context.Background()

		b := d.NewBreaker("payments")
		require.NoError(t, b.Call(ctx, succeed))
		require.ErrorIs(t, b.Call(ctx, fail), errDown)

		bh := bulkhead.New("pool", 2)
		d.AddBulkhead(bh)
		hold := make(chan struct{})
		go func() { _ = bh.Call(ctx, func(context.Context) error { <-hold; return nil }) }()
		go func() { _ = bh.Call(ctx, func(context.Context) error { <-hold; return nil }) }()
		synctest.Wait()
		require.ErrorIs(t, bh.Call(ctx, succeed), bulkhead.ErrFull)

		l := ratelimit.New("api", 1, time.Minute)
		d.AddLimiter(l)
		require.NoError(t, l.Call(ctx, succeed))
		require.ErrorIs(t, l.Call(ctx, succeed), ratelimit.ErrLimited)

		th := throttle.New("backend")
		d.AddThrottle(th)
		require.NoError(t, th.Call(ctx, succeed))
		require.ErrorIs(t, th.Call(ctx, fail), errDown)

		mp := d.MeterProvider(nil)
		failures := 1
		flaky := func(context.Context) (int, error) {
			if failures > 0 {
				failures--
				return 0, errDown
			}
			return 7, nil
		}
		pricing := resilience.WrapWith(resilience.Telemetry{Name: "pricing", MeterProvider: mp}, flaky,
			retry.Policy[int](retry.WithDelay(time.Millisecond)))
		v, err := pricing(ctx)
		require.NoError(t, err)
		require.Equal(t, 7, v)

		slow := func(ctx context.Context) (int, error) {
			select {
			case <-time.After(time.Second):
				return 1, nil
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		search := resilience.WrapWith(resilience.Telemetry{Name: "search", MeterProvider: mp}, slow,
			hedge.Policy[int](10*time.Millisecond))
		_, err = search(ctx)
		require.NoError(t, err)

		s := snapshot(t, d, "")
		assert.Equal(t, 6, s.Summary.Total)
		assert.Equal(t, map[string]int{"breaker": 1, "bulkhead": 1, "rate_limit": 1, "throttle": 1, "retry": 1, "hedge": 1}, s.Summary.Kinds)

		p := find(t, s, "breaker", "payments")
		assert.Equal(t, "closed", p.State)
		assert.Equal(t, int64(1), count(t, p, "success"))
		assert.Equal(t, int64(1), count(t, p, "failure"))

		p = find(t, s, "bulkhead", "pool")
		assert.Equal(t, "full", p.State)
		assert.Equal(t, "warn", p.Level)
		assert.Equal(t, int64(2), count(t, p, "admitted"))
		assert.Equal(t, int64(1), count(t, p, "rejected"))
		assert.Contains(t, p.Details, dashboard.Detail{Label: "in flight", Value: "2 / 2"})

		p = find(t, s, "rate_limit", "api")
		assert.Equal(t, int64(1), count(t, p, "admitted"))
		assert.Equal(t, int64(1), count(t, p, "rejected"))

		p = find(t, s, "throttle", "backend")
		assert.Equal(t, int64(1), count(t, p, "success"))
		assert.Equal(t, int64(1), count(t, p, "failure"))

		p = find(t, s, "retry", "pricing")
		assert.Equal(t, int64(1), count(t, p, "retry_success"))
		assert.Equal(t, int64(0), count(t, p, "retry_failure"))

		p = find(t, s, "hedge", "search")
		assert.Equal(t, int64(1), count(t, p, "started"))
		assert.Equal(t, int64(1), count(t, p, "won_by_first")+count(t, p, "won_by_hedge"))

		close(hold)
		synctest.Wait()
	})
}

func TestSnapshot_BreakerStateAndTimelineFollowItsTransitions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := dashboard.New()
		b := d.NewBreaker("payments", breaker.WithOpenTimeout(5*time.Second))
		trip(t, b)
		synctest.Wait() // the listener's delivery

		p := find(t, snapshot(t, d, ""), "breaker", "payments")
		assert.Equal(t, "open", p.State)
		assert.Equal(t, "bad", p.Level)
		require.Len(t, p.Transitions, 1)
		assert.Equal(t, "closed", p.Transitions[0].From)
		assert.Equal(t, "open", p.Transitions[0].To)

		time.Sleep(5*time.Second + time.Millisecond) // past the open timeout's timer
		require.NoError(t, b.Call(context.Background(), succeed))
		synctest.Wait()
		p = find(t, snapshot(t, d, ""), "breaker", "payments")
		assert.Equal(t, "closed", p.State)
		var path []string
		for _, tr := range p.Transitions {
			path = append(path, tr.From+">"+tr.To)
		}
		assert.Equal(t, []string{"closed>open", "open>half-open", "half-open>closed"}, path)

		// Past the timeline, the transitions leave the snapshot.
		time.Sleep(dashboard.DefaultTimeline + time.Second)
		assert.Empty(t, find(t, snapshot(t, d, ""), "breaker", "payments").Transitions)
	})
}

func TestSnapshot_BreakerWithoutTheListenerShowsObservedChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := dashboard.New()
		b := breaker.New("elsewhere")
		d.AddBreaker(b)
		assert.Empty(t, find(t, snapshot(t, d, ""), "breaker", "elsewhere").Transitions)
		trip(t, b)
		p := find(t, snapshot(t, d, ""), "breaker", "elsewhere")
		require.Len(t, p.Transitions, 1)
		assert.True(t, p.Transitions[0].Observed)
		assert.Equal(t, "open", p.Transitions[0].To)
	})
}

func TestSnapshot_RatesAreCallsPerSecondOverTheRecentReadings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := dashboard.New()
		b := d.NewBreaker("payments")
		p := find(t, snapshot(t, d, ""), "breaker", "payments")
		assert.Nil(t, p.Counts[0].PerSecond, "one reading gives no rate")
		for range 40 {
			require.NoError(t, b.Call(context.Background(), succeed))
		}
		time.Sleep(2 * time.Second)
		p = find(t, snapshot(t, d, ""), "breaker", "payments")
		assert.InDelta(t, 20.0, rate(t, p, "success"), 0.001)
		assert.InDelta(t, 0.0, rate(t, p, "failure"), 0.001)
	})
}

func TestSnapshot_FiltersAndPagesAThousandPolicies(t *testing.T) {
	d := dashboard.New()
	breakers := make([]*breaker.Breaker, 1000)
	for i := range breakers {
		breakers[i] = breaker.New(fmt.Sprintf("host-%04d", i))
	}
	d.AddBreaker(breakers...)
	for _, i := range []int{17, 500, 999} {
		trip(t, breakers[i])
	}

	s := snapshot(t, d, "")
	assert.Equal(t, 1000, s.Summary.Total)
	assert.Equal(t, 3, s.Summary.Open)
	assert.Equal(t, 1000, s.Matched)
	require.Len(t, s.Policies, dashboard.DefaultPageSize)
	// Attention first: the open ones lead.
	assert.Equal(t, []string{"host-0017", "host-0500", "host-0999", "host-0000"},
		[]string{s.Policies[0].Name, s.Policies[1].Name, s.Policies[2].Name, s.Policies[3].Name})

	s = snapshot(t, d, "sort=name&offset=990&limit=20")
	assert.Equal(t, 1000, s.Matched)
	require.Len(t, s.Policies, 10)
	assert.Equal(t, "host-0990", s.Policies[0].Name)

	s = snapshot(t, d, "state=open")
	assert.Equal(t, 3, s.Matched)
	s = snapshot(t, d, "q=HOST-05&kind=breaker")
	assert.Equal(t, 100, s.Matched)
	s = snapshot(t, d, "kind=bulkhead")
	assert.Equal(t, 0, s.Matched)
	assert.Empty(t, s.Policies)

	for _, bad := range []string{"kind=nope", "state=weird", "sort=x", "offset=-1", "limit=0", "limit=501", "limit=x"} {
		assert.Equal(t, 400, get(d, "api/snapshot?"+bad).Code, bad)
		assert.Equal(t, 400, get(d, "api/events?"+bad).Code, bad)
	}
	runtime.KeepAlive(breakers)
}

func TestDashboard_ForgetsPoliciesNobodyReferences(t *testing.T) {
	d := dashboard.New()
	keep := breaker.New("kept")
	d.AddBreaker(keep)
	func() {
		d.AddBreaker(breaker.New("dropped"))
		d.AddBulkhead(bulkhead.New("dropped", 1))
	}()
	deadline := time.Now().Add(5 * time.Second)
	for snapshot(t, d, "").Summary.Total != 1 {
		require.True(t, time.Now().Before(deadline), "garbage policies still on the page after 5s of GC")
		runtime.GC()
	}
	assert.Equal(t, "kept", snapshot(t, d, "").Policies[0].Name)
	runtime.KeepAlive(keep)
}

func TestDashboard_ALaterRegistrationOfANameReplacesTheFirst(t *testing.T) {
	d := dashboard.New()
	first, second := breaker.New("same"), breaker.New("same")
	d.AddBreaker(first)
	d.AddBreaker(second)
	trip(t, second)
	s := snapshot(t, d, "")
	require.Equal(t, 1, s.Summary.Total)
	assert.Equal(t, "open", s.Policies[0].State)
	runtime.KeepAlive(first)
}

func TestMeterProvider_ForwardsEverythingToNext(t *testing.T) {
	h := newHarness(t)
	d := dashboard.New()
	mp := d.MeterProvider(h.MeterProvider)
	b := breaker.New("payments", breaker.WithMeterProvider(mp))
	d.AddBreaker(b)
	failures := 2
	call := resilience.Wrap(func(context.Context) (int, error) {
		if failures > 0 {
			failures--
			return 0, errDown
		}
		return 1, nil
	}, breaker.Policy[int](b), retry.Policy[int](retry.WithDelay(time.Nanosecond), retry.WithMaxAttempts(2)))
	_, err := call(context.Background())
	require.ErrorIs(t, err, errDown)
	_, err = call(context.Background())
	require.NoError(t, err)

	// The SDK gets what it got before (the breaker's calls and the
	// retry's attempts), and the dashboard counts the retry too.
	h.AssertInt64("levee.circuit_breaker.calls", 1, attrOutcome("failure"))
	h.AssertInt64("levee.circuit_breaker.calls", 1, attrOutcome("success"))
	h.AssertInt64("levee.retry.attempts", 1, attrOutcome("failure"))
	h.AssertInt64("levee.retry.exhausted", 1)
	p := find(t, snapshot(t, d, "kind=retry"), "retry", "payments")
	assert.Equal(t, int64(1), count(t, p, "retry_failure"))
	assert.Equal(t, int64(1), count(t, p, "exhausted"))
	assert.Equal(t, int64(0), count(t, p, "retry_success"))
}

func TestNew_PanicsOnInvalidOptionsNamingThem(t *testing.T) {
	for _, tc := range []struct {
		opt  dashboard.Option
		want string
	}{
		{dashboard.WithControls(nil), "WithControls: authorize must not be nil"},
		{dashboard.WithInterval(time.Millisecond), "WithInterval: interval must be at least 100ms"},
		{dashboard.WithTimeline(time.Second), "WithTimeline: timeline must be at least 1m"},
		{dashboard.WithMaxClients(0), "WithMaxClients: n must be at least 1"},
		{nil, "option 0 is nil"},
	} {
		msg := func() (msg string) {
			defer func() { msg = fmt.Sprint(recover()) }()
			dashboard.New(tc.opt)
			return "no panic"
		}()
		assert.Contains(t, msg, "levee: dashboard.New: "+tc.want)
	}
}

func newHarness(t *testing.T) *telemetrytest.Harness { return telemetrytest.New(t) }

func attrOutcome(o string) attribute.KeyValue { return telemetry.KeyOutcome.String(o) }

func TestDashboard_StartsNoGoroutineWhileNobodyWatches(t *testing.T) {
	d := dashboard.New()
	b := d.NewBreaker("payments")
	bh, l, th := bulkhead.New("pool", 2), ratelimit.New("api", 10, time.Second), throttle.New("backend")
	d.AddBulkhead(bh)
	d.AddLimiter(l)
	d.AddThrottle(th)
	call := resilience.WrapWith(resilience.Telemetry{Name: "pricing", MeterProvider: d.MeterProvider(nil)},
		func(context.Context) (int, error) { return 1, nil }, retry.Policy[int](), hedge.Policy[int](time.Second))
	for range 10 {
		_, _ = call(context.Background())
		_ = b.Call(context.Background(), succeed)
	}
	snapshot(t, d, "") // a client came and went
	// Policies and dashboard alive, nobody watching: nothing runs.
	goleak.VerifyNone(t)
	runtime.KeepAlive([]any{d, b, bh, l, th})
}
