package throttle

import (
	"context"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
	"weak"

	"github.com/levee-go/levee/internal/stripe"
)

// Throttle is adaptive client-side throttling: it refuses calls locally,
// with probability max(0, (requests - K·accepts) / (requests + 1)), where
// requests are the calls it saw over the recent window (those it refused
// included) and accepts the calls the dependency served. The probability of
// a call comes from the history before it; a throttle with no history
// refuses nothing. A refused call returns an error matching ErrThrottled and
// does not run.
//
// What counts as accepted is the caller's choice (WithIsFailure): by
// default a call that returns no error. A call whose caller's own context
// ended counts neither as a request nor as an accept; a panic counts as a
// call the dependency did not accept, and propagates unchanged.
//
// The counts are cumulative atomics, in stripes, so that the cores calling
// one throttle mostly write cache lines of their own; the window is their
// values at each tenth of it, taken by a timer that runs only while calls
// come, so a call reads no clock. While every stripe has no more requests
// than K times its accepts, the sum has none either and nothing can be
// refused: a call through a healthy dependency looks at its own stripe only,
// takes no lock, allocates nothing and does no OpenTelemetry work. A stripe
// whose requests outgrow K times its accepts raises an alarm, and while it
// is raised each call sums the stripes to find the probability. A refused
// call allocates nothing either.
//
// A Throttle is safe for concurrent use by any number of goroutines and
// starts no goroutine; its timer stops once a whole window has passed
// without a call. Create one with New; the zero value is not usable. A
// Throttle nobody references any more is garbage, timer and metrics
// registration included.
type Throttle struct {
	counts *stripes // allocated apart, so that each stripe has a line of its own
	// window is the stripes' counts when the window began, nil while the
	// throttle is idle (its timer stopped).
	window atomic.Pointer[snapshot]
	// The alarm is raised while raised != cleared: some stripe may have
	// more requests than K times its accepts, and calls must sum the
	// stripes. Raising adds to raised; clearing stores in cleared the
	// raised seen before a sum that found every stripe balanced, so a
	// raise during that sum keeps the alarm up.
	raised, cleared atomic.Uint64
	_               [stripe.CacheLine]byte

	rejected      atomic.Int64
	failures      atomic.Int64
	canceledEarly atomic.Int64 // calls whose context was done on arrival
	// rng is the state of a splitmix64 generator: each draw adds to it.
	rng atomic.Uint64
	_   [stripe.CacheLine]byte

	name      string
	k         float64
	isFailure func(error) bool
	step      time.Duration // a tenth of the window
	errRefuse error

	// mu guards the marks and the timer.
	mu sync.Mutex
	// marks are the counts at the last buckets ticks, oldest first: the
	// first is where the window begins.
	marks []snapshot
	timer *time.Timer

	tel *instruments
}

// counts are the cumulative counts of one stripe, or of all, at one moment.
type counts struct {
	requests, accepts, ignored int64
}

// snapshot is every stripe's counts at one moment.
type snapshot [stripe.Count]counts

// stripe is one stripe's counts: requests counts every call the throttle
// decided, refused ones included; accepts those the dependency accepted;
// ignored those whose caller's context ended, counted as requests and taken
// out again. All only grow.
type stripeCounts struct {
	requests, accepts, ignored atomic.Int64
	_                          [stripe.CacheLine - 24]byte
}

// stripes are allocated apart from the Throttle: a 576-byte object starts
// on a cache-line boundary, and the first line, left empty, keeps the
// stripes off whatever object precedes them.
type stripes struct {
	_ [stripe.CacheLine]byte
	s [stripe.Count]stripeCounts
}

// New returns a Throttle named name. The name identifies it in errors and
// telemetry (levee.policy.name) and must not be empty.
//
// Invalid settings are programming errors: New panics with a message naming
// the setting (an empty name, WithK below 1, WithWindow under 10ms, a nil
// predicate, option or provider). It registers the throttle with the meter
// provider, so its metrics are reported from construction on, for as long as
// the throttle is referenced. Give each throttle of one provider its own
// name.
func New(name string, opts ...Option) *Throttle {
	cfg := config{k: DefaultK, window: DefaultWindow}
	if name == "" {
		cfg.refuse("name must not be empty")
	}
	for i, opt := range opts {
		if opt == nil {
			cfg.refuse("option " + strconv.Itoa(i) + " is nil")
			continue
		}
		opt(&cfg)
	}
	if len(cfg.problems) > 0 {
		panic("levee: throttle.New(" + strconv.Quote(name) + "): " + strings.Join(cfg.problems, "; "))
	}
	if !cfg.seeded {
		cfg.seed = rand.Uint64()
	}
	t := &Throttle{
		counts:    new(stripes),
		name:      name,
		k:         cfg.k,
		isFailure: cfg.isFailure,
		step:      cfg.window / buckets,
		errRefuse: &throttledError{name: name},
		marks:     make([]snapshot, 0, buckets),
	}
	t.rng.Store(cfg.seed)
	newInstruments(t, cfg.tracerProvider, cfg.meterProvider)
	return t
}

// Name returns the name the throttle was created with.
func (t *Throttle) Name() string { return t.name }

// Probability returns the probability with which the throttle would refuse
// a call now.
func (t *Throttle) Probability() float64 {
	w := t.window.Load()
	if w == nil {
		return 0
	}
	p, _ := t.probability(w)
	return p
}

// probability is max(0, (requests - K·accepts) / (requests + 1)) over the
// window that began at w, summed over the stripes. balanced reports whether
// every stripe had no more requests than K times its accepts.
func (t *Throttle) probability(w *snapshot) (p float64, balanced bool) {
	var requests, accepts float64
	balanced = true
	for i := range t.counts.s {
		r, a := t.window1(i, w)
		requests += r
		accepts += a
		if r > t.k*a {
			balanced = false
		}
	}
	if requests <= t.k*accepts {
		return 0, balanced
	}
	return (requests - t.k*accepts) / (requests + 1), balanced
}

