package leveeredis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/leveeredis/internal/redistest"
	"github.com/levee-go/levee/telemetry/telemetrytest"
)

// These tests run several instances of one service in one process: each
// with its own go-redis client, Fleet and fleet Breaker, against one real
// redis-server. They use real time, kept short: a 300ms open timeout and a
// 50ms sync interval. Every wait is bounded and says what it waited for.

const (
	testOpenTimeout = 300 * time.Millisecond
	testInterval    = 50 * time.Millisecond
	testBound       = 3 * time.Second // no wait takes longer than this
)

// errDown is what the dependency answers while it is down.
var errDown = errors.New("dependency down")

// dependency is the one dependency every instance calls: down or up, and it
// records when each call reached it.
type dependency struct {
	down  atomic.Bool
	mu    sync.Mutex
	calls []time.Time
}

func (d *dependency) call(context.Context) error {
	d.mu.Lock()
	d.calls = append(d.calls, time.Now())
	d.mu.Unlock()
	if d.down.Load() {
		return errDown
	}
	return nil
}

// callsSince returns the calls that reached d after t.
func (d *dependency) callsSince(t time.Time) []time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []time.Time
	for _, c := range d.calls {
		if c.After(t) {
			out = append(out, c)
		}
	}
	return out
}

// instance is one instance of the service.
type instance struct {
	id    string
	fleet *Fleet
	br    *Breaker
}

// fleetOf starts n instances named i0..i(n-1) on s, each with its own
// client, Fleet and Breaker named name. Extra options go to every Breaker.
func fleetOf(t *testing.T, s *redistest.Server, name string, n int, opts ...BreakerOption) []*instance {
	t.Helper()
	out := make([]*instance, n)
	for i := range out {
		out[i] = newInstance(t, s, fmt.Sprintf("i%d", i), name, nil, opts...)
	}
	return out
}

func newInstance(t *testing.T, s *redistest.Server, id, name string, fopts []FleetOption, opts ...BreakerOption) *instance {
	t.Helper()
	fo := append([]FleetOption{WithInstanceID(id), WithSyncInterval(testInterval), WithOpTimeout(500 * time.Millisecond)}, fopts...)
	f := NewFleet(patientClient(t, s), fo...)
	t.Cleanup(f.Close)
	o := append([]BreakerOption{WithOpenTimeout(testOpenTimeout)}, opts...)
	return &instance{id: id, fleet: f, br: NewBreaker(f, name, o...)}
}

