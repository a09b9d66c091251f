package dashboard

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/bulkhead"
	"github.com/levee-go/levee/ratelimit"
	"github.com/levee-go/levee/throttle"
)

// Defaults of the options.
const (
	// DefaultInterval is how often a connected page gets a fresh snapshot.
	DefaultInterval = time.Second
	// DefaultTimeline is how far back a breaker's timeline reaches.
	DefaultTimeline = 10 * time.Minute
	// DefaultMaxClients is how many pages may stream at once.
	DefaultMaxClients = 32
	// DefaultPageSize is how many policies one snapshot holds unless the
	// request asks for another number (at most MaxPageSize).
	DefaultPageSize = 50
	// MaxPageSize is the most policies one snapshot holds.
	MaxPageSize = 500
	// maxTransitions is how many transitions each breaker keeps.
	maxTransitions = 64
	// maxCounted bounds the retry and hedge names the dashboard counts:
	// names are usually a handful, and a bug that makes them unbounded
	// must not grow memory without limit.
	maxCounted = 10000
)

// Dashboard is a live web page showing the policies registered with it:
// every breaker's state, the calls of every breaker, bulkhead, rate limit
// and throttle by outcome and their rates, retries and hedges, and each
// breaker's transitions as a timeline. It is an http.Handler: mount it as
// net/http/pprof is mounted, under a path that ends with a slash.
//
//	d := dashboard.New()
//	payments := d.NewBreaker("payments")
//	mux.Handle("/debug/levee/", d) // behind your own authentication
//
// Register policies with NewBreaker, or with AddBreaker, AddBulkhead,
// AddLimiter and AddThrottle for policies made elsewhere; retries and hedges
// are seen through MeterProvider. The dashboard holds its policies weakly: a
// policy nobody else references is garbage, and leaves the page.
//
// It costs nothing while no one is watching: it starts no goroutine, and
// reads the policies' own counters only when a page or a client asks. A
// breaker's transitions reach it through its state-change listener
// (NewBreaker wires it; RecordStateChange is the listener to give a breaker
// made elsewhere). Operator controls (force open, reset) are off unless
// WithControls gives an authorization function.
//
// A Dashboard is safe for concurrent use. Create one with New; the zero
// value is not usable.
type Dashboard struct {
	interval   time.Duration
	timeline   time.Duration
	maxClients int64
	authorize  func(*http.Request) bool
	token      string // the CSRF token the page sends with each control
	title      string

	mu      sync.RWMutex
	entries map[entryKey]*entry
	counted int // retry and hedge entries

	clients atomic.Int64
	// changed is closed, and replaced, when a breaker changes state, to
	// wake the streams. Guarded by changeMu.
	changeMu sync.Mutex
	changed  chan struct{}
	closed   chan struct{}
	close    sync.Once
}

// Option configures a Dashboard.
type Option func(*config)

type config struct {
	interval   time.Duration
	timeline   time.Duration
	maxClients int
	authorize  func(*http.Request) bool
	title      string
	problems   []string
}

// WithControls turns the operator controls on: buttons that force a breaker
// open and reset it. authorize decides, for each control request, whether
// it may act; it runs after the request has been checked to be a same-origin
// POST carrying the page's CSRF token. Default: no controls; every control
// request is refused with 403. authorize must not be nil.
func WithControls(authorize func(*http.Request) bool) Option {
	return func(c *config) {
		if authorize == nil {
			c.problems = append(c.problems, "WithControls: authorize must not be nil")
		}
		c.authorize = authorize
	}
}

// WithInterval sets how often a connected page gets a fresh snapshot; a
// breaker's transition is pushed at once regardless. Default
// DefaultInterval (1s); at least 100ms.
func WithInterval(d time.Duration) Option {
	return func(c *config) {
		if d < 100*time.Millisecond {
			c.problems = append(c.problems, "WithInterval: interval must be at least 100ms, got "+d.String())
		}
		c.interval = d
	}
}

