package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/levee-go/levee/bulkhead"
	"github.com/levee-go/levee/ratelimit"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/throttle"
)

// The simulation here measures what the limits do under overload (issue 13,
// point 8): a backend of fixed capacity offered 2 and 5 times what it can
// serve, with no protection, a bulkhead, a rate limit and the adaptive
// throttle in front of it, and what reaches the backend and what callers
// see. It runs in a testing/synctest bubble, as sim_test.go's do: its
// seconds of traffic pass in virtual time, and arrivals are drawn from a
// seeded generator (and the throttle's draws from a seeded throttle), so
// that its numbers are the same on every run, give or take the order in
// which goroutines woken at one instant run. Run it, table printed, with
//
//	cd bench && go test -run=Simulation_Limits -v .
//
// docs/performance.md ("Limits") quotes the table and docs/limits.md what
// it shows.

const (
	// The backend has limitWorkers workers, each serving one request in
	// limitService: it serves limitWorkers/limitService requests a second
	// at most (its capacity). A request that finds every worker busy waits
	// in a first-come, first-served queue of at most limitQueue requests;
	// one that finds the queue full is refused at once (an overloaded
	// server's 503).
	limitWorkers = 10
	limitService = 20 * time.Millisecond
	limitQueue   = 4 * limitWorkers
	// limitRun is how long callers offer traffic; the requests that arrive
	// in the first limitWarmup are made but not counted, so that the
	// figures are those of the steady state (the throttle learns in the
	// warm-up, and a rate limit spends its initial burst).
	limitRun    = 12 * time.Second
	limitWarmup = 2 * time.Second
	// limitK is the throttle's K, the SRE book's (and the default), and
	// limitKTolerance how far the backend's requests per accepted request
	// may be from it.
	limitK          = 2.0
	limitKTolerance = 0.1
)

// limitCapacity is what the backend can serve per second.
var limitCapacity = float64(limitWorkers) / limitService.Seconds()

var errOverloaded = errors.New("backend overloaded: queue full")

// measuredKey marks the context of a request that arrived after the
// warm-up.
type measuredKey struct{}

func measured(ctx context.Context) bool { v, _ := ctx.Value(measuredKey{}).(bool); return v }

// limitBackend is the backend of fixed capacity. Its counts are of measured
// requests only.
type limitBackend struct {
	workers chan struct{}

	mu        sync.Mutex
	queued    int
	maxQueued int // the longest queue a measured request joined

	received, served, refused atomic.Int64
	busy, maxBusy             atomic.Int64
}

func newLimitBackend() *limitBackend {
	return &limitBackend{workers: make(chan struct{}, limitWorkers)}
}

// serve is one request: a worker now, or a place in the queue and a worker
// when one is free, or errOverloaded at once.
func (be *limitBackend) serve(ctx context.Context) (int, error) {
	m := measured(ctx)
	if m {
		be.received.Add(1)
	}
	select {
	case be.workers <- struct{}{}:
	default:
		be.mu.Lock()
		if be.queued == limitQueue {
			be.mu.Unlock()
			if m {
				be.refused.Add(1)
			}
			return 0, errOverloaded
		}
		be.queued++
		if m {
			be.maxQueued = max(be.maxQueued, be.queued)
		}
		be.mu.Unlock()
		be.workers <- struct{}{} // blocked senders are woken in order
		be.mu.Lock()
		be.queued--
		be.mu.Unlock()
	}
	if n := be.busy.Add(1); n > be.maxBusy.Load() {
		be.maxBusy.Store(n)
	}
	time.Sleep(limitService)
	be.busy.Add(-1)
	<-be.workers
	if m {
		be.served.Add(1)
	}
	return 1, nil
}

// limitScenario puts a policy (nil: none) in front of the backend, built
// inside the bubble.
type limitScenario struct {
	name   string
	policy func() resilience.Policy[int]
}

var limitScenarios = []limitScenario{
	{"no protection", nil},
	// A bulkhead as large as the backend's workers, no wait: a call that
	// finds them all busy is refused at once, and nothing queues.
	{"bulkhead(10)", func() resilience.Policy[int] {
		return bulkhead.Policy[int](bulkhead.New("backend", limitWorkers))
	}},
	// The same with a wait of one service time for a slot: the workers a
	// bulkhead without a wait leaves idle between a release and the next
	// arrival get the next caller in line.
	{"bulkhead(10), wait 20ms", func() resilience.Policy[int] {
		return bulkhead.Policy[int](bulkhead.New("backend", limitWorkers, bulkhead.WithMaxWait(limitService)))
	}},
	// A rate limit of the backend's capacity, in bursts of as many.
	{"ratelimit(500/s)", func() resilience.Policy[int] {
		return ratelimit.Policy[int](ratelimit.New("backend", int(limitCapacity), time.Second))
	}},
	// A rate limit of 90% of it.
	{"ratelimit(450/s)", func() resilience.Policy[int] {
		return ratelimit.Policy[int](ratelimit.New("backend", int(0.9*limitCapacity), time.Second))
	}},
	// The adaptive throttle with its defaults (K = 2, a 2-minute window),
	// seeded; every error counts as a refusal.
	{"throttle(K=2)", func() resilience.Policy[int] {
		return throttle.Policy[int](throttle.New("backend", throttle.WithK(limitK), throttle.WithSeed(simSeed)))
	}},
}

