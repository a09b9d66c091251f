package resilience

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/levee-go/levee/telemetry"
)

// DefaultTimeoutName is the levee.policy.name of a Timeout given no WithName.
const DefaultTimeoutName = "timeout"

// TimeoutOption configures a Timeout policy.
type TimeoutOption func(*timeoutConfig)

type timeoutConfig struct {
	name             string
	returnAtDeadline bool
	tracerProvider   trace.TracerProvider
	meterProvider    metric.MeterProvider
	problems         []string
}

func (c *timeoutConfig) refuse(problem string) { c.problems = append(c.problems, problem) }

// WithName sets the Timeout's instance name, reported as levee.policy.name.
// Default "timeout". An empty name is refused with a panic at construction.
func WithName(name string) TimeoutOption {
	return func(c *timeoutConfig) {
		if name == "" {
			c.refuse("WithName: name must not be empty")
		}
		c.name = name
	}
}

// ReturnAtDeadline makes the Timeout return ErrTimeout as soon as its
// deadline passes, even when the function ignores its context. The function
// then runs in a goroutine of its own; once the deadline passes, or the
// caller's own context ends first, it is abandoned: it runs to its end, its
// result is dropped, and it is counted in levee.timeout.abandoned when it
// returns. The goroutine ends when the function returns; nothing else is
// left behind.
//
// A panic in the function re-panics in the caller with the same value while
// the caller waits; once the function is abandoned no caller is left to
// receive it, so it is reported to otel.Handle instead of crashing the
// process. A function that calls runtime.Goexit (as t.FailNow does) ends the
// call with an error saying so.
//
// Default off: the Timeout is cooperative, runs the function in the caller's
// goroutine and returns when the function does (a function that honours its
// context returns promptly at the deadline). ReturnAtDeadline costs a
// goroutine and a channel per call; use it only for functions that cannot
// be made to honour their context.
func ReturnAtDeadline() TimeoutOption {
	return func(c *timeoutConfig) { c.returnAtDeadline = true }
}

// WithTracerProvider is accepted so that every levee policy is configured
// alike. A Timeout starts no span of its own: its levee.timeout.exceeded
// event goes on the caller's span. Default: otel.GetTracerProvider(); must
// not be nil.
func WithTracerProvider(tp trace.TracerProvider) TimeoutOption {
	return func(c *timeoutConfig) {
		if tp == nil {
			c.refuse("WithTracerProvider: provider must not be nil")
		}
		c.tracerProvider = tp
	}
}

// WithMeterProvider sets where the Timeout's metrics
// (levee.timeout.exceeded, levee.timeout.abandoned) go.
// Default: otel.GetMeterProvider() at construction.
func WithMeterProvider(mp metric.MeterProvider) TimeoutOption {
	return func(c *timeoutConfig) {
		if mp == nil {
			c.refuse("WithMeterProvider: provider must not be nil")
		}
		c.meterProvider = mp
	}
}

// Timeout returns a policy that gives each call at most d: the function runs
// with a context whose deadline is d from the call's start.
//
// If that deadline fires and the function fails, the call's error matches
// both ErrTimeout and context.DeadlineExceeded and wraps the function's own
// error. If the caller's own context ends first, the function's result comes
// back unchanged (not ErrTimeout): the caller gave up, the dependency did not
// time out. A function that returns success after the deadline keeps its
// success.
//
// Timeout is cooperative by default: the function must honour its context.
// See ReturnAtDeadline for functions that do not. Inside a circuit breaker, a
// Timeout makes slow calls count as failures.
//
// d must be positive; Timeout panics otherwise, naming the setting. The
// policy is safe for concurrent use; a policy value may be shared by many
// pipelines.
func Timeout[T any](d time.Duration, opts ...TimeoutOption) Policy[T] {
	cfg := timeoutConfig{name: DefaultTimeoutName}
	if d <= 0 {
		cfg.refuse(fmt.Sprintf("d: the timeout must be positive, got %v", d))
	}
	for i, opt := range opts {
		if opt == nil {
			cfg.refuse(fmt.Sprintf("option %d is nil", i))
			continue
		}
		opt(&cfg)
	}
	if len(cfg.problems) > 0 {
		panic("levee: resilience.Timeout: " + strings.Join(cfg.problems, "; "))
	}
	return &timeoutPolicy[T]{timeoutCore: newTimeoutCore(d, cfg)}
}

// timeoutCore holds what does not depend on T, so every result type shares
// one implementation of the telemetry.
type timeoutCore struct {
	d                time.Duration
	name             string
	returnAtDeadline bool
	exceeded         metric.Int64Counter
	abandoned        metric.Int64Counter
	addOpts          []metric.AddOption
	eventAttrs       []attribute.KeyValue
}