// patientClient is a client for s that waits up to a second for an
// answer: on a loaded machine a 200ms timeout would take a slow Redis for
// a dead one, and the instance would fall back to its local breaker (as
// designed, but not what most of these tests look at).
func patientClient(t *testing.T, s *redistest.Server) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr: s.Addr(), MaxRetries: -1, ContextTimeoutEnabled: true,
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitFor polls cond every few ms until it holds, failing the test with
// what it waited for after testBound. It returns how long it waited.
func waitFor(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > testBound {
			require.FailNow(t, "timed out after "+testBound.String()+" waiting for "+what)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(start)
}

// afterSyncs waits until every instance of ins has tried n more syncs: the
// way these tests let time pass to show that something does not happen.
func afterSyncs(t *testing.T, ins []*instance, n int64) {
	t.Helper()
	want := make([]int64, len(ins))
	for i, in := range ins {
		want[i] = in.br.syncs.Load() + n
	}
	waitFor(t, fmt.Sprintf("%d more syncs of every instance", n), func() bool {
		for i, in := range ins {
			if in.br.syncs.Load() < want[i] {
				return false
			}
		}
		return true
	})
}

// tripLocal opens in's local breaker on its own failures.
func tripLocal(t *testing.T, in *instance, d *dependency) {
	t.Helper()
	d.down.Store(true)
	for in.br.State() == breaker.Closed {
		_ = in.br.Call(context.Background(), d.call)
	}
}

func allIn(ins []*instance, st breaker.State) func() bool {
	return func() bool {
		for _, in := range ins {
			if in.br.State() != st {
				return false
			}
		}
		return true
	}
}

// One instance failing opens its own breaker only: the others, which see
// the report, stay closed, and so does the fleet. A second instance's trip
// makes a quorum (2 of 3), and every instance opens.
func TestBreakerQuorumOpensEveryInstanceAndOneAloneDoesNot(t *testing.T) {
	s := redistest.Start(t)
	ins := fleetOf(t, s, "payments", 3)
	a, b, c := ins[0], ins[1], ins[2]
	waitFor(t, "three live instances", func() bool { return c.br.View().Live == 3 })
	var d dependency

	tripLocal(t, a, &d)
	waitFor(t, "c to see a's trip", func() bool { return c.br.View().Tripped == 1 })
	afterSyncs(t, ins, 3)
	assert.Equal(t, FleetClosed, c.br.View().State, "one instance alone must not open the fleet")
	assert.Equal(t, breaker.Closed, b.br.State())
	assert.Equal(t, breaker.Closed, c.br.State())
	assert.Equal(t, breaker.Open, a.br.State())

	start := time.Now()
	tripLocal(t, b, &d)
	lag := waitFor(t, "c to open with the fleet", func() bool { return c.br.State() == breaker.Open })
	t.Logf("propagation: b's trip to c's open in %v", lag)
	assert.Less(t, time.Since(start), time.Second, "a change reaches the others within a second")
	assert.Equal(t, FleetOpen, c.br.View().State)
	require.ErrorIs(t, c.br.Call(context.Background(), d.call), breaker.ErrOpen, "c rejects without calling")
}

// With a quorum of one (configured so), one instance's trip opens them
// all: the quorum rule above is what kept the fleet closed.
func TestBreakerQuorumOfOneLetsOneInstanceOpenTheFleet(t *testing.T) {
	s := redistest.Start(t)
	ins := fleetOf(t, s, "payments", 3, WithQuorum(1), WithQuorumShare(0))
	waitFor(t, "three live instances", func() bool { return ins[2].br.View().Live == 3 })
	var d dependency
	tripLocal(t, ins[0], &d)
	waitFor(t, "every instance open", allIn(ins, breaker.Open))
}

// The share of live instances counts as well as the count: with 4 live
// and a share of 0.75, two trips are not enough, three are.
func TestBreakerQuorumShareOfLiveInstances(t *testing.T) {
	s := redistest.Start(t)
	ins := fleetOf(t, s, "payments", 4, WithQuorumShare(0.75))
	waitFor(t, "four live instances", func() bool { return ins[3].br.View().Live == 4 })
	var d dependency
	tripLocal(t, ins[0], &d)
	tripLocal(t, ins[1], &d)
	waitFor(t, "two trips reported", func() bool { return ins[3].br.View().Tripped == 2 })
	afterSyncs(t, ins, 3)
	assert.Equal(t, breaker.Closed, ins[3].br.State(), "2 of 4 is below a share of 0.75")
	tripLocal(t, ins[2], &d)
	waitFor(t, "every instance open", allIn(ins, breaker.Open))
}

// While the fleet is open, each open period lets exactly one probe reach
// the dependency, from one instance, however many instances are calling;
// the others follow its result: open again while it fails, closed when it
// succeeds.
func TestBreakerOneProbePerFleet(t *testing.T) {
	s := redistest.Start(t)
	ins := fleetOf(t, s, "payments", 3)
	waitFor(t, "three live instances", func() bool { return ins[2].br.View().Live == 3 })
	var d dependency
	tripLocal(t, ins[0], &d)
	tripLocal(t, ins[1], &d)
	waitFor(t, "every instance open", allIn(ins, breaker.Open))
	opened := time.Now()

	// Traffic on every instance, all the time.
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, in := range ins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				_ = in.br.Call(ctx, d.call)
				time.Sleep(time.Millisecond)
			}
		}()
	}
	defer func() { stop(); wg.Wait() }()

	waitFor(t, "two failed probes", func() bool { return len(d.callsSince(opened)) >= 2 })
	d.down.Store(false)
	waitFor(t, "every instance closed after a probe succeeded", allIn(ins, breaker.Closed))
	stop()
	wg.Wait()
	// The trips reported before the close are forgotten: they do not
	// reopen the fleet.
	afterSyncs(t, ins, 4)
	assert.True(t, allIn(ins, breaker.Closed)(), "the fleet stays closed after its probe succeeded")
	assert.Equal(t, FleetClosed, ins[0].br.View().State)

	// Every call after the fleet opened, until the one that closed it, was
	// a probe: one per open period, each at least an open period after the
	// one before (two instances probing one period would be ms apart).
	var probes []time.Time
	for _, c := range d.callsSince(opened) {
		probes = append(probes, c)
		if len(probes) >= 3 {
			break
		}
	}
	require.Len(t, probes, 3, "two failed probes, one that succeeded")
	for i := 1; i < len(probes); i++ {
		gap := probes[i].Sub(probes[i-1])
		assert.GreaterOrEqual(t, gap, testOpenTimeout*8/10, "probe %d came %v after probe %d: two probes in one open period", i, gap, i-1)
	}
}

