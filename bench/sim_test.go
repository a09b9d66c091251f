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

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/retrypolicy"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/hedge"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/retry"
)

// The simulations here measure how retries and hedges behave under load,
// not how fast they are: many callers, a dependency that is down or slow
// now and then, and what reaches the dependency. Each runs inside a
// testing/synctest bubble, so that its minutes of traffic pass in virtual
// time (a second or so of real time) and runs repeat: latencies, think
// times and start times are drawn from generators seeded per caller, so
// that events rarely share an instant. The one exception is a breaker's:
// callers it rejected in one open period all retry at the instant the
// period ends (the rejection's RetryAfter), synctest runs goroutines woken
// at one instant in no fixed order, and the breaker rows move by a few
// requests (0.1%) from run to run. Every other row is the same in every
// run. Run them, tables printed, with
//
//	cd bench && go test -run=Simulation -v .
//
// docs/performance.md quotes the tables and docs/retry.md and
// docs/hedging.md what they show.

// simSeed seeds every generator of the simulations.
const simSeed = 2013 // The Tail at Scale

// simRand is a caller's generator, locked: a hedge draws its latency in
// another goroutine than its call's first attempt (never at the same
// instant, so the draws keep their order).
type simRand struct {
	mu sync.Mutex
	r  *rand.Rand
}

func newSimRand(caller int) *simRand {
	return &simRand{r: rand.New(rand.NewPCG(simSeed, uint64(caller)))}
}

// between returns a duration drawn uniformly from [lo, hi).
func (s *simRand) between(lo, hi time.Duration) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return lo + time.Duration(s.r.Int64N(int64(hi-lo)))
}

// float returns a number drawn uniformly from [0, 1).
func (s *simRand) float() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.r.Float64()
}

// normal returns a number drawn from the standard normal distribution.
func (s *simRand) normal() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.r.NormFloat64()
}

// ctxKey carries the caller's generator to the dependency.
type ctxKey struct{}

func callerRand(ctx context.Context) *simRand { return ctx.Value(ctxKey{}).(*simRand) }

// ---- (a) retry amplification during an outage ----

const (
	outageCallers  = 100
	outageAttempts = 3
	outageDuration = 30 * time.Second
	// outageLatency is how long the dependency takes to fail an attempt.
	outageLatency = 5 * time.Millisecond
	// outageThink is the mean pause of a caller between two requests
	// (drawn from [outageThink/2, 3·outageThink/2)).
	outageThink = 50 * time.Millisecond
	// outageDelay is the delay between attempts of every retry.
	outageDelay = 10 * time.Millisecond
	// outageMaxAmplification is the design's bound for a budget of 0.2.
	outageMaxAmplification = 1.2
)

var errDown = errors.New("dependency is down")

// outageResult is one scenario's traffic.
type outageResult struct {
	name     string
	requests int64 // caller requests completed
	attempts int64 // attempts that reached the dependency
	budgeted int64 // requests that came back with ErrBudgetExhausted
	latency  time.Duration
}

func (r outageResult) amplification() float64 { return float64(r.attempts) / float64(r.requests) }

// outageScenario builds, inside the bubble, the function a caller calls
// for one request, around dep, the dependency.
type outageScenario struct {
	name  string
	build func(dep resilience.Func[int]) resilience.Func[int]
}

