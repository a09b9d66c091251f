package ratelimit

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/levee-go/levee/internal/emit"
)

// DefaultMaxKeys is how many keys a keyed Limiter tracks at most, unless
// WithMaxKeys says otherwise.
const DefaultMaxKeys = 100_000

// Option configures a Limiter at construction.
type Option func(*config)

type config struct {
	burst          int
	smooth         bool
	maxWait        time.Duration
	key            func(context.Context) string
	keyGiven       bool
	maxKeys        int
	maxKeysGiven   bool
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	problems       []string
}

func (c *config) refuse(problem string) { c.problems = append(c.problems, problem) }

// WithBurst sets how many calls may pass at once after a quiet spell: the
// bucket's size. The long-run rate stays n per period whatever the burst.
// Default n. burst must be at least 1; New panics otherwise, and when Smooth
// is given too.
func WithBurst(burst int) Option {
	return func(c *config) {
		if burst < 1 {
			c.refuse(fmt.Sprintf("WithBurst: must be at least 1, got %d", burst))
		}
		c.burst = burst
	}
}

// Smooth spaces calls evenly: one per period/n, never a burst. Calls closer
// together than that are rejected, or, with WithMaxWait, wait for their turn,
// so that callers arriving together leave one by one at the limit's pace. It
// is a bucket of one token; New panics when WithBurst is given too.
func Smooth() Option {
	return func(c *config) { c.smooth = true }
}

// WithMaxWait lets a call that finds no token wait for one, when its token
// will come within d and before its context's deadline; a call whose token
// would come later is rejected at once, without waiting for nothing. A call
// whose context ends while it waits returns the context's error, and its
// token goes back to the bucket unless later calls have reserved theirs
// after it. Default 0: a call that finds no token is rejected at once. d
// must not be negative; New panics otherwise.
func WithMaxWait(d time.Duration) Option {
	return func(c *config) {
		if d < 0 {
			c.refuse(fmt.Sprintf("WithMaxWait: must not be negative, got %v", d))
		}
		c.maxWait = d
	}
}

// WithKey gives every key its own limit of n calls per period: key is called
// with each call's context and returns the call's key (a tenant, a user, a
// client's address). Every string is a key, the empty one included. key must
// be fast and safe for concurrent use, and must not be nil; New panics
// otherwise.
//
// A key nobody has called for long enough to have its whole burst back is
// forgotten, which changes nothing: a key the limiter does not know starts
// with a full bucket anyway. WithMaxKeys bounds how many keys are kept.
// Keys never become metric attributes.
func WithKey(key func(ctx context.Context) string) Option {
	return func(c *config) {
		if key == nil {
			c.refuse("WithKey: key must not be nil")
		}
		c.key, c.keyGiven = key, true
	}
}

// WithMaxKeys bounds how many keys a keyed limiter tracks. Default
// DefaultMaxKeys (100 000; a key costs about 50 bytes, whatever its
// length, and a limiter at the default maximum about 5 MB).
//
// Past the bound, when a call brings a key the limiter does not track and
// it finds no room (idle keys are dropped first), that call is decided by
// one overflow limit, n per period with the same burst, shared by every key
// not tracked. Tracked keys keep their own limits, and a flood of new keys
// (spoofed addresses, a scan) gets one key's worth of calls between them
// instead of a full bucket each. Overflow decisions are counted by
// levee.rate_limit.key_overflow. As keys go idle the limiter makes room for
// new ones again.
//
// max must be at least 1, and needs WithKey; New panics otherwise.
func WithMaxKeys(max int) Option {
	return func(c *config) {
		if max < 1 {
			c.refuse(fmt.Sprintf("WithMaxKeys: must be at least 1, got %d", max))
		}
		c.maxKeys, c.maxKeysGiven = max, true
	}
}

// WithTracerProvider sets the TracerProvider of the pipelines that report
// under the limiter's telemetry (see resilience.TelemetrySource); the
// limiter's own events go on the caller's span. Default:
// otel.GetTracerProvider().
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) {
		if problem := emit.CheckProvider("WithTracerProvider", tp); problem != "" {
			c.refuse(problem)
		}
		c.tracerProvider = tp
	}
}

// WithMeterProvider sets where the limiter's metrics go. Default:
// otel.GetMeterProvider() at construction.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) {
		if problem := emit.CheckProvider("WithMeterProvider", mp); problem != "" {
			c.refuse(problem)
		}
		c.meterProvider = mp
	}
}
