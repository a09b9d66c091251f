package hedge

import (
	"fmt"
	"reflect"
	"time"

	"github.com/levee-go/levee/retry"
)

// Defaults and limits of a hedge policy's settings.
const (
	// DefaultMaxHedges is how many hedges a call may start beside its
	// first attempt.
	DefaultMaxHedges = 1
	// MaxHedgesLimit is the most WithMaxHedges accepts: beyond a few
	// hedges a call only multiplies the load (gRPC stops at 4), and the
	// levee.hedge.attempt attribute stays a small enumeration.
	MaxHedgesLimit = 10
	// minQuantileSamples is how many latencies the window must hold before
	// WithQuantileDelay's estimate replaces the delay given to Policy.
	minQuantileSamples = 100
)

// Option configures a hedge policy at construction.
type Option func(*config)

type config struct {
	maxHedges int
	release   any // a func(T), checked against T by Policy
	quantile  float64
	window    time.Duration
	budget    *retry.Budget
	problems  []string
}

func (c *config) refuse(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// WithMaxHedges sets how many hedges a call may start beside its first
// attempt: one after each further hedge delay, for as long as no attempt
// has succeeded and one is still running. Default 1. n must be between 1
// and MaxHedgesLimit (10); Policy panics otherwise.
func WithMaxHedges(n int) Option {
	return func(c *config) {
		if n < 1 || n > MaxHedgesLimit {
			c.refuse("WithMaxHedges: must be between 1 and %d, got %d", MaxHedgesLimit, n)
		}
		c.maxHedges = n
	}
}

// WithRelease gives the function that releases a result the call does not
// return: the success of an attempt that lost, arriving after the winner's
// (an *http.Response whose body must be closed, a connection to put back).
// It is called once per dropped result, in the goroutine of the attempt
// that produced it; a panic in it is reported to otel.Handle. Failed
// attempts' results are not passed to it. Default: none, dropped results are
// left to the garbage collector. release must not be nil, and must take the
// policy's result type; Policy panics otherwise.
//
//	hedge.Policy[*http.Response](50*time.Millisecond,
//		hedge.WithRelease(func(r *http.Response) { r.Body.Close() }))
//
// A hedge inside a leveehttp.Transport needs none: the Transport closes
// every response its caller does not get, late or not, failed or not.
func WithRelease[T any](release func(T)) Option {
	return func(c *config) {
		if release == nil {
			c.refuse("WithRelease: release must not be nil")
		}
		c.release = release
	}
}

// WithQuantileDelay makes the hedge delay the q-quantile of the recent
// latencies of the calls' first attempts, instead of a fixed delay: with
// q = 0.95 a call hedges only when its first attempt is slower than 95% of
// recent ones, so hedges add about 5% to the load (The Tail at Scale, Dean
// and Barroso, 2013). The delay given to Policy is used until the window
// holds 100 latencies.
//
// Latencies are kept for window (between half of it and all of it: two
// halves rotate) in a histogram of fixed size, 8 buckets per power of two
// from 1µs to 37 minutes (about 2 KiB per pipeline), and the estimate is the
// upper edge of its bucket: within 12.5% above the true quantile. A first
// attempt that lost to a hedge counts with the time it ran until then, a
// lower bound of its latency, so that hedging does not talk the estimate
// down; failed first attempts do not count. Measuring costs two clock reads
// per call.
//
// q must be in (0, 1) and window positive; Policy panics otherwise.
func WithQuantileDelay(q float64, window time.Duration) Option {
	return func(c *config) {
		if !(q > 0 && q < 1) {
			c.refuse("WithQuantileDelay: q must be in (0, 1), got %v", q)
		}
		if window <= 0 {
			c.refuse("WithQuantileDelay: window must be positive, got %v", window)
		}
		c.quantile, c.window = q, window
	}
}

// WithBudget makes every hedge draw from b, the budget retries draw from
// (see retry.NewBudget): each call deposits its first attempt, each hedge
// withdraws, and a hedge the budget refuses is not started; the call goes
// on with the attempts it has. Hedges then add to a dependency's load no
// more than the budget allows, together with the retries of every pipeline
// that holds it.
//
// Inside a retry that holds the same budget, every attempt of the retry is
// a call to the hedge and deposits there too: such a pipeline earns about
// twice the ratio; give it half. Default: no budget. b must not be nil;
// Policy panics otherwise.
func WithBudget(b *retry.Budget) Option {
	return func(c *config) {
		if b == nil {
			c.refuse("WithBudget: budget must not be nil")
		}
		c.budget = b
	}
}

// releaseFor returns the release function of cfg for results of type T, or
// nil, and refuses a function of another type.
func releaseFor[T any](cfg *config) func(T) {
	if cfg.release == nil {
		return nil
	}
	release, ok := cfg.release.(func(T))
	if !ok {
		var zero T
		cfg.refuse("WithRelease: release is a %T, the policy's results are %v", cfg.release, reflect.TypeOf(&zero).Elem())
	}
	return release
}
