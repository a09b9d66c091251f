package leveeredis

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/levee-go/levee/internal/budget"
	"github.com/levee-go/levee/retry"
)

// Budget is a retry budget held by a whole fleet: retries (and hedges)
// across every instance are allowed up to ratio × the fleet's first attempts
// of the last 10 seconds, plus minPerSecond retries a second for the whole
// fleet, the Finagle model of retry.NewBudget taken from one process to the
// fleet.
//
// Each instance keeps a local *retry.Budget, given to retry.WithBudget and
// hedge.WithBudget as any other (Retry returns it): a first attempt costs
// what it costs there (one atomic add), and a retry decides under the local
// budget's lock with no Redis round trip. In the background, every sync
// interval, the instance adds its new first attempts and retries to the
// fleet's counts in Redis (time-bucketed on the server's clock) and reads
// the fleet's totals; its local budget then decides with its share of the
// fleet's unspent retries (half by its share of the fleet's first attempts,
// half by its share of the retries the fleet asked for over the last sync
// interval), and with the fleet's floor divided by the instances reporting.
// So an instance that earns retries it does not use lends them to the
// instances that need them, the fleet's retries stay within its ratio
// whatever the spread of its traffic, and a fleet of 1 000 instances has
// a floor of minPerSecond, not 1 000 × minPerSecond.
//
// When Redis cannot be reached the local budget decides alone: retries
// within ratio × its own first attempts, which summed over the fleet is the
// same bound, and the floor share it last had. It rejoins at the next sync
// that succeeds. After Fleet.Close it goes on alone the same way.
//
// Create one with NewBudget. A Budget is safe for concurrent use.
type Budget struct {
	fleet *Fleet
	name  string
	keys  []string
	local *retry.Budget
	impl  *budget.Budget

	ratio, minPerSecond float64

	// The sync loop's own: what it has added to the fleet's counts, and
	// the retries asked for at the last sync.
	pushedDeposits, pushedWithdrawals, askedAt int64

	// The fleet's window as last read, for telemetry.
	fleetDeposits, fleetWithdrawals, members atomic.Int64
	localOnly                                atomic.Bool
	fallbacks                                atomic.Int64

	tel *budgetInstruments
}

// BudgetOption configures a fleet Budget.
type BudgetOption func(*budgetConfig)

type budgetConfig struct {
	expected int
	problems []string
}

// WithBudgetExpectedInstances is how many instances share the budget's
// floor until Redis has said how many report to it: an instance that starts
// while Redis is unreachable allows minPerSecond / m retries a second from
// the floor. Default 1. m must be at least 1.
func WithBudgetExpectedInstances(m int) BudgetOption {
	return func(c *budgetConfig) {
		if m < 1 {
			c.problems = append(c.problems, fmt.Sprintf("WithBudgetExpectedInstances: must be at least 1, got %d", m))
		}
		c.expected = m
	}
}

// budgetBuckets slice the budget's window on the server, as the local
// budget slices its own.
const budgetBuckets = 10

// NewBudget returns the fleet retry budget named name, made from f: retries
// up to ratio of the fleet's first attempts over the last 10 seconds, plus
// minPerSecond a second for the whole fleet. Every instance creates it with
// the same name, ratio and minPerSecond. Its background goroutine syncs with
// Redis at once and then every sync interval.
//
// Invalid settings panic, naming them: an empty name or one holding a
// brace, a ratio outside (0, 1], a negative minPerSecond, and the options'
// own.
func NewBudget(f *Fleet, name string, ratio float64, minPerSecond int, opts ...BudgetOption) *Budget {
	if f == nil {
		panic("leveeredis: NewBudget: the fleet must not be nil")
	}
	ks := f.keyspace("budget", name)
	c := budgetConfig{expected: 1}
	if !(ratio > 0 && ratio <= 1) {
		c.problems = append(c.problems, fmt.Sprintf("ratio: must be in (0, 1], got %v", ratio))
	}
	if minPerSecond < 0 {
		c.problems = append(c.problems, fmt.Sprintf("minPerSecond: must not be negative, got %d", minPerSecond))
	}
	for i, o := range opts {
		if o == nil {
			c.problems = append(c.problems, "option "+strconv.Itoa(i)+" is nil")
			continue
		}
		o(&c)
	}
	if len(c.problems) > 0 {
		panic("leveeredis: NewBudget(" + strconv.Quote(name) + "): " + strings.Join(c.problems, "; "))
	}
	local := retry.NewBudget(ratio, minPerSecond)
	b := &Budget{
		fleet: f, name: name,
		keys:  []string{ks.key("counts"), ks.key("members"), ks.key("demand")},
		local: local, impl: (*budget.Budget)(local),
		ratio: ratio, minPerSecond: float64(minPerSecond),
	}
	b.members.Store(int64(c.expected))
	b.impl.SetFleet(0, b.minPerSecond/float64(c.expected))
	b.tel = newBudgetInstruments(b, f)
	f.run(b.loop)
	return b
}