// A trip reported by an instance that has not yet seen the fleet's last
// close is stale: it does not count towards the quorum. Two such reports
// would otherwise reopen the fleet the moment its probe closed it.
func TestBreakerTripReportedBeforeTheCloseIsNotCounted(t *testing.T) {
	s := redistest.Start(t)
	a := newInstance(t, s, "a", "payments", nil, WithMemberTTL(time.Minute)) // x and y stay members however slow the machine
	raw := patientClient(t, s)
	ctx := context.Background()
	require.NoError(t, a.br.Reset(ctx)) // a close, at some epoch
	report := func(id string, seen int64) *fleetView {
		t.Helper()
		res, err := syncScript.Run(ctx, raw, a.br.keys.all, a.br.syncArgs(id, 1, seen, "")...).Slice()
		require.NoError(t, err)
		v, err := a.br.parseView(res)
		require.NoError(t, err)
		return v
	}
	closed := report("x", 0)
	assert.Zero(t, closed.tripped, "x's trip predates the close it has not seen")
	v := report("y", 0)
	assert.Zero(t, v.tripped)
	assert.Equal(t, stateClosed, v.state, "stale trips must not reopen the fleet")

	report("x", closed.epoch)
	v = report("y", closed.epoch)
	assert.Equal(t, int64(2), v.tripped, "trips after the close count")
	assert.Equal(t, stateOpen, v.state, "2 of 3 live: a quorum")
	assert.Equal(t, "quorum", v.cause)
}

// A probe holder with no traffic never probes: its lease expires, and
// another instance takes it and probes for the fleet.
func TestBreakerUnusedLeaseGoesToAnotherInstance(t *testing.T) {
	s := redistest.Start(t)
	ins := fleetOf(t, s, "payments", 2, WithQuorum(1), WithQuorumShare(0))
	waitFor(t, "two live instances", func() bool { return ins[1].br.View().Live == 2 })
	var d dependency
	tripLocal(t, ins[0], &d)
	waitFor(t, "both open", allIn(ins, breaker.Open))
	d.down.Store(false)

	var holder string
	waitFor(t, "a probe holder", func() bool { holder = ins[0].br.View().ProbeHolder; return holder != "" })
	other := ins[0]
	if holder == other.id {
		other = ins[1]
	}
	waitFor(t, "the unused lease to pass to the other instance", func() bool { return ins[0].br.View().ProbeHolder == other.id })
	// Only the instance that did not hold the lease first has traffic.
	waitFor(t, "the fleet closed by the other instance's probe", func() bool {
		if other.br.State() != breaker.Closed {
			_ = other.br.Call(context.Background(), d.call)
		}
		return allIn(ins, breaker.Closed)()
	})
	require.Len(t, d.callsSince(time.Time{}), breaker.DefaultFailureThreshold+1, "the trip, then one probe")
}