var outageScenarios = []outageScenario{
	{"no retry", func(dep resilience.Func[int]) resilience.Func[int] { return dep }},
	{"plain loop, 3 attempts", func(dep resilience.Func[int]) resilience.Func[int] {
		return func(ctx context.Context) (int, error) {
			var err error
			for attempt := 1; ; attempt++ {
				var v int
				if v, err = dep(ctx); err == nil || attempt == outageAttempts {
					return v, err
				}
				time.Sleep(outageDelay)
			}
		}
	}},
	{"failsafe-go retrypolicy, 3 attempts", func(dep resilience.Func[int]) resilience.Func[int] {
		rp := retrypolicy.NewBuilder[int]().WithMaxAttempts(outageAttempts).WithDelay(outageDelay).Build()
		return func(ctx context.Context) (int, error) {
			return failsafe.With[int](rp).WithContext(ctx).GetWithExecution(func(e failsafe.Execution[int]) (int, error) {
				return dep(e.Context())
			})
		}
	}},
	{"levee retry, 3 attempts", func(dep resilience.Func[int]) resilience.Func[int] {
		return resilience.Wrap(dep, simRetry())
	}},
	{"levee retry + budget(0.2, 0)", func(dep resilience.Func[int]) resilience.Func[int] {
		return resilience.Wrap(dep, simRetry(retry.WithBudget(retry.NewBudget(0.2, 0))))
	}},
	{"levee retry + budget(0.2, 10)", func(dep resilience.Func[int]) resilience.Func[int] {
		return resilience.Wrap(dep, simRetry(retry.WithBudget(retry.NewBudget(0.2, 10))))
	}},
	{"levee retry + breaker", func(dep resilience.Func[int]) resilience.Func[int] {
		return resilience.Wrap(dep, simRetry(), breaker.Policy[int](simBreaker()))
	}},
	{"levee retry + budget(0.2, 10) + breaker", func(dep resilience.Func[int]) resilience.Func[int] {
		return resilience.Wrap(dep, simRetry(retry.WithBudget(retry.NewBudget(0.2, 10))), breaker.Policy[int](simBreaker()))
	}},
}

func simRetry(opts ...retry.Option) resilience.Policy[int] {
	return retry.Policy[int](append([]retry.Option{retry.WithMaxAttempts(outageAttempts), retry.WithDelay(outageDelay)}, opts...)...)
}

// simBreaker opens after 5 consecutive failures for a second: the retry
// outside it waits for the half-open probe (the rejection's RetryAfter).
func simBreaker() *breaker.Breaker {
	return breaker.New("dep", breaker.WithFailureThreshold(5), breaker.WithOpenTimeout(time.Second))
}

// simulateOutage runs outageCallers callers against a dependency that fails
// every attempt, for outageDuration of virtual time, each calling the
// scenario's function, pausing, and calling again.
func simulateOutage(t *testing.T, sc outageScenario) outageResult {
	res := outageResult{name: sc.name}
	synctest.Test(t, func(t *testing.T) {
		var attempts, requests, budgeted, latency atomic.Int64
		dep := func(ctx context.Context) (int, error) {
			attempts.Add(1)
			time.Sleep(outageLatency)
			return 0, errDown
		}
		call := sc.build(dep)
		start := time.Now()
		var wg sync.WaitGroup
		for caller := range outageCallers {
			rnd := newSimRand(caller)
			wg.Go(func() {
				ctx := context.WithValue(context.Background(), ctxKey{}, rnd)
				time.Sleep(rnd.between(0, outageThink))
				for time.Since(start) < outageDuration {
					began := time.Now()
					_, err := call(ctx)
					latency.Add(int64(time.Since(began)))
					requests.Add(1)
					if errors.Is(err, retry.ErrBudgetExhausted) {
						budgeted.Add(1)
					}
					time.Sleep(rnd.between(outageThink/2, 3*outageThink/2))
				}
			})
		}
		wg.Wait()
		res.requests, res.attempts, res.budgeted = requests.Load(), attempts.Load(), budgeted.Load()
		res.latency = time.Duration(latency.Load() / max(res.requests, 1))
	})
	return res
}