func newTimeoutCore(d time.Duration, cfg timeoutConfig) *timeoutCore {
	meter := telemetry.Meter(cfg.meterProvider)
	exceeded, err := meter.Int64Counter(telemetry.MetricTimeoutExceeded,
		metric.WithUnit(telemetry.UnitCall),
		metric.WithDescription("Calls whose timeout fired before the function returned."))
	telemetry.Handle(err)
	abandoned, err := meter.Int64Counter(telemetry.MetricTimeoutAbandoned,
		metric.WithUnit(telemetry.UnitCall),
		metric.WithDescription("Functions abandoned at a timeout's deadline or when their caller gave up, counted when they return and their result is dropped."))
	telemetry.Handle(err)
	name := telemetry.KeyPolicyName.String(cfg.name)
	return &timeoutCore{
		d:                d,
		name:             cfg.name,
		returnAtDeadline: cfg.returnAtDeadline,
		exceeded:         exceeded,
		abandoned:        abandoned,
		addOpts:          []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(name))},
		eventAttrs: []attribute.KeyValue{
			name,
			telemetry.KeyTimeout.Float64(d.Seconds()),
			telemetry.KeyErrorType.String(telemetry.ErrorTypeTimeout),
		},
	}
}

func (c *timeoutCore) timedOut(ctx context.Context, err error) error {
	if c.exceeded != nil {
		c.exceeded.Add(ctx, 1, c.addOpts...)
	}
	telemetry.AddEvent(ctx, telemetry.EventTimeoutExceeded, c.eventAttrs...)
	return &timeoutError{name: c.name, timeout: c.d, err: err}
}

type timeoutPolicy[T any] struct{ *timeoutCore }

func (p *timeoutPolicy[T]) Apply(next Func[T]) Func[T] {
	if p.returnAtDeadline {
		return func(ctx context.Context) (T, error) { return p.callReturningAtDeadline(ctx, next) }
	}
	return func(ctx context.Context) (T, error) {
		tctx, cancel := context.WithTimeout(ctx, p.d)
		defer cancel()
		v, err := next(tctx)
		if err != nil && tctx.Err() != nil && ctx.Err() == nil {
			return v, p.timedOut(ctx, err)
		}
		return v, err
	}
}

type outcome[T any] struct {
	v        T
	err      error
	panicked bool
	panicVal any
}

// Who owns a call run by ReturnAtDeadline: the waiting caller, or, once the
// deadline has passed, the goroutine that finishes it alone.
const (
	ownerCaller int32 = iota
	ownerFinished
	ownerAbandoned
)

var errGoexit = errors.New("levee: the function called runtime.Goexit")

func (p *timeoutPolicy[T]) callReturningAtDeadline(ctx context.Context, next Func[T]) (T, error) {
	tctx, cancel := context.WithTimeout(ctx, p.d)
	defer cancel()
	done := make(chan outcome[T], 1)
	var owner atomic.Int32
	go func() {
		var out outcome[T]
		returned := false
		defer func() {
			if !returned {
				out.panicked = true
				out.panicVal = recover()
			}
			if owner.CompareAndSwap(ownerCaller, ownerFinished) {
				done <- out
				return
			}
			p.dropAbandoned(ctx, out.panicked, out.panicVal)
		}()
		out.v, out.err = next(tctx)
		returned = true
	}()

	select {
	case out := <-done:
		return p.finish(ctx, tctx, out)
	case <-tctx.Done():
	}
	if !owner.CompareAndSwap(ownerCaller, ownerAbandoned) {
		// The function returned as the deadline fired: its result is here.
		return p.finish(ctx, tctx, <-done)
	}
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	return zero, p.timedOut(ctx, nil)
}

func (p *timeoutPolicy[T]) finish(ctx, tctx context.Context, out outcome[T]) (T, error) {
	if out.panicked {
		if out.panicVal == nil {
			var zero T
			return zero, errGoexit
		}
		panic(out.panicVal)
	}
	if out.err != nil && tctx.Err() != nil && ctx.Err() == nil {
		return out.v, p.timedOut(ctx, out.err)
	}
	return out.v, out.err
}

// dropAbandoned counts an abandoned function that has returned. Its result
// is dropped; a panic it raised cannot reach a caller any more and is handed
// to the OpenTelemetry error handler instead of crashing the process.
func (c *timeoutCore) dropAbandoned(ctx context.Context, panicked bool, panicVal any) {
	if c.abandoned != nil {
		c.abandoned.Add(context.WithoutCancel(ctx), 1, c.addOpts...)
	}
	switch {
	case panicked && panicVal == nil:
		telemetry.Handle(fmt.Errorf("levee: timeout %q: abandoned function called runtime.Goexit", c.name))
	case panicked:
		telemetry.Handle(fmt.Errorf("levee: timeout %q: abandoned function panicked: %v", c.name, panicVal))
	}
}