// limitResult is one scenario at one load: counts of measured requests.
type limitResult struct {
	name    string
	load    float64 // offered, as a multiple of the capacity
	offered int64   // requests callers made
	ok      int64   // answered with a result
	local   int64   // refused by the policy, never sent
	remote  int64   // refused by the backend (errOverloaded)
	// what reached the backend
	received, served, refused int64
	maxBusy, maxQueued        int64
	latencies                 []time.Duration // of the requests answered, sorted
}

func (r limitResult) perSecond(n int64) float64 {
	return float64(n) / (limitRun - limitWarmup).Seconds()
}

func (r limitResult) quantile(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	return r.latencies[int(math.Ceil(q*float64(len(r.latencies))))-1]
}

// sentPerServed is what reached the backend per request it served: the
// SRE book's requests / accepts.
func (r limitResult) sentPerServed() float64 { return float64(r.received) / float64(r.served) }

// simulateLimits offers load times the backend's capacity for limitRun:
// requests arrive one by one, at exponentially distributed intervals
// (Poisson arrivals, an open loop: callers do not wait for each other, as a
// service's users do not), each in a goroutine of its own, through the
// scenario's policy.
func simulateLimits(t *testing.T, sc limitScenario, load float64) limitResult {
	res := limitResult{name: sc.name, load: load}
	synctest.Test(t, func(t *testing.T) {
		be := newLimitBackend()
		call := resilience.Func[int](be.serve)
		if sc.policy != nil {
			call = resilience.Wrap(call, sc.policy())
		}
		rnd := rand.New(rand.NewPCG(simSeed, uint64(load*10)))
		meanGap := float64(time.Second) / (load * limitCapacity)
		var (
			mu                               sync.Mutex
			latencies                        []time.Duration
			offered, ok, local, remote, errs atomic.Int64
			wg                               sync.WaitGroup
		)
		start := time.Now()
		measuredCtx := context.WithValue(context.Background(), measuredKey{}, true)
		for {
			time.Sleep(time.Duration(rnd.ExpFloat64() * meanGap))
			since := time.Since(start)
			if since >= limitRun {
				break
			}
			ctx, m := context.Background(), since >= limitWarmup
			if m {
				ctx = measuredCtx
				offered.Add(1)
			}
			wg.Go(func() {
				began := time.Now()
				_, err := call(ctx)
				if !m {
					return
				}
				switch {
				case err == nil:
					ok.Add(1)
					mu.Lock()
					latencies = append(latencies, time.Since(began))
					mu.Unlock()
				case errors.Is(err, errOverloaded):
					remote.Add(1)
				case errors.Is(err, bulkhead.ErrFull), errors.Is(err, ratelimit.ErrLimited), errors.Is(err, throttle.ErrThrottled):
					local.Add(1)
				default:
					errs.Add(1)
					t.Errorf("%s: unexpected error %v", sc.name, err)
				}
			})
		}
		wg.Wait()
		res.offered, res.ok, res.local, res.remote = offered.Load(), ok.Load(), local.Load(), remote.Load()
		res.received, res.served, res.refused = be.received.Load(), be.served.Load(), be.refused.Load()
		res.maxBusy, res.maxQueued = be.maxBusy.Load(), int64(be.maxQueued)
		res.latencies = slices.Sorted(slices.Values(latencies))
	})
	return res
}

