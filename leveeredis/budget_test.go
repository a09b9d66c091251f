package leveeredis

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"

	"github.com/levee-go/levee/leveeredis/internal/redistest"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/retry"
	"github.com/levee-go/levee/telemetry/telemetrytest"
)

var errDependencyDown = errors.New("dependency down")

// budgetAttempts counts what a dependency received: first attempts and retries.
type budgetAttempts struct{ first, retries atomic.Int64 }

// drive runs workers goroutines for d, each making calls through a retry
// policy of up to 4 attempts drawing from b; the dependency fails every
// attempt when failing, else succeeds. It returns when they all have.
func drive(b *retry.Budget, workers int, d time.Duration, failing bool, got *budgetAttempts) {
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for range workers {
		wg.Go(func() {
			for time.Now().Before(stop) {
				n := 0
				call := resilience.Wrap(func(context.Context) (int, error) {
					if n++; n == 1 {
						got.first.Add(1)
					} else {
						got.retries.Add(1)
					}
					if failing {
						return 0, errDependencyDown
					}
					return 1, nil
				}, retry.Policy[int](retry.WithMaxAttempts(4), retry.WithDelay(0), retry.WithBudget(b)))
				_, _ = call(context.Background())
				time.Sleep(time.Millisecond)
			}
		})
	}
	wg.Wait()
}

// Three instances, one with healthy traffic and two whose every attempt
// fails: the fleet's retries stay within ratio × the fleet's first attempts
// plus the fleet's floor, and the failing instances retry on the retries
// the healthy one earned, beyond what their own counts allow.
func TestBudget_FleetRetriesBoundedByRatioOfFleetFirstAttempts(t *testing.T) {
	s := redistest.Start(t)
	const (
		ratio = 0.2
		floor = 3
		run   = 800 * time.Millisecond
	)
	fleets := newLimitFleets(t, s, 3, WithSyncInterval(20*time.Millisecond))
	budgets := make([]*Budget, 3)
	for i, f := range fleets {
		budgets[i] = NewBudget(f, "profiles", ratio, floor)
	}
	waitLimits(t, 2*time.Second, "every budget sees the three instances", func() bool {
		for _, b := range budgets {
			if b.members.Load() != 3 {
				return false
			}
		}
		return true
	})
	start := time.Now()
	var healthy, failing [2]budgetAttempts
	var wg sync.WaitGroup
	wg.Go(func() { drive(budgets[0].Retry(), 20, run, false, &healthy[0]) })
	wg.Go(func() { drive(budgets[1].Retry(), 10, run, true, &failing[0]) })
	wg.Go(func() { drive(budgets[2].Retry(), 10, run, true, &failing[1]) })
	wg.Wait()
	elapsed := time.Since(start)

	first := healthy[0].first.Load() + failing[0].first.Load() + failing[1].first.Load()
	retries := healthy[0].retries.Load() + failing[0].retries.Load() + failing[1].retries.Load()
	require.Zero(t, healthy[0].retries.Load(), "a healthy call is not retried")
	// The floor is the fleet's: 3 a second in all, each instance holding
	// one at most; a few retries of slack for the counts in flight between
	// syncs.
	bound := ratio*float64(first) + floor*elapsed.Seconds() + 3 + 0.05*ratio*float64(first)
	assert.LessOrEqual(t, float64(retries), bound,
		"the fleet retried %d times on %d first attempts: ratio %v allows %.0f with the floor and slack", retries, first, ratio, bound)

	failingFirst := failing[0].first.Load() + failing[1].first.Load()
	failingRetries := failing[0].retries.Load() + failing[1].retries.Load()
	alone := ratio*float64(failingFirst) + 2*(floor*elapsed.Seconds()+floor)
	t.Logf("fleet: %d first attempts, %d retries (bound %.0f); failing instances: %d first attempts, %d retries (alone %.0f)",
		first, retries, bound, failingFirst, failingRetries, alone)
	assert.Greater(t, float64(failingRetries), alone,
		"the failing instances retried %d times: no more than their own budgets (%.0f) would have allowed; the fleet's spare retries did not reach them", failingRetries, alone)
	assert.Greater(t, float64(retries), 0.7*ratio*float64(first), "the fleet should spend most of its ratio while two instances fail")
	for _, b := range budgets {
		assert.False(t, b.LocalOnly())
	}
}

