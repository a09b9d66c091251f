package dashboard

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/bulkhead"
	"github.com/levee-go/levee/ratelimit"
	"github.com/levee-go/levee/throttle"
)

type kind uint8

const (
	kindBreaker kind = iota
	kindBulkhead
	kindRateLimit
	kindThrottle
	kindRetry
	kindHedge
	numKinds
)

// kindNames are the kinds as the JSON and the page's filter name them.
var kindNames = [numKinds]string{"breaker", "bulkhead", "rate_limit", "throttle", "retry", "hedge"}

// outcomeNames are, for each kind, the outcomes its counts hold, in order:
// the levee.outcome values of its metrics where it has them.
var outcomeNames = [numKinds][]string{
	kindBreaker:   {"success", "failure", "rejected", "ignored", "shadow_rejected"},
	kindBulkhead:  {"admitted", "waited", "rejected", "timed_out", "canceled"},
	kindRateLimit: {"admitted", "waited", "rejected", "canceled"},
	kindThrottle:  {"success", "failure", "rejected", "ignored"},
	// A retry counts the attempts after each call's first, and its stops.
	kindRetry: {"retry_success", "retry_failure", "retry_ignored", "exhausted", "budget_exhausted"},
	// A hedge counts the hedges it started, the calls won by the first
	// attempt or by a hedge, and the hedges the budget refused.
	kindHedge: {"started", "won_by_first", "won_by_hedge", "budget_exhausted"},
}

func parseKind(s string) (kind, bool) {
	for k, name := range kindNames {
		if name == s {
			return kind(k), true
		}
	}
	return 0, false
}

type entryKey struct {
	kind kind
	name string
}

// Levels say how much a policy needs an operator's eye.
const (
	levelOK   = "ok"
	levelWarn = "warn" // half-open, a full bulkhead, a throttle refusing
	levelBad  = "bad"  // open
)

// reading is what one policy's counters say now.
type reading struct {
	state   string
	level   string
	counts  []int64
	details []Detail
}

// entry is one registered policy.
type entry struct {
	key entryKey
	// read reads the policy; false once it is garbage.
	read func() (reading, bool)
	// control acts on a breaker and returns its new state; nil for other
	// kinds.
	control func(r *http.Request, action string) (state string, ok bool)
	// stats are the counts of a retry or a hedge, which the dashboard
	// keeps itself (see MeterProvider).
	stats []atomic.Int64

	mu sync.Mutex
	// samples are recent readings of the counts, at least a second apart,
	// oldest first, for the rates.
	samples []sample
	// transitions are a breaker's last changes, oldest first.
	transitions []Transition
	// listened is set once the breaker's state-change listener is known
	// to report to the dashboard; until then transitions are inferred
	// from the states seen at snapshots.
	listened  bool
	lastState string
}

type sample struct {
	at     time.Time
	counts []int64
}

// Transition is one change of a breaker's state, as the timeline shows it.
type Transition struct {
	// At is when the change was made (or, when Observed, seen).
	At time.Time `json:"at"`
	// From and To are the states left and entered.
	From string `json:"from"`
	To   string `json:"to"`
	// Forced is set for ForceOpen and Reset, an operator's changes.
	Forced bool `json:"forced,omitempty"`
	// Rule is the trip rule that opened the breaker, as
	// breaker.StateChange.TripRule says.
	Rule string `json:"rule,omitempty"`
	// Observed is set for a change the dashboard inferred from two
	// snapshots, for a breaker whose state-change listener does not
	// report to it: At is when the snapshot saw it.
	Observed bool `json:"observed,omitempty"`
}

const (
	maxSamples     = 12
	sampleSpacing  = time.Second
	rateWindowSpan = 10 * time.Second
)

func (e *entry) addTransition(t Transition) {
	if len(e.transitions) == maxTransitions {
		copy(e.transitions, e.transitions[1:])
		e.transitions = e.transitions[:maxTransitions-1]
	}
	e.transitions = append(e.transitions, t)
}

