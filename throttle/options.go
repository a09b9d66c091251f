package throttle

import (
	"fmt"
	"math"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/levee-go/levee/internal/emit"
)

// Defaults of a Throttle's settings.
const (
	// DefaultK is the multiplier of accepts: the throttle lets through
	// about K times what the dependency accepts.
	DefaultK = 2.0
	// DefaultWindow is how far back the throttle remembers requests and
	// accepts.
	DefaultWindow = 2 * time.Minute
	// buckets is how many steps the window moves by: a call counts for
	// between 9/10 of the window and the whole window after it was made.
	buckets = 10
	// minWindow keeps the window's timer from ticking too often.
	minWindow = 10 * time.Millisecond
)

// Option configures a Throttle at construction.
type Option func(*config)

type config struct {
	k              float64
	window         time.Duration
	isFailure      func(error) bool
	seed           uint64
	seeded         bool
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	problems       []string
}

func (c *config) refuse(problem string) { c.problems = append(c.problems, problem) }

// WithK sets the multiplier K of the rejection probability
// max(0, (requests - K·accepts) / (requests + 1)): the throttle lets
// through about K times what the dependency accepts. A smaller K sheds more,
// and sooner; K = 1 lets through no more than the dependency accepted, which
// leaves it few calls to show it has recovered. A larger K spends more of
// the dependency's work on calls it refuses, and sheds less. The SRE book
// advises 2. Default 2. k must be at least 1 (and finite); New panics
// otherwise.
func WithK(k float64) Option {
	return func(c *config) {
		if !(k >= 1) || math.IsInf(k, 1) {
			c.refuse(fmt.Sprintf("WithK: must be at least 1 and finite, got %v", k))
		}
		c.k = k
	}
}

// WithWindow sets how far back the throttle remembers requests and
// accepts: a call counts for between nine tenths of d and d after it was
// made. A short window reacts fast and forgets fast. Default 2 minutes. d
// must be at least 10ms; New panics otherwise.
func WithWindow(d time.Duration) Option {
	return func(c *config) {
		if d < minWindow {
			c.refuse(fmt.Sprintf("WithWindow: must be at least %v, got %v", minWindow, d))
		}
		c.window = d
	}
}

// WithIsFailure sets which errors mean the dependency did not accept the
// call. It is called with each non-nil error the guarded function returns;
// when it returns false the call counts as accepted (a "not found", a
// validation error: the dependency served it). Count as failures the errors
// that mean it is overloaded or down, such as an HTTP 429 or 503 or a gRPC
// RESOURCE_EXHAUSTED or UNAVAILABLE; a call whose caller's own context
// ended counts neither way, whatever isFailure says. Default: every non-nil
// error is a failure. isFailure must be safe for concurrent use and must not
// be nil; New panics otherwise.
func WithIsFailure(isFailure func(error) bool) Option {
	return func(c *config) {
		if isFailure == nil {
			c.refuse("WithIsFailure: isFailure must not be nil")
		}
		c.isFailure = isFailure
	}
}

// WithSeed makes the throttle's random decisions reproducible: two throttles
// with the same seed, given the same calls and results in the same order,
// refuse the same calls. For tests. Default: a random seed.
func WithSeed(seed uint64) Option {
	return func(c *config) { c.seed, c.seeded = seed, true }
}

// WithTracerProvider sets the TracerProvider of the pipelines that report
// under the throttle's telemetry (see resilience.TelemetrySource); the
// throttle's own events go on the caller's span. Default:
// otel.GetTracerProvider().
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) {
		if problem := emit.CheckProvider("WithTracerProvider", tp); problem != "" {
			c.refuse(problem)
		}
		c.tracerProvider = tp
	}
}

// WithMeterProvider sets where the throttle's metrics go. Default:
// otel.GetMeterProvider() at construction.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) {
		if problem := emit.CheckProvider("WithMeterProvider", mp); problem != "" {
			c.refuse(problem)
		}
		c.meterProvider = mp
	}
}