// Redis killed: every budget decides on its own counts at once (an instance
// whose calls all fail retries no more than its floor share); restarted,
// they rejoin.
func TestBudget_RedisKilledAndRestarted(t *testing.T) {
	s := redistest.Start(t)
	fleets := newLimitFleets(t, s, 2, WithSyncInterval(20*time.Millisecond))
	budgets := []*Budget{NewBudget(fleets[0], "profiles", 0.5, 2), NewBudget(fleets[1], "profiles", 0.5, 2)}
	waitLimits(t, 2*time.Second, "both budgets see two instances", func() bool {
		return budgets[0].members.Load() == 2 && budgets[1].members.Load() == 2
	})
	var healthy budgetAttempts
	drive(budgets[0].Retry(), 5, 100*time.Millisecond, false, &healthy)
	waitLimits(t, 2*time.Second, "the second budget learns of the first one's attempts", func() bool {
		return budgets[1].fleetDeposits.Load() == healthy.first.Load()
	})

	s.Kill()
	waitLimits(t, 2*time.Second, "both budgets fall back to their own counts", func() bool {
		return budgets[0].LocalOnly() && budgets[1].LocalOnly()
	})
	var failing budgetAttempts
	start := time.Now()
	drive(budgets[1].Retry(), 5, 200*time.Millisecond, true, &failing)
	// Its own counts: ratio × its first attempts; its floor share: one a
	// second, holding one.
	bound := 0.5*float64(failing.first.Load()) + 1*time.Since(start).Seconds() + 1 + 1
	assert.LessOrEqual(t, float64(failing.retries.Load()), bound,
		"alone, the failing instance may not spend the retries the other one earned")

	s.Restart()
	waitLimits(t, 3*time.Second, "both budgets rejoin the fleet and see each other", func() bool {
		return !budgets[0].LocalOnly() && !budgets[1].LocalOnly() && budgets[0].members.Load() == 2 && budgets[1].members.Load() == 2
	})
}

// Retries one instance earned and does not need are spent by the instances
// whose calls fail, and no more than once: two instances asking at once
// share them, they do not each take them all.
func TestBudget_SpareRetriesGoWhereCallsFailAndAreSpentOnce(t *testing.T) {
	s := redistest.Start(t)
	// Syncs far apart next to the failing calls' pace: an instance that
	// took more than its share would spend it all before the next sync.
	fleets := newLimitFleets(t, s, 3, WithSyncInterval(100*time.Millisecond))
	budgets := make([]*Budget, 3)
	for i, f := range fleets {
		budgets[i] = NewBudget(f, "profiles", 0.5, 0)
	}
	for range 400 {
		budgets[0].impl.Deposit()
	}
	waitLimits(t, 2*time.Second, "every budget sees the 400 first attempts of the healthy one", func() bool {
		for _, b := range budgets {
			if b.fleetDeposits.Load() != 400 || b.members.Load() != 3 {
				return false
			}
		}
		return true
	})
	var failing [2]budgetAttempts
	var wg sync.WaitGroup
	wg.Go(func() { drive(budgets[1].Retry(), 10, 150*time.Millisecond, true, &failing[0]) })
	wg.Go(func() { drive(budgets[2].Retry(), 10, 150*time.Millisecond, true, &failing[1]) })
	wg.Wait()
	first := failing[0].first.Load() + failing[1].first.Load()
	retries := failing[0].retries.Load() + failing[1].retries.Load()
	spare := 0.5 * 400
	t.Logf("failing instances: %d first attempts, %d retries; the healthy one left %.0f spare", first, retries, spare)
	assert.Greater(t, float64(retries), 0.5*float64(first)+spare/4,
		"the failing instances should spend most of the spare retries, beyond what they earned")
	// Slack for the counts in flight between syncs: 5% and a few.
	assert.LessOrEqual(t, float64(retries), 1.05*(0.5*float64(first)+spare)+5,
		"the spare retries were spent more than once")
}