// observe records a reading at now: the sample for the rates, and for a
// breaker whose listener does not report, the state change it shows. It
// returns the rates per second of each count, over up to the last ten
// seconds (nil before two samples), and the transitions since since.
func (e *entry) observe(now time.Time, r reading, since time.Time) (rates []float64, ts []Transition) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.key.kind == kindBreaker {
		if !e.listened && e.lastState != "" && e.lastState != r.state {
			e.addTransition(Transition{At: now, From: e.lastState, To: r.state, Observed: true})
		}
		e.lastState = r.state
		for _, t := range e.transitions {
			if !t.At.Before(since) {
				ts = append(ts, t)
			}
		}
	}
	if n := len(e.samples); n == 0 || now.Sub(e.samples[n-1].at) >= sampleSpacing {
		if n == maxSamples {
			copy(e.samples, e.samples[1:])
			e.samples = e.samples[:n-1]
		}
		e.samples = append(e.samples, sample{at: now, counts: r.counts})
	}
	// The oldest sample within the rate window, other than now's.
	var base *sample
	for i := range e.samples {
		s := &e.samples[i]
		if now.Sub(s.at) <= rateWindowSpan && now.Sub(s.at) >= sampleSpacing/2 {
			base = s
			break
		}
	}
	if base == nil {
		return nil, ts
	}
	dt := now.Sub(base.at).Seconds()
	rates = make([]float64, len(r.counts))
	for i, n := range r.counts {
		if i < len(base.counts) {
			rates[i] = float64(n-base.counts[i]) / dt
		}
	}
	return rates, ts
}

// Detail is one labelled value of a policy, beside its counts: a
// breaker's failure streak, a bulkhead's calls in flight, a throttle's
// probability. It is exported for the JSON the page reads.
type Detail struct {
	Label string `json:"label"`
	Value string `json:"value"`
}

func readBreaker(b *breaker.Breaker) reading {
	c := b.Counts()
	s := b.State()
	r := reading{
		state:  s.String(),
		level:  levelOK,
		counts: []int64{c.Success, c.Failure, c.Rejected, c.Ignored, c.ShadowRejected},
	}
	switch s {
	case breaker.Open:
		r.level = levelBad
	case breaker.HalfOpen:
		r.level = levelWarn
	}
	w := b.Window()
	if w.Calls > 0 {
		r.details = append(r.details,
			Detail{"window calls", strconv.FormatInt(w.Calls, 10)},
			Detail{"window failure rate", percent(w.FailureRate())})
		if w.SlowCalls > 0 {
			r.details = append(r.details, Detail{"window slow-call rate", percent(w.SlowCallRate())})
		}
	}
	if b.ShadowMode() {
		r.details = append(r.details, Detail{"mode", "shadow"})
	}
	return r
}

func readBulkhead(b *bulkhead.Bulkhead) reading {
	c := b.Counts()
	inFlight, capacity := b.InFlight(), b.MaxConcurrent()
	r := reading{
		level:  levelOK,
		counts: []int64{c.Admitted, c.Waited, c.Rejected, c.TimedOut, c.Canceled},
		details: []Detail{
			{"in flight", strconv.Itoa(inFlight) + " / " + strconv.Itoa(capacity)},
			{"queued", strconv.Itoa(b.Queued())},
		},
	}
	if inFlight >= capacity {
		r.state, r.level = "full", levelWarn
	}
	return r
}

func readLimiter(l *ratelimit.Limiter) reading {
	c := l.Counts()
	r := reading{
		level:   levelOK,
		counts:  []int64{c.Admitted, c.Waited, c.Rejected, c.Canceled},
		details: []Detail{{"waiting", strconv.Itoa(l.Queued())}},
	}
	if k := l.Keys(); k > 0 {
		r.details = append(r.details, Detail{"keys", strconv.Itoa(k)})
	}
	return r
}

func readThrottle(t *throttle.Throttle) reading {
	c := t.Counts()
	p := t.Probability()
	r := reading{
		level:   levelOK,
		counts:  []int64{c.Success, c.Failure, c.Rejected, c.Ignored},
		details: []Detail{{"refusal probability", percent(p)}},
	}
	if p > 0 {
		r.state, r.level = "throttling", levelWarn
	}
	return r
}

func readStats(e *entry) reading {
	counts := make([]int64, len(e.stats))
	for i := range e.stats {
		counts[i] = e.stats[i].Load()
	}
	return reading{level: levelOK, counts: counts}
}

func percent(f float64) string { return strconv.FormatFloat(100*f, 'f', 1, 64) + "%" }
