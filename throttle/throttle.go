package throttle

import (
	"context"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"weak"
)

// cacheLine is the size the hot atomics are padded to.
const cacheLine = 64

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
// The counts are cumulative atomics; the window is their values at each
// tenth of it, taken by a timer that runs only while calls come, so a call
// reads no clock. A call through a healthy dependency (one that accepts at
// least one call in K) takes no lock, allocates nothing and does no
// OpenTelemetry work: a few atomic loads, one add before the call and one
// after. A refused call allocates nothing either.
//
// A Throttle is safe for concurrent use by any number of goroutines and
// starts no goroutine; its timer stops once a whole window has passed
// without a call. Create one with New; the zero value is not usable. A
// Throttle nobody references any more is garbage, timer and metrics
// registration included.
type Throttle struct {
	_ [cacheLine]byte
	// requests counts every call the throttle decided, refused ones
	// included; accepts those the dependency accepted. Both only grow.
	requests atomic.Int64
	accepts  atomic.Int64
	_        [cacheLine - 16]byte
	// ignored counts the calls whose caller's context ended: they were
	// counted as requests, and are taken out again.
	ignored  atomic.Int64
	rejected atomic.Int64
	failures atomic.Int64
	// window is the counts when the window began, nil while the throttle
	// is idle (its timer stopped).
	window atomic.Pointer[counts]
	// rng is the state of a splitmix64 generator: each draw adds to it.
	rng atomic.Uint64
	_   [cacheLine]byte

	name      string
	k         float64
	isFailure func(error) bool
	step      time.Duration // a tenth of the window
	errRefuse error

	// mu guards the marks and the timer.
	mu sync.Mutex
	// marks are the counts at the last buckets ticks, oldest first: the
	// first is where the window begins.
	marks []counts
	timer *time.Timer

	tel *instruments
}

// counts are the cumulative counts at one moment.
type counts struct {
	requests, accepts, ignored int64
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
		name:      name,
		k:         cfg.k,
		isFailure: cfg.isFailure,
		step:      cfg.window / buckets,
		errRefuse: &throttledError{name: name},
		marks:     make([]counts, 0, buckets),
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
	return t.probability(w)
}

// probability is max(0, (requests - K·accepts) / (requests + 1)) over the
// window that began at w.
func (t *Throttle) probability(w *counts) float64 {
	requests := float64(t.requests.Load() - t.ignored.Load() - (w.requests - w.ignored))
	accepts := float64(t.accepts.Load() - w.accepts)
	if requests <= t.k*accepts {
		return 0
	}
	return (requests - t.k*accepts) / (requests + 1)
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
		t.requests.Add(1)
		t.ignored.Add(1)
		return zero, err
	}
	w := t.window.Load()
	if w == nil {
		w = t.wake()
	}
	if p := t.probability(w); p > 0 && t.draw() < p {
		t.requests.Add(1)
		t.rejected.Add(1)
		t.tel.rejected(ctx, p)
		return zero, t.errRefuse
	}
	t.requests.Add(1)
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
		t.accepts.Add(1)
	case ctx.Err() != nil:
		t.ignored.Add(1)
	case t.isFailure != nil && !t.isFailure(err):
		t.accepts.Add(1)
	default:
		t.failures.Add(1)
	}
	returned = true
	return v, err
}

// draw returns a random number in [0, 1): splitmix64, one atomic add.
func (t *Throttle) draw() float64 {
	z := t.rng.Add(0x9e3779b97f4a7c15)
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	z ^= z >> 31
	return float64(z>>11) * 0x1p-53
}

// now returns the cumulative counts.
func (t *Throttle) now() counts {
	return counts{requests: t.requests.Load(), accepts: t.accepts.Load(), ignored: t.ignored.Load()}
}

// wake starts a window at the first call after the throttle was idle, and
// the timer that moves it on.
func (t *Throttle) wake() *counts {
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
// mark, and the window begins at the oldest kept. Once a whole window has
// passed without a request the throttle goes idle: its history is empty,
// and the timer stops until the next call.
func (t *Throttle) tick() {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if len(t.marks) == buckets {
		t.marks = append(t.marks[:0], t.marks[1:]...)
	}
	t.marks = append(t.marks, now)
	begin := t.marks[0]
	if now.requests == begin.requests {
		t.window.Store(nil)
		return
	}
	t.window.Store(&begin)
	t.timer.Reset(t.step)
}

// callCounts are a throttle's calls by outcome, for its metrics.
type callCounts struct {
	success, failure, rejected, ignored int64
}

func (t *Throttle) counts() callCounts {
	return callCounts{
		success:  t.accepts.Load(),
		failure:  t.failures.Load(),
		rejected: t.rejected.Load(),
		ignored:  t.ignored.Load(),
	}
}