// Retry returns the budget to give to retry.WithBudget and hedge.WithBudget
// in every pipeline of this instance that calls the dependency.
func (b *Budget) Retry() *retry.Budget { return b.local }

// Name returns the name the budget was created with.
func (b *Budget) Name() string { return b.name }

// LocalOnly reports whether the budget decides on this instance's counts
// alone now, because Redis could not be reached (or the Fleet is closed).
func (b *Budget) LocalOnly() bool { return b.localOnly.Load() }

func (b *Budget) loop(ctx context.Context) {
	defer b.fallBack()
	ticker := time.NewTicker(b.fleet.interval)
	defer ticker.Stop()
	for {
		b.sync(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// sync adds this instance's new counts to the fleet's, reads the fleet's
// window, and gives the local budget its share of it.
func (b *Budget) sync(ctx context.Context) {
	snap := b.impl.Snapshot()
	newDeposits := snap.Deposits - b.pushedDeposits
	newWithdrawals := snap.Withdrawals - b.pushedWithdrawals
	// Counted once, whatever happens: counts that could not be added
	// belong to a stretch the fleet did not see, and adding them late
	// would credit them to the wrong seconds.
	b.pushedDeposits, b.pushedWithdrawals = snap.Deposits, snap.Withdrawals
	demand := snap.Asked - b.askedAt
	b.askedAt = snap.Asked
	var reply budgetReply
	err := b.fleet.op(ctx, b.name, "budget", func(ctx context.Context) error {
		var err error
		reply, err = runBudget(ctx, b.fleet.client, b.name, b.keys,
			(budget.Window / budgetBuckets).Milliseconds(), budgetBuckets,
			newDeposits, newWithdrawals, b.fleet.id, demand)
		return err
	})
	if err != nil {
		if ctx.Err() == nil {
			b.fallBack()
		}
		return
	}
	members := max(reply.members, 1)
	b.members.Store(members)
	b.fleetDeposits.Store(reply.deposits)
	b.fleetWithdrawals.Store(reply.withdrawals)
	// This instance's share of the fleet's unspent retries: half by its
	// share of the fleet's first attempts (what it earned), half by its
	// share of the retries the fleet asked for lately (what it needs), so
	// that the shares add up to one and spare retries go where calls fail.
	// The credit is what that share adds to what its own counts allow, so
	// that the retries it earns from now on add to it.
	share := 1 / float64(members)
	if reply.deposits > 0 {
		share = min(snap.WindowDeposits/float64(reply.deposits), 1)
	}
	if reply.demand > 0 {
		share = (share + min(float64(demand)/float64(reply.demand), 1)) / 2
	}
	surplus := b.ratio*float64(reply.deposits) - float64(reply.withdrawals)
	b.impl.SetFleet(surplus*share-snap.Surplus, b.minPerSecond/float64(members))
	b.localOnly.Store(false)
}

// fallBack makes the local budget decide alone: its own counts, and the
// floor's share it last had.
func (b *Budget) fallBack() {
	if b.localOnly.Load() {
		return
	}
	b.impl.SetFleet(0, b.minPerSecond/float64(b.members.Load()))
	b.localOnly.Store(true)
	b.fallbacks.Add(1)
}