// The lease is not given back to the instance whose lease expired
// unused while another instance is live: the script, driven directly for
// two instances x and y, leaves the expired lease to y.
func TestBreakerExpiredLeaseIsNotRetakenByItsHolder(t *testing.T) {
	s := redistest.Start(t)
	a := newInstance(t, s, "a", "payments", nil, WithQuorum(1), WithQuorumShare(0),
		WithProbeLease(50*time.Millisecond), WithMemberTTL(time.Minute))
	a.fleet.Close() // a's own loop stops: x and y alone drive the script
	raw := patientClient(t, s)
	ctx := context.Background()
	report := func(id string, tripped int) *fleetView {
		t.Helper()
		res, err := syncScript.Run(ctx, raw, a.br.keys.all, a.br.syncArgs(id, tripped, 0, "")...).Slice()
		require.NoError(t, err)
		v, err := a.br.parseView(res)
		require.NoError(t, err)
		return v
	}
	report("y", 0)
	require.Equal(t, stateOpen, report("x", 1).state, "x's trip opens the fleet (a quorum of 1)")
	waitFor(t, "x to take the lease once the open period ends", func() bool { return report("x", 0).holder == "x" })
	waitFor(t, "x's lease to expire, and x not to take it again", func() bool { return report("x", 0).holder == "" })
	assert.Equal(t, "y", report("y", 0).holder, "y takes the lease x left unused")
}

// ForceOpen on one instance holds every instance open, past any open
// timeout; Reset on another closes them all.
func TestBreakerOperatorControlsReachEveryInstance(t *testing.T) {
	s := redistest.Start(t)
	ins := fleetOf(t, s, "payments", 3)
	waitFor(t, "three live instances", func() bool { return ins[2].br.View().Live == 3 })

	require.NoError(t, ins[0].br.ForceOpen(context.Background()))
	waitFor(t, "every instance forced open", allIn(ins, breaker.Open))
	afterSyncs(t, ins, int64(testOpenTimeout/testInterval)+2) // past an open timeout
	for _, in := range ins {
		assert.Equal(t, breaker.Open, in.br.State(), "%s: forced open outlasts the open timeout", in.id)
		var oe *breaker.OpenError
		require.ErrorAs(t, in.br.Call(context.Background(), func(context.Context) error { return nil }), &oe)
		assert.Contains(t, oe.Error(), "forced open")
	}
	assert.Equal(t, FleetForcedOpen, ins[2].br.View().State)

	require.NoError(t, ins[2].br.Reset(context.Background()))
	waitFor(t, "every instance closed", allIn(ins, breaker.Closed))
	assert.Equal(t, FleetClosed, ins[0].br.View().State)
}

// An instance that starts while the fleet is open opens at its first sync.
func TestBreakerNewInstancePicksUpTheFleetState(t *testing.T) {
	s := redistest.Start(t)
	ins := fleetOf(t, s, "payments", 2)
	waitFor(t, "two live instances", func() bool { return ins[1].br.View().Live == 2 })
	var d dependency
	tripLocal(t, ins[0], &d)
	tripLocal(t, ins[1], &d)
	waitFor(t, "the fleet open", func() bool { return ins[0].br.View().State == FleetOpen })

	late := newInstance(t, s, "late", "payments", nil)
	waitFor(t, "the late instance to open", func() bool { return late.br.State() == breaker.Open })
}

