package leveeredis

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/resilience"
)

// Defaults of a fleet Breaker.
const (
	// DefaultQuorum is the fewest instances whose own breakers must have
	// tripped before the fleet opens: two, so that one instance alone never
	// opens the fleet.
	DefaultQuorum = 2
	// DefaultQuorumShare is the share of the live instances whose own
	// breakers must have tripped before the fleet opens.
	DefaultQuorumShare = 0.5
)

// Breaker is a fleet circuit breaker: this instance's local breaker, whose
// trip decisions are shared with every other instance of the same name
// through Redis.
//
// Calls go straight to the local *breaker.Breaker, with its fast paths
// unchanged: no call waits for Redis, whatever Redis does. A background
// goroutine (one per fleet Breaker, started by NewBreaker, stopped by
// Fleet.Close) exchanges state with Redis at the fleet's sync interval, at
// once when the local breaker changes state, and when another instance
// announces a change on pub/sub:
//
//   - it heartbeats this instance as a live member of the fleet (members
//     that miss their heartbeats for the member TTL are dropped) and reports
//     whether its local breaker has tripped on its own failures;
//   - quorum: when at least max(WithQuorum, ceil(WithQuorumShare x live))
//     live instances report a trip, the fleet opens, and every instance
//     opens its local breaker (docs/fleet.md says why one instance alone
//     cannot);
//   - one probe per fleet: when the fleet's open period ends, one instance
//     takes the probe lease and half-opens; the others stay open until its
//     probe's result is published, then close or stay open with it;
//   - ForceOpen and Reset act on every instance.
//
// An instance whose Redis is down, slow or unreachable falls back to its
// local breaker at once (every operation is bounded by the fleet's
// operation timeout), reports it (levee.fleet.local_fallback 1, levee.fleet.sync.
// errors), and rejoins when Redis answers again. A Breaker is safe for
// concurrent use.
type Breaker struct {
	local *breaker.Breaker
	f     *Fleet
	name  string
	keys  breakerKeys

	quorum      int
	share       float64
	openTimeout time.Duration
	lease       time.Duration
	memberTTL   time.Duration
	// stale is how old the last view may be before the gate stops holding
	// the local breaker open on its word.
	stale time.Duration

	// view is the fleet's state as the last sync read it; nil before the
	// first sync and after a failed one: the local breaker is on its own.
	view atomic.Pointer[fleetView]
	// tripped is whether the local breaker is open on its own failures
	// (its trip rule, or a failed probe), set by its listener.
	tripped atomic.Bool
	// probing is whether the local breaker was half-opened by this
	// instance as the fleet's probe holder, for the lease it holds.
	probing atomic.Bool
	// probeResult is the state the fleet probe's half-open period ended in
	// (Closed or Open), -1 while there is none to publish.
	probeResult atomic.Int32
	// wake asks the loop to sync now.
	wake chan struct{}
	// syncs counts the syncs tried, for tests that must see several pass.
	syncs atomic.Int64

	loopState // owned by the loop goroutine
}

// loopState is what only the sync loop reads and writes.
type loopState struct {
	applied  int64  // the fleet epoch last applied to the local breaker
	forcedBy bool   // the local breaker is forced open by the fleet
	lastBad  string // the last bad data reported to otel.Handle
	seen     bool   // a sync has succeeded since the start
}

// BreakerOption configures a fleet Breaker.
type BreakerOption func(*breakerConfig)

type breakerConfig struct {
	local       []breaker.Option
	quorum      int
	share       float64
	openTimeout time.Duration
	lease       time.Duration
	memberTTL   time.Duration
}

// WithLocalOptions configures the local breaker: its trip rule, window,
// predicates, listeners, providers, everything but the open timeout, which
// WithOpenTimeout sets for the local breaker and the fleet alike. The
// options are given to breaker.New as they are, and invalid ones panic as
// there.
func WithLocalOptions(opts ...breaker.Option) BreakerOption {
	return func(c *breakerConfig) { c.local = append(c.local, opts...) }
}

// WithQuorum sets the fewest live instances whose own breakers must have
// tripped for the fleet to open (default DefaultQuorum, 2). n must be at
// least 1; 1 lets any one instance open the whole fleet, which
// docs/fleet.md advises against.
func WithQuorum(n int) BreakerOption {
	if n < 1 {
		panic(fmt.Sprintf("leveeredis: WithQuorum: the quorum must be at least 1, got %d", n))
	}
	return func(c *breakerConfig) { c.quorum = n }
}