// TestSimulation_RetryAmplificationDuringAnOutage: how many attempts reach a
// dependency that is down for each request its callers make. Naive retries
// multiply the load by the attempts; a budget of 0.2 keeps it at most 1.2
// times (without its per-second floor; with it, the floor's 10 a second
// come on top); a breaker inside the retry cuts it to its probes.
func TestSimulation_RetryAmplificationDuringAnOutage(t *testing.T) {
	var results []outageResult
	for _, sc := range outageScenarios {
		results = append(results, simulateOutage(t, sc))
	}

	var b strings.Builder
	fmt.Fprintf(&b, "a dependency that is down (every attempt fails after %v), %d callers, %v of virtual time,\n", outageLatency, outageCallers, outageDuration)
	fmt.Fprintf(&b, "%d attempts at most, %v apart, %v mean pause between a caller's requests\n\n", outageAttempts, outageDelay, outageThink)
	fmt.Fprintf(&b, "| %-40s | %9s | %9s | %18s | %15s | %13s | %12s |\n", "callers retry with", "requests", "attempts", "attempts / request", "dependency load", "budget refused", "mean latency")
	fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", strings.Repeat("-", 40), strings.Repeat("-", 9), strings.Repeat("-", 9), strings.Repeat("-", 18), strings.Repeat("-", 15), strings.Repeat("-", 13), strings.Repeat("-", 12))
	for _, r := range results {
		fmt.Fprintf(&b, "| %-40s | %9d | %9d | %17.3fx | %13.0f/s | %12.0f%% | %12v |\n", r.name, r.requests, r.attempts,
			r.amplification(), float64(r.attempts)/outageDuration.Seconds(), 100*float64(r.budgeted)/float64(r.requests), r.latency.Round(100*time.Microsecond))
	}
	t.Log("\n" + b.String())

	byName := func(name string) outageResult {
		i := slices.IndexFunc(results, func(r outageResult) bool { return r.name == name })
		return results[i]
	}
	for _, naive := range []string{"plain loop, 3 attempts", "failsafe-go retrypolicy, 3 attempts", "levee retry, 3 attempts"} {
		if a := byName(naive).amplification(); math.Abs(a-outageAttempts) > 0.01 {
			t.Errorf("%s: %.3f attempts per request, want %d: every attempt fails", naive, a, outageAttempts)
		}
	}
	if a := byName("levee retry + budget(0.2, 0)").amplification(); a > outageMaxAmplification {
		t.Errorf("a budget of 0.2 let %.3f attempts reach the dependency per request, want at most %.1f", a, outageMaxAmplification)
	}
	withFloor := byName("levee retry + budget(0.2, 10)")
	// The floor allows 10 retries a second on top, and 10 at once to a new
	// budget.
	floorRetries := 10 * (outageDuration.Seconds() + 1)
	if limit := outageMaxAmplification + floorRetries/float64(withFloor.requests); withFloor.amplification() > limit {
		t.Errorf("a budget of 0.2 and 10 a second let %.3f attempts reach the dependency per request, want at most %.3f", withFloor.amplification(), limit)
	}
	if a := byName("levee retry + breaker").amplification(); a >= 1 {
		t.Errorf("retry + breaker: %.3f attempts reached the dependency per request, want fewer than 1", a)
	}
}

// ---- (b) hedging a latency distribution with a slow tail ----

const (
	tailCallers  = 100
	tailRequests = 200 // per caller
	// The dependency's latency: log-normal around tailMedian (p95 about
	// 1.5x it), and 1 attempt in 100 (tailSlowShare) 50 times slower.
	tailMedian    = 10 * time.Millisecond
	tailSigma     = 0.25
	tailSlowShare = 0.01
	tailSlowdown  = 50
	// tailThink is the most a caller pauses between requests.
	tailThink = 20 * time.Millisecond
)

// tailScenario is a hedge policy (nil: none), built inside the bubble.
type tailScenario struct {
	name   string
	policy func() resilience.Policy[int]
}

var tailScenarios = []tailScenario{
	{"no hedge", nil},
	{"fixed delay 10ms (the median)", func() resilience.Policy[int] { return hedge.Policy[int](10 * time.Millisecond) }},
	{"fixed delay 50ms", func() resilience.Policy[int] { return hedge.Policy[int](50 * time.Millisecond) }},
	{"p95 delay (WithQuantileDelay(0.95, 10s))", func() resilience.Policy[int] {
		return hedge.Policy[int](50*time.Millisecond, hedge.WithQuantileDelay(0.95, 10*time.Second))
	}},
	{"p99 delay (WithQuantileDelay(0.99, 10s))", func() resilience.Policy[int] {
		return hedge.Policy[int](50*time.Millisecond, hedge.WithQuantileDelay(0.99, 10*time.Second))
	}},
}

type tailResult struct {
	name      string
	latencies []time.Duration // sorted
	attempts  int64
	work      time.Duration // the time attempts ran, cancelled ones until cancelled
}

func (r tailResult) quantile(q float64) time.Duration {
	return r.latencies[int(math.Ceil(q*float64(len(r.latencies))))-1]
}

// tailLatency draws one attempt's latency.
func tailLatency(rnd *simRand) time.Duration {
	d := time.Duration(float64(tailMedian) * math.Exp(tailSigma*rnd.normal()))
	if rnd.float() < tailSlowShare {
		d *= tailSlowdown
	}
	return d
}