// Redis killed mid-run: every instance falls back to its local breaker at
// once (a held-open breaker probes on its own; calls never wait for
// Redis), reports it, and rejoins when Redis is back; the fleet then opens
// by quorum again. An operator's ForceOpen outlives the restart: the
// instances say it again to the empty Redis, and one that starts after
// the restart picks it up.
func TestBreakerRedisKilledAndRestarted(t *testing.T) {
	s := redistest.Start(t)
	ins, hs := meteredFleet(t, s, 3)
	name := attribute.String("levee.policy.name", "payments")
	waitFor(t, "three live instances", func() bool { return ins[2].br.View().Live == 3 })
	var d dependency
	tripLocal(t, ins[0], &d)
	tripLocal(t, ins[1], &d)
	waitFor(t, "every instance open", allIn(ins, breaker.Open))
	d.down.Store(false)

	s.Kill()
	waitFor(t, "every instance on its own", func() bool {
		for _, in := range ins {
			if in.br.View().State != FleetUnknown || in.fleet.RedisUp() {
				return false
			}
		}
		return true
	})
	for _, h := range hs {
		h.AssertInt64(MetricLocalFallback, 1, name, breakerKind)
		assert.Positive(t, h.Int64(MetricSyncErrors, name))
	}
	// Held open by the fleet a moment ago, each local breaker now probes on
	// its own timer and closes.
	for _, in := range ins {
		waitFor(t, in.id+" to close on its own probe", func() bool {
			// That calls never wait for Redis is TestCallsNeverWaitOnAHungRedis's
			// to prove, with no clock a loaded machine could fail.
			_ = in.br.Call(context.Background(), d.call)
			return in.br.State() == breaker.Closed
		})
	}

	s.Restart()
	waitFor(t, "three live instances again", func() bool {
		for _, in := range ins {
			if in.br.View().Live != 3 {
				return false
			}
		}
		return true
	})
	for _, h := range hs {
		h.AssertInt64(MetricLocalFallback, 0, name, breakerKind)
	}
	tripLocal(t, ins[1], &d)
	tripLocal(t, ins[2], &d)
	waitFor(t, "the fleet to open by quorum again", allIn(ins, breaker.Open))

	// Forced open, then Redis loses everything.
	require.NoError(t, ins[0].br.Reset(context.Background()))
	waitFor(t, "every instance closed", allIn(ins, breaker.Closed))
	require.NoError(t, ins[0].br.ForceOpen(context.Background()))
	waitFor(t, "every instance forced open", allIn(ins, breaker.Open))
	s.Kill()
	afterSyncs(t, ins, int64(testOpenTimeout/testInterval)+1) // failed syncs, past an open timeout
	for _, in := range ins {
		assert.Equal(t, breaker.Open, in.br.State(), "%s: an operator's ForceOpen holds with Redis down", in.id)
	}
	s.Restart()
	late := newInstance(t, s, "late", "payments", nil)
	waitFor(t, "an instance started after the restart to be forced open", func() bool {
		return late.br.View().State == FleetForcedOpen && late.br.State() == breaker.Open
	})
}

// Keys holding data the scripts could not have written: a clear error
// (counted as fleet_bad_data, handed to otel.Handle), the local breaker on
// its own, no panic; Reset rewrites the keys and the fleet is back.
func TestBreakerBadDataInRedis(t *testing.T) {
	s := redistest.Start(t)
	h := telemetrytest.New(t)
	in := newInstance(t, s, "a", "payments", []FleetOption{WithMeterProvider(h.MeterProvider)})
	waitFor(t, "the first sync", func() bool { return in.br.View().Live == 1 })
	raw := patientClient(t, s)
	ctx := context.Background()
	bad := attribute.String("error.type", "fleet_bad_data")

	for _, garbage := range []struct {
		name  string
		write func() error
	}{
		{"a state that is no state", func() error { return raw.HSet(ctx, in.br.keys.state, "state", "sideways").Err() }},
		{"an epoch that is no number", func() error { return raw.HSet(ctx, in.br.keys.state, "state", "open", "epoch", "soon").Err() }},
		{"members of the wrong type", func() error { return raw.Set(ctx, in.br.keys.members, "garbage", 0).Err() }},
		{"a lease of the wrong type", func() error { return raw.LPush(ctx, in.br.keys.lease, "x").Err() }},
		// Numbers that parse but that no script could have written: taken
		// as they are, the first would hold every instance open for ages,
		// the second would make every trip predate the fleet's last close,
		// so that no quorum could ever open it.
		{"an open period that never ends", func() error {
			return raw.HSet(ctx, in.br.keys.state, "state", "open", "epoch", 1, "until", int64(1)<<52).Err()
		}},
		{"a close in the far future", func() error {
			return raw.HSet(ctx, in.br.keys.state, "state", "closed", "epoch", int64(1)<<52, "closed_epoch", int64(1)<<52).Err()
		}},
	} {
		t.Run(garbage.name, func(t *testing.T) {
			before := h.Int64(MetricSyncErrors, bad)
			require.NoError(t, raw.Del(ctx, in.br.keys.all...).Err())
			require.NoError(t, garbage.write())
			waitFor(t, "the bad data counted", func() bool { return h.Int64(MetricSyncErrors, bad) > before })
			assert.Equal(t, FleetUnknown, in.br.View().State, "on its own")
			var d dependency
			require.NoError(t, in.br.Call(ctx, d.call), "calls go on through the local breaker")

			require.NoError(t, in.br.Reset(ctx), "Reset rewrites the keys")
			if garbage.name == "members of the wrong type" {
				// Reset rewrites the state; the members set is the
				// heartbeat's: it comes back once it expires or is deleted.
				require.NoError(t, raw.Del(ctx, in.br.keys.members).Err())
			}
			waitFor(t, "back in sync", func() bool { return in.br.View().State == FleetClosed })
		})
	}
}