// Garbage in the budget's keys is a clear error, counted with its own
// error.type; the budget falls back, the key is reset, and the next sync
// rejoins. Nothing panics.
func TestBudget_GarbageInKeys(t *testing.T) {
	for _, tc := range []struct {
		name  string
		key   string
		spoil func(c Client, key string) error
		says  string
	}{
		{"a field that is not ours", "counts", func(c Client, k string) error { return c.HSet(context.Background(), k, "bogus", "1").Err() }, "not a count"},
		{"a count that is not a number", "counts", func(c Client, k string) error { return c.HSet(context.Background(), k, "d:1", "x").Err() }, "not a count"},
		// A bucket no script could have written, far ahead of the server's
		// clock: taken as it is, it would never age out of the window and
		// would lend the fleet its retries for good.
		{"a bucket far in the future", "counts", func(c Client, k string) error {
			return c.HSet(context.Background(), k, "d:99999999999999", "1000000").Err()
		}, "ahead of the server's clock"},
		{"wrong type", "counts", func(c Client, k string) error { return c.Set(context.Background(), k, "x", 0).Err() }, "WRONGTYPE"},
		{"members of the wrong type", "members", func(c Client, k string) error { return c.Set(context.Background(), k, "x", 0).Err() }, "WRONGTYPE"},
		{"a demand that is not a number", "demand", func(c Client, k string) error { return c.HSet(context.Background(), k, "total", "x").Err() }, "not a count"},
		{"demands of the wrong type", "demand", func(c Client, k string) error { return c.Set(context.Background(), k, "x", 0).Err() }, "WRONGTYPE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := redistest.Start(t)
			h := telemetrytest.New(t)
			c := newClient(t, s)
			f := NewFleet(c, WithInstanceID("a"), WithSyncInterval(20*time.Millisecond), WithMeterProvider(h.MeterProvider))
			defer f.Close()
			ks := f.keyspace("budget", "profiles")
			require.NoError(t, tc.spoil(c, ks.key(tc.key)))
			_, err := runBudget(context.Background(), c, "profiles", []string{ks.key("counts"), ks.key("members"), ks.key("demand")}, 1000, 10, 0, 0, "probe", 0)
			var se *DataError
			require.ErrorAs(t, err, &se, "the script says what is wrong")
			assert.Contains(t, se.Error(), tc.says)
			assert.Contains(t, se.Error(), ks.key(tc.key))
			require.NoError(t, tc.spoil(c, ks.key(tc.key)))

			b := NewBudget(f, "profiles", 0.2, 1)
			waitLimits(t, 2*time.Second, "the bad state is reported", func() bool { return b.fallbacks.Load() > 0 })
			h.AssertInt64(MetricSyncErrors, 1,
				attribute.String("levee.policy.name", "profiles"),
				attribute.String("levee.fleet.operation", "budget"),
				attribute.String("error.type", ErrorTypeBadData))
			waitLimits(t, 2*time.Second, "the budget rejoins once the key is reset", func() bool { return !b.LocalOnly() })
		})
	}
}

func TestBudget_BadSettingsPanicNamingThem(t *testing.T) {
	s := redistest.Start(t)
	f := newLimitFleets(t, s, 1)[0]
	for _, tc := range []struct {
		want string
		make func()
	}{
		{`leveeredis: NewBudget("p"): ratio: must be in (0, 1], got 0`, func() { NewBudget(f, "p", 0, 1) }},
		{`leveeredis: NewBudget("p"): ratio: must be in (0, 1], got 1.5; minPerSecond: must not be negative, got -1`, func() { NewBudget(f, "p", 1.5, -1) }},
		{`leveeredis: NewBudget("p"): WithBudgetExpectedInstances: must be at least 1, got 0`, func() { NewBudget(f, "p", 0.2, 1, WithBudgetExpectedInstances(0)) }},
		{`leveeredis: NewBudget("p"): option 0 is nil`, func() { NewBudget(f, "p", 0.2, 1, nil) }},
		{`leveeredis: the policy name must not be empty`, func() { NewBudget(f, "", 0.2, 1) }},
		{`leveeredis: NewBudget: the fleet must not be nil`, func() { NewBudget(nil, "p", 0.2, 1) }},
	} {
		assert.PanicsWithValue(t, tc.want, tc.make)
	}
}

// An instance that starts while Redis is unreachable shares the floor with
// the expected instances; after Close the budget decides alone.
func TestBudget_FloorShareAndClose(t *testing.T) {
	s := redistest.Start(t)
	f := newLimitFleets(t, s, 1, WithSyncInterval(time.Hour), WithOpTimeout(50*time.Millisecond))[0]
	s.Kill()
	b := NewBudget(f, "profiles", 0.2, 10, WithBudgetExpectedInstances(5))
	waitLimits(t, 2*time.Second, "the first sync fails", b.LocalOnly)
	n := 0
	for n < 100 && b.impl.TryWithdraw() {
		n++
	}
	assert.Equal(t, 2, n, "10 a second shared by 5 expected instances: 2 held")
	f.Close()
	assert.True(t, b.LocalOnly())
}