// WithTimeline sets how far back a breaker's timeline reaches. Default
// DefaultTimeline (10 minutes); at least a minute.
func WithTimeline(d time.Duration) Option {
	return func(c *config) {
		if d < time.Minute {
			c.problems = append(c.problems, "WithTimeline: timeline must be at least 1m, got "+d.String())
		}
		c.timeline = d
	}
}

// WithMaxClients sets how many pages may stream updates at once; a stream
// beyond them is refused with 503. Default DefaultMaxClients (32); at least 1.
func WithMaxClients(n int) Option {
	return func(c *config) {
		if n < 1 {
			c.problems = append(c.problems, "WithMaxClients: n must be at least 1, got "+strconv.Itoa(n))
		}
		c.maxClients = n
	}
}

// WithTitle sets the page's title, to tell services apart. Default "levee".
func WithTitle(title string) Option {
	return func(c *config) { c.title = title }
}

// New returns a Dashboard with no policies. Invalid options panic, naming
// the option.
func New(opts ...Option) *Dashboard {
	cfg := config{interval: DefaultInterval, timeline: DefaultTimeline, maxClients: DefaultMaxClients, title: "levee"}
	for i, opt := range opts {
		if opt == nil {
			cfg.problems = append(cfg.problems, "option "+strconv.Itoa(i)+" is nil")
			continue
		}
		opt(&cfg)
	}
	if len(cfg.problems) > 0 {
		panic("levee: dashboard.New: " + strings.Join(cfg.problems, "; "))
	}
	var token [16]byte
	_, _ = rand.Read(token[:]) // crypto/rand.Read never fails
	return &Dashboard{
		interval:   cfg.interval,
		timeline:   cfg.timeline,
		maxClients: int64(cfg.maxClients),
		authorize:  cfg.authorize,
		token:      hex.EncodeToString(token[:]),
		title:      cfg.title,
		entries:    make(map[entryKey]*entry),
		changed:    make(chan struct{}),
		closed:     make(chan struct{}),
	}
}

// Close ends the streams of the pages connected now and refuses new ones,
// so that an http.Server's Shutdown does not wait for them. The JSON
// snapshot stays available. Safe to call more than once.
func (d *Dashboard) Close() {
	d.close.Do(func() { close(d.closed) })
}

// NewBreaker returns breaker.New(name, opts...) with the dashboard's
// state-change listener added, registered with the dashboard: its
// transitions reach the timeline as they happen.
func (d *Dashboard) NewBreaker(name string, opts ...breaker.Option) *breaker.Breaker {
	all := append(opts[:len(opts):len(opts)], breaker.WithStateChangeListener(d.RecordStateChange))
	b := breaker.New(name, all...)
	d.addBreaker(b, true)
	return b
}

// AddBreaker registers breakers made elsewhere. Give them
// breaker.WithStateChangeListener(d.RecordStateChange) when you create them
// for an exact timeline; without it the dashboard sees only the changes a
// watching page happens to observe between two snapshots. A breaker
// registered under the name of another replaces it on the page.
func (d *Dashboard) AddBreaker(bs ...*breaker.Breaker) {
	for _, b := range bs {
		d.addBreaker(b, false)
	}
}

func (d *Dashboard) addBreaker(b *breaker.Breaker, listened bool) {
	if b == nil {
		panic("levee: dashboard.AddBreaker: breaker must not be nil")
	}
	wp := weak.Make(b)
	e := &entry{key: entryKey{kindBreaker, b.Name()}, listened: listened}
	e.read = func() (reading, bool) {
		b := wp.Value()
		if b == nil {
			return reading{}, false
		}
		return readBreaker(b), true
	}
	e.control = func(r *http.Request, action string) (string, bool) {
		b := wp.Value()
		if b == nil {
			return "", false
		}
		switch action {
		case actionForceOpen:
			b.ForceOpen(r.Context())
		case actionReset:
			b.Reset(r.Context())
		}
		return b.State().String(), true
	}
	d.add(b, e)
}