// The DataError itself: what it says, and its telemetry type.
func TestBreakerDataErrorText(t *testing.T) {
	err := error(&DataError{Policy: "payments", Detail: "field state holds \"x\""})
	assert.Equal(t, `leveeredis: fleet policy "payments": bad data in Redis: field state holds "x"`, err.Error())
	assert.Equal(t, "fleet_bad_data", err.(*DataError).ErrorType())
}

// The fleet's view in telemetry: instances live and reporting a trip, the
// lease holder, in-sync, and the propagation lag of each change applied.
func TestBreakerTelemetry(t *testing.T) {
	s := redistest.Start(t)
	ins, hs := meteredFleet(t, s, 3)
	name := attribute.String("levee.policy.name", "payments")
	sum := func(metric string) (n int64) {
		for _, h := range hs {
			n += h.Int64(metric, name)
		}
		return n
	}
	waitFor(t, "three live instances seen by each", func() bool { return sum(MetricInstancesLive) == 9 })
	for _, h := range hs {
		h.AssertInt64(MetricLocalFallback, 0, name, breakerKind)
		h.AssertInt64(MetricInstancesOpen, 0, name)
		h.AssertInt64(MetricLeaseHeld, 0, name)
	}

	var d dependency
	tripLocal(t, ins[0], &d)
	waitFor(t, "one trip seen by each", func() bool { return sum(MetricInstancesOpen) == 3 })
	tripLocal(t, ins[1], &d)
	waitFor(t, "every instance open", allIn(ins, breaker.Open))
	waitFor(t, "one lease holder once the open period ends", func() bool { return sum(MetricLeaseHeld) == 1 })

	var count uint64
	for _, h := range hs {
		m := h.Metric(MetricPropagationLag)
		assert.Equal(t, "s", m.Unit)
		hist, ok := m.Data.(metricdata.Histogram[float64])
		require.True(t, ok, "%s is a histogram", MetricPropagationLag)
		for _, p := range hist.DataPoints {
			count += p.Count
			maxLag, ok := p.Max.Value()
			require.True(t, ok)
			assert.Less(t, maxLag, 1.0, "a change propagates within a second")
		}
	}
	assert.GreaterOrEqual(t, count, uint64(3), "each instance applied the fleet's opening (and maybe the lease's period)")
	assert.Equal(t, "{instance}", hs[0].Metric(MetricInstancesLive).Unit)
}

// meteredFleet is fleetOf with a telemetry harness per instance (gauges of
// one provider would overwrite each other: each instance reports its own).
func meteredFleet(t *testing.T, s *redistest.Server, n int, fopts ...FleetOption) ([]*instance, []*telemetrytest.Harness) {
	var ins []*instance
	var hs []*telemetrytest.Harness
	for i := range n {
		h := telemetrytest.New(t)
		hs = append(hs, h)
		fo := append([]FleetOption{WithMeterProvider(h.MeterProvider)}, fopts...)
		ins = append(ins, newInstance(t, s, fmt.Sprintf("i%d", i), "payments", fo))
	}
	return ins, hs
}