// The telemetry of a fleet budget: the fleet's window as last read, and the
// fallback state.
func TestBudget_Telemetry(t *testing.T) {
	s := redistest.Start(t)
	h := telemetrytest.New(t)
	fleets := newLimitFleets(t, s, 2, WithSyncInterval(20*time.Millisecond), WithMeterProvider(h.MeterProvider))
	a := NewBudget(fleets[0], "profiles", 0.2, 1)
	b := NewBudget(fleets[1], "other", 0.2, 1)
	for range 30 {
		a.impl.Deposit()
	}
	name := attribute.String("levee.policy.name", "profiles")
	waitLimits(t, 2*time.Second, "the deposits reach the fleet's counts", func() bool {
		return h.Int64(MetricBudgetFleet, name, attribute.String("levee.fleet.count", "first_attempts")) == 30
	})
	h.AssertInt64(MetricBudgetFleet, 0, name, attribute.String("levee.fleet.count", "retries"))
	h.AssertInt64(MetricBudgetFleet, 1, name, attribute.String("levee.fleet.count", "instances"))
	h.AssertInt64(MetricLocalFallback, 0, name, attribute.String("levee.fleet.policy", "budget"))
	s.Kill()
	waitLimits(t, 2*time.Second, "the budgets fall back", func() bool { return a.LocalOnly() && b.LocalOnly() })
	h.AssertInt64(MetricLocalFallback, 1, name, attribute.String("levee.fleet.policy", "budget"))
}

// The same, step by step with syncs made by the test: the shares of the
// spare retries given out at one moment add up to at most the spare, half
// by first attempts and half by the retries asked for.
func TestBudget_SharesOfTheSpareAddUpToIt(t *testing.T) {
	s := redistest.Start(t)
	fleets := newLimitFleets(t, s, 3)
	budgets := make([]*Budget, 3)
	for i, f := range fleets {
		budgets[i] = NewBudget(f, "profiles", 0.5, 0)
		// Stop the background syncs: the test makes them, in its order.
		// (The client stays open, and a sync made by hand rejoins.)
		f.Close()
	}
	ctx := context.Background()
	healthy, a, b := budgets[0], budgets[1], budgets[2]
	for range 400 {
		healthy.impl.Deposit()
	}
	healthy.sync(ctx) // the fleet has 200 retries to spare
	// a and b each ask for one retry and are refused: their demand.
	require.False(t, a.impl.TryWithdraw())
	require.False(t, b.impl.TryWithdraw())
	a.sync(ctx) // the fleet's demand is a's alone: half of its claim by demand
	b.sync(ctx) // a's and b's
	spentA, spentB := withdrawAll(a, 1000), withdrawAll(b, 1000)
	t.Logf("a took %d, b took %d of the 200 spare", spentA, spentB)
	assert.Equal(t, 100, spentA, "a: no first attempts, all the demand: (0 + 1)/2 of 200")
	assert.Equal(t, 50, spentB, "b: no first attempts, half the demand: (0 + 1/2)/2 of 200")
	assert.LessOrEqual(t, spentA+spentB, 200, "never more than the spare")

	// At their next syncs the rest of the spare is dealt out. a syncs
	// before b has said what it spent, so the two may take a few more
	// than the spare: at most b's unreported retries times a's share.
	healthy.sync(ctx)
	a.sync(ctx)
	b.sync(ctx)
	more := withdrawAll(a, 1000) + withdrawAll(b, 1000)
	t.Logf("then %d more", more)
	assert.Positive(t, more)
	assert.LessOrEqual(t, spentA+spentB+more, 200+spentB/2, "the spare was spent more than once")
	// Once every count is in, an overspend is a negative surplus that the
	// next syncs pay back: nobody gets more.
	for range 2 {
		a.sync(ctx)
		b.sync(ctx)
	}
	assert.Zero(t, withdrawAll(a, 1000)+withdrawAll(b, 1000), "the fleet has spent its spare")
}

func withdrawAll(b *Budget, limit int) int {
	n := 0
	for n < limit && b.impl.TryWithdraw() {
		n++
	}
	return n
}