// WithQuorumShare sets the share of the live instances whose own breakers
// must have tripped for the fleet to open (default DefaultQuorumShare,
// 0.5); the fleet opens when both WithQuorum's count and this share are
// reached. share must be in [0, 1]; 0 leaves the count alone to decide.
func WithQuorumShare(share float64) BreakerOption {
	if !(share >= 0 && share <= 1) {
		panic(fmt.Sprintf("leveeredis: WithQuorumShare: the share must be in [0, 1], got %v", share))
	}
	return func(c *breakerConfig) { c.share = share }
}

// WithOpenTimeout sets how long the fleet, and the local breaker on its
// own, stay open before a probe (default breaker.DefaultOpenTimeout, 30s).
// d must be positive.
func WithOpenTimeout(d time.Duration) BreakerOption {
	if d <= 0 {
		panic(fmt.Sprintf("leveeredis: WithOpenTimeout: the open timeout must be positive, got %v", d))
	}
	return func(c *breakerConfig) { c.openTimeout = d }
}

// WithProbeLease sets how long the instance that takes the fleet's probe
// holds it before another may take it, should its probe never come (an
// instance with no traffic, or one that died). Default: half the open
// timeout. It must be positive and shorter than the open timeout, so that
// a lost prober is replaced before the next open period would end;
// NewBreaker panics otherwise.
func WithProbeLease(d time.Duration) BreakerOption {
	if d <= 0 {
		panic(fmt.Sprintf("leveeredis: WithProbeLease: the lease must be positive, got %v", d))
	}
	return func(c *breakerConfig) { c.lease = d }
}

// NewBreaker returns this instance's fleet breaker named name, and starts
// its background sync. Every instance that makes a Breaker of the same name
// on Fleets of the same key prefix and Redis shares its decisions. Give
// every instance the same settings.
//
// It panics naming the setting when one is invalid: a nil Fleet, an empty
// name or one holding a brace, a lease not shorter than the open timeout,
// a member TTL not longer than the sync interval, or an invalid local
// option (as breaker.New does).
func NewBreaker(f *Fleet, name string, opts ...BreakerOption) *Breaker {
	if f == nil {
		panic("leveeredis: NewBreaker: the Fleet must not be nil")
	}
	c := breakerConfig{quorum: DefaultQuorum, share: DefaultQuorumShare, openTimeout: breaker.DefaultOpenTimeout}
	for _, o := range opts {
		if o == nil {
			panic("leveeredis: NewBreaker: an option is nil")
		}
		o(&c)
	}
	if c.lease == 0 {
		c.lease = c.openTimeout / 2
	}
	if c.lease >= c.openTimeout {
		panic(fmt.Sprintf("leveeredis: WithProbeLease: the lease (%v) must be shorter than WithOpenTimeout (%v)", c.lease, c.openTimeout))
	}
	if c.memberTTL == 0 {
		c.memberTTL = max(3*f.interval, time.Second)
	}
	if c.memberTTL <= f.interval {
		panic(fmt.Sprintf("leveeredis: WithMemberTTL: the member TTL (%v) must be longer than the sync interval (%v)", c.memberTTL, f.interval))
	}
	b := &Breaker{
		f: f, name: name, keys: newBreakerKeys(f, name),
		quorum: c.quorum, share: c.share, openTimeout: c.openTimeout, lease: c.lease, memberTTL: c.memberTTL,
		stale: 2*f.interval + 2*f.opTimeout,
		wake:  make(chan struct{}, 1),
	}
	b.probeResult.Store(-1)
	local := append(append([]breaker.Option(nil), c.local...),
		breaker.WithOpenTimeout(c.openTimeout),
		breaker.WithHalfOpenGate(b.gate),
		breaker.WithStateChangeListener(b.observe),
	)
	b.local = breaker.New(name, local...)
	breakerRegistry.Join(f.mp, b)
	f.bus().register(b)
	f.run(b.loop)
	return b
}

// Local returns the local breaker, for its State, Counts and Window and to
// guard calls with. Its ForceOpen and Reset act on this instance alone; the
// fleet's are Breaker.ForceOpen and Breaker.Reset.
func (b *Breaker) Local() *breaker.Breaker { return b.local }

// Name returns the breaker's name.
func (b *Breaker) Name() string { return b.name }