// TestSimulation_LimitsUnderOverload: a backend that serves 500 requests a
// second (10 workers, 20 ms each; a queue of 40, then 503s), offered 2 and
// 5 times that. With no protection every request reaches it, its queue
// stays full and every answer waits for it; a bulkhead of its size sends
// only what it can serve at once, and answers without queueing; a rate
// limit of its capacity sends about its capacity; the throttle sends about
// K = 2 times what it accepts, as the SRE book says, and sheds the rest
// before it leaves the process.
func TestSimulation_LimitsUnderOverload(t *testing.T) {
	var results []limitResult
	for _, load := range []float64{2, 5} {
		for _, sc := range limitScenarios {
			results = append(results, simulateLimits(t, sc, load))
		}
	}
	t.Log("\n" + limitTable(results))

	capacity := limitCapacity * (limitRun - limitWarmup).Seconds() // requests the backend can serve while measured
	for _, r := range results {
		where := fmt.Sprintf("%s at %gx", r.name, r.load)
		if r.ok+r.local+r.remote != r.offered {
			t.Errorf("%s: %d answered + %d refused here + %d refused there != %d offered", where, r.ok, r.local, r.remote, r.offered)
		}
		if r.served != r.ok || r.refused != r.remote {
			t.Errorf("%s: the backend served %d and refused %d, callers saw %d and %d", where, r.served, r.refused, r.ok, r.remote)
		}
		if r.maxBusy > limitWorkers {
			t.Errorf("%s: %d requests in service at once, the backend has %d workers", where, r.maxBusy, limitWorkers)
		}
		// Every protection keeps the backend busy: it serves at least 90%
		// of its capacity (80% for the rate limit set to 90% of it).
		if want := 0.9 * capacity; r.name != "ratelimit(450/s)" && float64(r.served) < want || float64(r.served) < 0.8*capacity {
			t.Errorf("%s: the backend served %d, want at least 90%% of its capacity (%.0f)", where, r.served, capacity)
		}
		switch r.name {
		case "no protection":
			if r.received != r.offered {
				t.Errorf("%s: %d of %d requests reached the backend, want all", where, r.received, r.offered)
			}
			// Its queue is full: an answer waits for the 40 before it.
			if p50 := r.quantile(0.5); p50 < limitService*(limitQueue/limitWorkers) {
				t.Errorf("%s: median latency %v, want at least %v (a full queue)", where, p50, limitService*(limitQueue/limitWorkers))
			}
		case "bulkhead(10)", "bulkhead(10), wait 20ms":
			if r.refused != 0 || r.maxQueued != 0 {
				t.Errorf("%s: the backend refused %d and queued up to %d, want none: the bulkhead sends only what its workers take", where, r.refused, r.maxQueued)
			}
			if wait := r.quantile(0.99) - limitService; wait < 0 || r.name == "bulkhead(10)" && wait != 0 || wait > limitService {
				t.Errorf("%s: p99 latency %v, want %v and the bulkhead's wait at most", where, r.quantile(0.99), limitService)
			}
		case "ratelimit(500/s)":
			if sent := r.perSecond(r.received); sent > 1.01*limitCapacity {
				t.Errorf("%s: %.0f requests a second reached the backend, want at most its capacity (%.0f)", where, sent, limitCapacity)
			}
		case "ratelimit(450/s)":
			if sent := r.perSecond(r.received); sent > 0.9*1.01*limitCapacity {
				t.Errorf("%s: %.0f requests a second reached the backend, want at most 90%% of its capacity (%.0f)", where, sent, 0.9*limitCapacity)
			}
			// Below its capacity the backend's queue drains: half the
			// answers wait for less than one service time.
			if p50 := r.quantile(0.5); p50 > 2*limitService {
				t.Errorf("%s: median latency %v, want at most %v", where, p50, 2*limitService)
			}
		case "throttle(K=2)":
			// The SRE book's claim: the backend sees about K times what it
			// accepts.
			if got := r.sentPerServed(); math.Abs(got-limitK) > limitKTolerance*limitK {
				t.Errorf("%s: the backend saw %.2f requests per request it served, want K = %g within %.0f%%", where, got, limitK, 100*limitKTolerance)
			}
			if r.load > limitK && r.local == 0 {
				t.Errorf("%s: the throttle refused nothing at %gx load", where, r.load)
			}
		}
	}
}

// limitTable formats the results as docs/performance.md shows them.
func limitTable(results []limitResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "backend: %d workers x %v each = %.0f requests/s; a queue of %d, then refused (503); Poisson arrivals for %v, the first %v not counted\n\n",
		limitWorkers, limitService, limitCapacity, limitQueue, limitRun, limitWarmup)
	cols := []string{"offered", "in front", "reach backend", "served", "backend refuses", "sent / served", "callers: answered", "refused here", "refused there", "p50", "p99", "backend queue (max)"}
	widths := []int{7, 23, 13, 7, 15, 13, 17, 12, 13, 8, 8, 19}
	row := func(cells ...string) {
		b.WriteString("|")
		for i, c := range cells {
			fmt.Fprintf(&b, " %*s |", widths[i], c)
		}
		b.WriteString("\n")
	}
	row(cols...)
	dashes := make([]string, len(cols))
	for i, w := range widths {
		dashes[i] = strings.Repeat("-", w)
	}
	row(dashes...)
	for _, r := range results {
		pct := func(n int64) string { return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(r.offered)) }
		row(fmt.Sprintf("%gx", r.load), r.name,
			fmt.Sprintf("%.0f/s", r.perSecond(r.received)), fmt.Sprintf("%.0f/s", r.perSecond(r.served)),
			fmt.Sprintf("%.0f/s", r.perSecond(r.refused)), fmt.Sprintf("%.2f", r.sentPerServed()),
			pct(r.ok), pct(r.local), pct(r.remote),
			ms(r.quantile(0.5)), ms(r.quantile(0.99)), fmt.Sprint(r.maxQueued))
	}
	b.WriteString("\nsent / served: requests that reached the backend per request it served (the SRE book's requests / accepts); p50, p99: latency of the answered requests\n")
	return b.String()
}