// AddBulkhead registers bulkheads. A bulkhead registered under the name of
// another replaces it on the page.
func (d *Dashboard) AddBulkhead(bs ...*bulkhead.Bulkhead) {
	for _, b := range bs {
		if b == nil {
			panic("levee: dashboard.AddBulkhead: bulkhead must not be nil")
		}
		wp := weak.Make(b)
		d.add(b, &entry{key: entryKey{kindBulkhead, b.Name()}, read: func() (reading, bool) {
			b := wp.Value()
			if b == nil {
				return reading{}, false
			}
			return readBulkhead(b), true
		}})
	}
}

// AddLimiter registers rate limiters. A limiter registered under the name
// of another replaces it on the page.
func (d *Dashboard) AddLimiter(ls ...*ratelimit.Limiter) {
	for _, l := range ls {
		if l == nil {
			panic("levee: dashboard.AddLimiter: limiter must not be nil")
		}
		wp := weak.Make(l)
		d.add(l, &entry{key: entryKey{kindRateLimit, l.Name()}, read: func() (reading, bool) {
			l := wp.Value()
			if l == nil {
				return reading{}, false
			}
			return readLimiter(l), true
		}})
	}
}

// AddThrottle registers throttles. A throttle registered under the name of
// another replaces it on the page.
func (d *Dashboard) AddThrottle(ts ...*throttle.Throttle) {
	for _, t := range ts {
		if t == nil {
			panic("levee: dashboard.AddThrottle: throttle must not be nil")
		}
		wp := weak.Make(t)
		d.add(t, &entry{key: entryKey{kindThrottle, t.Name()}, read: func() (reading, bool) {
			t := wp.Value()
			if t == nil {
				return reading{}, false
			}
			return readThrottle(t), true
		}})
	}
}

// add registers e for policy p, and removes it once p is garbage.
func add[P any](d *Dashboard, p *P, e *entry) {
	d.mu.Lock()
	d.entries[e.key] = e
	d.mu.Unlock()
	runtime.AddCleanup(p, func(e *entry) { d.remove(e) }, e)
}

func (d *Dashboard) add(p any, e *entry) {
	switch p := p.(type) {
	case *breaker.Breaker:
		add(d, p, e)
	case *bulkhead.Bulkhead:
		add(d, p, e)
	case *ratelimit.Limiter:
		add(d, p, e)
	case *throttle.Throttle:
		add(d, p, e)
	}
}

// remove drops e, unless another entry has replaced it.
func (d *Dashboard) remove(e *entry) {
	d.mu.Lock()
	if d.entries[e.key] == e {
		delete(d.entries, e.key)
	}
	d.mu.Unlock()
}

// RecordStateChange records a breaker's transition on its timeline and
// pushes it to the connected pages at once. It is a state-change listener:
// give it to breakers made elsewhere with
// breaker.WithStateChangeListener(d.RecordStateChange), and register them
// with AddBreaker. Changes of a breaker not registered are dropped. Safe for
// concurrent use; it takes a lock briefly and never blocks.
func (d *Dashboard) RecordStateChange(c breaker.StateChange) {
	d.mu.RLock()
	e := d.entries[entryKey{kindBreaker, c.Name}]
	d.mu.RUnlock()
	if e == nil {
		return
	}
	e.mu.Lock()
	if !e.listened {
		// From now on the listener tells: what was observed goes.
		e.listened = true
		e.transitions = e.transitions[:0]
	}
	e.addTransition(Transition{At: c.At, From: c.From.String(), To: c.To.String(), Forced: c.Forced, Rule: c.TripRule})
	e.mu.Unlock()
	d.notify()
}

// notify wakes the streams.
func (d *Dashboard) notify() {
	d.changeMu.Lock()
	close(d.changed)
	d.changed = make(chan struct{})
	d.changeMu.Unlock()
}

func (d *Dashboard) changes() <-chan struct{} {
	d.changeMu.Lock()
	defer d.changeMu.Unlock()
	return d.changed
}