// simulateTail runs tailCallers callers making tailRequests requests each
// to a dependency whose latency tailLatency draws, through the scenario's
// hedge, and records each request's latency.
func simulateTail(t *testing.T, sc tailScenario) tailResult {
	res := tailResult{name: sc.name}
	synctest.Test(t, func(t *testing.T) {
		var attempts, work atomic.Int64
		dep := func(ctx context.Context) (int, error) {
			attempts.Add(1)
			began := time.Now()
			defer func() { work.Add(int64(time.Since(began))) }()
			timer := time.NewTimer(tailLatency(callerRand(ctx)))
			defer timer.Stop()
			select {
			case <-timer.C:
				return 1, nil
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		call := resilience.Func[int](dep)
		if sc.policy != nil {
			call = resilience.Wrap(call, sc.policy())
		}
		latencies := make([][]time.Duration, tailCallers)
		var wg sync.WaitGroup
		for caller := range tailCallers {
			rnd := newSimRand(caller)
			wg.Go(func() {
				ctx := context.WithValue(context.Background(), ctxKey{}, rnd)
				for range tailRequests {
					time.Sleep(rnd.between(time.Microsecond, tailThink))
					began := time.Now()
					if _, err := call(ctx); err != nil {
						t.Errorf("%s: %v", sc.name, err)
					}
					latencies[caller] = append(latencies[caller], time.Since(began))
				}
			})
		}
		wg.Wait()
		res.latencies = slices.Sorted(slices.Values(slices.Concat(latencies...)))
		res.attempts, res.work = attempts.Load(), time.Duration(work.Load())
	})
	return res
}

// TestSimulation_HedgingCutsTheTail: the latency percentiles of a
// dependency with a slow tail, and the load hedges add, with no hedge, with
// fixed delays and with the delay at the recent p95. The Tail at Scale
// (Dean and Barroso, 2013) reports a hedge after 10 ms (about their p95)
// cutting a 1,000-key read's p99.9 from 1,800 ms to 74 ms for 2% more
// requests.
func TestSimulation_HedgingCutsTheTail(t *testing.T) {
	var results []tailResult
	for _, sc := range tailScenarios {
		results = append(results, simulateTail(t, sc))
	}

	var b strings.Builder
	fmt.Fprintf(&b, "%d callers x %d requests; attempt latency log-normal, median %v (sigma %.2f), %.0f%% of attempts %dx slower\n\n",
		tailCallers, tailRequests, tailMedian, tailSigma, 100*tailSlowShare, tailSlowdown)
	fmt.Fprintf(&b, "| %-42s | %8s | %8s | %8s | %8s | %10s | %10s |\n", "hedging", "p50", "p95", "p99", "p99.9", "extra load", "attempt time")
	fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", strings.Repeat("-", 42), strings.Repeat("-", 8), strings.Repeat("-", 8), strings.Repeat("-", 8), strings.Repeat("-", 8), strings.Repeat("-", 10), strings.Repeat("-", 10))
	base := results[0]
	requests := float64(len(base.latencies))
	for _, r := range results {
		fmt.Fprintf(&b, "| %-42s | %8s | %8s | %8s | %8s | %9.1f%% | %9.1f%% |\n", r.name,
			ms(r.quantile(0.50)), ms(r.quantile(0.95)), ms(r.quantile(0.99)), ms(r.quantile(0.999)),
			100*(float64(r.attempts)/requests-1), 100*(float64(r.work)/float64(base.work)-1))
	}
	b.WriteString("\nextra load: attempts started beyond one per request; attempt time: the time attempts ran (cancelled ones until cancelled), against the time without hedging\n")
	t.Log("\n" + b.String())

	p95 := results[3]
	if got, want := p95.quantile(0.999), base.quantile(0.999)/5; got > want {
		t.Errorf("hedging at p95 left p99.9 at %v, want at most %v (a fifth of %v without)", got, want, base.quantile(0.999))
	}
	if extra := float64(p95.attempts)/requests - 1; extra > 0.08 {
		t.Errorf("hedging at p95 added %.1f%% to the load, want about 5%% (at most 8%%)", 100*extra)
	}
}

// ms formats d in milliseconds, to one decimal.
func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