// State returns the local breaker's state.
func (b *Breaker) State() breaker.State { return b.local.State() }

// Call runs fn through the local breaker: see breaker.Breaker.Call. Redis is
// never on its path.
func (b *Breaker) Call(ctx context.Context, fn func(context.Context) error) error {
	return b.local.Call(ctx, fn)
}

// Policy returns a resilience.Policy that guards calls with the local
// breaker of b: the same policy breaker.Policy returns, so a call through
// the fleet breaker costs what a call through the local one does. b must
// not be nil.
func Policy[T any](b *Breaker) resilience.Policy[T] {
	if b == nil {
		panic("leveeredis: Policy: the breaker must not be nil")
	}
	return breaker.Policy[T](b.local)
}

// gate is the local breaker's half-open gate: while the fleet is open, only
// the probe holder half-opens; the others are asked again each sync
// interval. With no fresh view of the fleet (Redis down, the Fleet closed)
// the local breaker decides alone.
func (b *Breaker) gate() time.Duration {
	v := b.view.Load()
	if v == nil || b.f.ctx.Err() != nil || time.Since(v.at) > b.stale {
		return 0
	}
	if (v.state == stateOpen || v.state == stateForced) && v.holder != b.f.id {
		return b.f.interval
	}
	return 0
}

// observe is the local breaker's listener: it keeps what this instance
// reports, and wakes the loop to report it at once.
func (b *Breaker) observe(c breaker.StateChange) {
	followed := !c.Forced && c.TripRule == "" && c.ConsecutiveFailures == 0
	switch {
	case c.To == breaker.Closed:
		b.tripped.Store(false)
	case c.To == breaker.Open && c.Forced:
		b.tripped.Store(false)
	case c.To == breaker.Open && !followed:
		b.tripped.Store(true)
	}
	if c.From == breaker.HalfOpen && !c.Forced && b.probing.Load() && !(followed && c.To == breaker.Open) {
		// The fleet's probe ended: its result waits for the next sync.
		// probing stays set until the fleet has taken the result (the
		// lease is gone), so that no sync half-opens again meanwhile.
		b.probeResult.CompareAndSwap(-1, int32(c.To))
	}
	b.poke()
}

// poke asks the loop to sync now, without waiting.
func (b *Breaker) poke() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// FleetState is the fleet's state of one breaker as an instance last read
// it from Redis.
type FleetState int

const (
	// FleetUnknown: this instance has no fresh view of the fleet (before
	// its first sync, or Redis failing); its local breaker decides alone.
	FleetUnknown FleetState = iota
	// FleetClosed: the fleet is not open; each local breaker decides on
	// its own, and reports its trips.
	FleetClosed
	// FleetOpen: a quorum of instances tripped, or the fleet's probe
	// failed; every instance is open until the fleet's probe succeeds.
	FleetOpen
	// FleetForcedOpen: an operator forced the fleet open; every instance
	// is held open until Reset.
	FleetForcedOpen
)

// String returns "unknown", "closed", "open" or "forced_open".
func (s FleetState) String() string {
	switch s {
	case FleetClosed:
		return "closed"
	case FleetOpen:
		return "open"
	case FleetForcedOpen:
		return "forced_open"
	}
	return "unknown"
}

// View is the fleet's state of one breaker as this instance last read it.
type View struct {
	// State is the fleet's state; FleetUnknown while this instance is on
	// its own.
	State FleetState
	// Live is how many instances heartbeat this breaker.
	Live int
	// Tripped is how many live instances report their own breaker
	// tripped.
	Tripped int
	// ProbeHolder is the id of the instance holding the probe lease, ""
	// for none.
	ProbeHolder string
	// Epoch identifies the fleet's last change (a Redis server time in
	// milliseconds, growing with each change); 0 when the fleet has made
	// none yet.
	Epoch int64
}

// View returns the fleet's state as this instance last read it. It reads
// no Redis.
func (b *Breaker) View() View {
	v := b.view.Load()
	if v == nil || time.Since(v.at) > b.stale {
		return View{}
	}
	out := View{Live: int(v.live), Tripped: int(v.tripped), ProbeHolder: v.holder, Epoch: v.epoch}
	switch v.state {
	case stateOpen:
		out.State = FleetOpen
	case stateForced:
		out.State = FleetForcedOpen
	default:
		out.State = FleetClosed
	}
	return out
}