// window1 returns stripe i's requests and accepts since the window began
// at w.
func (t *Throttle) window1(i int, w *snapshot) (requests, accepts float64) {
	s := &t.counts.s[i]
	requests = float64(s.requests.Load() - s.ignored.Load() - (w[i].requests - w[i].ignored))
	accepts = float64(s.accepts.Load() - w[i].accepts)
	return requests, accepts
}

// Call runs fn(ctx) unless the throttle refuses the call, and returns its
// error; or returns an error matching ErrThrottled without running fn. A nil
// fn is refused with an error, and counts nothing.
func (t *Throttle) Call(ctx context.Context, fn func(context.Context) error) error {
	if fn == nil {
		return errNilFunc
	}
	_, err := execute(t, ctx, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, fn(ctx)
	})
	return err
}

// execute is the one implementation of a throttled call, for Call and
// Policy.
func execute[T any](t *Throttle, ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		t.canceledEarly.Add(1)
		return zero, err
	}
	w := t.window.Load()
	if w == nil {
		w = t.wake()
	}
	if t.raised.Load() != t.cleared.Load() {
		if p, refused := t.refuse(w); refused {
			t.tel.rejected(ctx, p)
			return zero, t.errRefuse
		}
	}
	i := stripe.Hint(unsafe.Pointer(t.counts))
	s := &t.counts.s[i]
	s.requests.Add(1)
	if r, a := t.window1(i, w); r > t.k*a {
		t.raised.Add(1) // this stripe's requests outgrew K times its accepts
	}
	returned := false
	defer func() {
		if !returned {
			// fn or the predicate panicked (or called runtime.Goexit):
			// the dependency did not serve the call.
			t.failures.Add(1)
		}
	}()
	v, err := fn(ctx)
	switch {
	case err == nil:
		s.accepts.Add(1)
	case ctx.Err() != nil:
		s.ignored.Add(1)
	case t.isFailure != nil && !t.isFailure(err):
		s.accepts.Add(1)
	default:
		t.failures.Add(1)
	}
	returned = true
	return v, err
}

// refuse decides a call while the alarm is raised: it sums the stripes and
// draws against the probability, counting a refused call as a request, and
// returns the probability it drew against. It clears the alarm when it finds
// every stripe balanced.
func (t *Throttle) refuse(w *snapshot) (p float64, refused bool) {
	seen := t.raised.Load()
	p, balanced := t.probability(w)
	if balanced {
		t.cleared.Store(seen)
	}
	if p == 0 || t.draw() >= p {
		return p, false
	}
	t.counts.s[stripe.Hint(unsafe.Pointer(t.counts))].requests.Add(1)
	t.rejected.Add(1)
	return p, true
}

// draw returns a random number in [0, 1): splitmix64, one atomic add.
func (t *Throttle) draw() float64 {
	z := t.rng.Add(0x9e3779b97f4a7c15)
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	z ^= z >> 31
	return float64(z>>11) * 0x1p-53
}

// now returns every stripe's counts.
func (t *Throttle) now() snapshot {
	var s snapshot
	for i := range t.counts.s {
		c := &t.counts.s[i]
		s[i] = counts{requests: c.requests.Load(), accepts: c.accepts.Load(), ignored: c.ignored.Load()}
	}
	return s
}

// total returns the counts summed over the stripes.
func (s *snapshot) total() counts {
	var sum counts
	for _, c := range s {
		sum.requests += c.requests
		sum.accepts += c.accepts
		sum.ignored += c.ignored
	}
	return sum
}

// wake starts a window at the first call after the throttle was idle, and
// the timer that moves it on.
func (t *Throttle) wake() *snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	if w := t.window.Load(); w != nil {
		return w
	}
	start := t.now()
	t.marks = append(t.marks[:0], start)
	w := &start
	t.window.Store(w)
	if t.timer == nil {
		// The timer holds the throttle weakly: a dropped throttle is
		// garbage even while calls were coming, and its timer then stops.
		self := weak.Make(t)
		t.timer = time.AfterFunc(t.step, func() {
			if t := self.Value(); t != nil {
				t.tick()
			}
		})
	} else {
		t.timer.Reset(t.step)
	}
	return w
}

// tick moves the window on by a tenth: the counts now become the newest
// mark, and the window begins at the oldest kept. A stripe that forgetting
// old accepts leaves with more requests than K times its accepts raises the
// alarm. Once a whole window has passed without a request the throttle goes
// idle: its history is empty, and the timer stops until the next call.
func (t *Throttle) tick() {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if len(t.marks) == buckets {
		t.marks = append(t.marks[:0], t.marks[1:]...)
	}
	t.marks = append(t.marks, now)
	begin := t.marks[0]
	if now.total().requests == begin.total().requests {
		t.window.Store(nil)
		return
	}
	t.window.Store(&begin)
	for i := range t.counts.s {
		if r, a := t.window1(i, &begin); r > t.k*a {
			t.raised.Add(1)
			break
		}
	}
	t.timer.Reset(t.step)
}

// callCounts are a throttle's calls by outcome, for its metrics.
type callCounts struct {
	success, failure, rejected, ignored int64
}

func (t *Throttle) callCounts() callCounts {
	now := t.now()
	total := now.total()
	return callCounts{
		success:  total.accepts,
		failure:  t.failures.Load(),
		rejected: t.rejected.Load(),
		ignored:  total.ignored + t.canceledEarly.Load(),
	}
}
