package bulkhead

import (
	"fmt"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/levee-go/levee/internal/emit"
)

// Option configures a Bulkhead at construction.
type Option func(*config)

type config struct {
	maxWait        time.Duration
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	problems       []string
}

func (c *config) refuse(problem string) { c.problems = append(c.problems, problem) }

// WithMaxWait lets a call that finds every slot taken wait for one, for at
// most d. Waiting calls are served first come, first served; a call whose
// wait runs out is rejected with an error matching ErrFull, and a call whose
// context ends while it waits returns the context's error. Default 0: a call
// that finds the bulkhead full is rejected at once. d must not be negative;
// New panics otherwise.
func WithMaxWait(d time.Duration) Option {
	return func(c *config) {
		if d < 0 {
			c.refuse(fmt.Sprintf("WithMaxWait: must not be negative, got %v", d))
		}
		c.maxWait = d
	}
}

// WithTracerProvider sets the TracerProvider of the pipelines that report
// under the bulkhead's telemetry (see resilience.TelemetrySource); the
// bulkhead's own events go on the caller's span. Default:
// otel.GetTracerProvider().
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) {
		if problem := emit.CheckProvider("WithTracerProvider", tp); problem != "" {
			c.refuse(problem)
		}
		c.tracerProvider = tp
	}
}

// WithMeterProvider sets where the bulkhead's metrics go. Default:
// otel.GetMeterProvider() at construction.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) {
		if problem := emit.CheckProvider("WithMeterProvider", mp); problem != "" {
			c.refuse(problem)
		}
		c.meterProvider = mp
	}
}