// Pub/sub carries a change at once: with a sync interval of an hour, the
// poll cannot carry it within the test, so b opening at all proves pub/sub
// did, on any machine however loaded (the lag is logged, not asserted).
func TestBreakerPropagationByPubSub(t *testing.T) {
	s := redistest.Start(t)
	slow := []FleetOption{WithSyncInterval(time.Hour)}
	a := newInstance(t, s, "a", "payments", slow, WithQuorum(1), WithQuorumShare(0), WithMemberTTL(3*time.Hour))
	b := newInstance(t, s, "b", "payments", slow, WithQuorum(1), WithQuorumShare(0), WithMemberTTL(3*time.Hour))
	// b's first sync, then the one its subscription's confirmation wakes:
	// from then on b hears what a publishes.
	waitFor(t, "a's first sync and b subscribed", func() bool { return a.br.syncs.Load() >= 1 && b.br.syncs.Load() >= 2 })
	var d dependency
	start := time.Now()
	tripLocal(t, a, &d)
	waitFor(t, "b to open by pub/sub (the poll is an hour away)", func() bool { return b.br.State() == breaker.Open })
	t.Logf("propagation by pub/sub: %v", time.Since(start))
}

// Closing the Fleet leaves every breaker on its own: one held open by the
// fleet half-opens on its timer.
func TestBreakerCloseReleasesTheLocalBreaker(t *testing.T) {
	s := redistest.Start(t)
	ins := fleetOf(t, s, "payments", 2, WithQuorum(1), WithQuorumShare(0))
	waitFor(t, "two live instances", func() bool { return ins[1].br.View().Live == 2 })
	var d dependency
	tripLocal(t, ins[0], &d)
	waitFor(t, "both open", allIn(ins, breaker.Open))
	for _, in := range ins {
		in.fleet.Close()
	}
	waitFor(t, "both half-open on their own timers", allIn(ins, breaker.HalfOpen))
}

func TestBreakerBadSettingsPanicNamingTheOption(t *testing.T) {
	s := redistest.Start(t)
	f := NewFleet(newClient(t, s), WithSyncInterval(testInterval))
	defer f.Close()
	assert.PanicsWithValue(t, "leveeredis: WithQuorum: the quorum must be at least 1, got 0", func() { WithQuorum(0) })
	assert.PanicsWithValue(t, "leveeredis: WithQuorumShare: the share must be in [0, 1], got 1.5", func() { WithQuorumShare(1.5) })
	assert.PanicsWithValue(t, "leveeredis: WithProbeLease: the lease (1s) must be shorter than WithOpenTimeout (500ms)", func() {
		NewBreaker(f, "x", WithOpenTimeout(500*time.Millisecond), WithProbeLease(time.Second))
	})
	assert.PanicsWithValue(t, "leveeredis: WithMemberTTL: the member TTL (50ms) must be longer than the sync interval (50ms)", func() {
		NewBreaker(f, "x", WithMemberTTL(testInterval))
	})
	assert.PanicsWithValue(t, "leveeredis: WithOpenTimeout: the open timeout must be positive, got 0s", func() { WithOpenTimeout(0) })
	assert.PanicsWithValue(t, "leveeredis: WithProbeLease: the lease must be positive, got -1s", func() { WithProbeLease(-time.Second) })
	assert.PanicsWithValue(t, "leveeredis: NewBreaker: the Fleet must not be nil", func() { NewBreaker(nil, "x") })
	assert.PanicsWithValue(t, "leveeredis: the policy name must not be empty", func() { NewBreaker(f, "") })
	assert.Panics(t, func() { NewBreaker(f, "x", WithLocalOptions(breaker.WithFailureThreshold(0))) }, "a bad local option panics as in breaker.New")
}

var breakerKind = attribute.String("levee.fleet.policy", "breaker")
