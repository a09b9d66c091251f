package fallback

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/telemetry"
)

// DefaultName is the levee.policy.name of a fallback given no WithName.
const DefaultName = "fallback"

// Option configures a fallback at construction.
type Option func(*config)

type config struct {
	name           string
	handles        func(error) bool
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	problems       []string
}

// If restricts the fallback to errors for which pred returns true; other
// errors pass through unchanged. Default: every non-nil error, including a
// breaker's rejections and timeouts. pred is called only with non-nil
// errors, must be safe for concurrent use, and must not be nil.
func If(pred func(error) bool) Option {
	return func(c *config) {
		if pred == nil {
			c.problems = append(c.problems, "If: pred must not be nil")
		}
		c.handles = pred
	}
}

// WithName sets the fallback's instance name, reported as levee.policy.name.
// Default "fallback"; must not be empty.
func WithName(name string) Option {
	return func(c *config) {
		if name == "" {
			c.problems = append(c.problems, "WithName: name must not be empty")
		}
		c.name = name
	}
}

// WithTracerProvider is accepted so that every levee policy is configured
// alike. A fallback starts no span of its own: its levee.fallback.executed
// event goes on the caller's span, whatever provider made it. Default:
// otel.GetTracerProvider(); must not be nil.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) {
		if tp == nil {
			c.problems = append(c.problems, "WithTracerProvider: provider must not be nil")
		}
		c.tracerProvider = tp
	}
}

// WithMeterProvider sets where levee.fallback.executions goes. Default:
// otel.GetMeterProvider() at construction.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) {
		if mp == nil {
			c.problems = append(c.problems, "WithMeterProvider: provider must not be nil")
		}
		c.meterProvider = mp
	}
}

// Value returns a policy that answers v, with no error, when the call fails
// with an error it handles (every error unless If says otherwise).
// Invalid options panic at construction, naming the option. The policy is
// safe for concurrent use; v is returned as is, so share only values that
// callers do not modify.
func Value[T any](v T, opts ...Option) resilience.Policy[T] {
	return newPolicy("fallback.Value", func(context.Context, error) (T, error) { return v, nil }, opts)
}

// Func returns a policy that calls f with the call's context and error when
// the call fails with an error it handles (every error unless If says
// otherwise), and returns what f returns: the caller gets f's result and
// error.
//
// When f fails too, the caller's error wraps both f's error and the original
// one, so that errors.Is and errors.As find either; its message names both.
// If f returns the original error itself, it is returned unchanged. A panic
// in f propagates to the caller. f must not be nil; invalid options panic at
// construction, naming the option. The policy is safe for concurrent use if
// f is.
func Func[T any](f func(ctx context.Context, err error) (T, error), opts ...Option) resilience.Policy[T] {
	if f == nil {
		panic("levee: fallback.Func: f must not be nil")
	}
	return newPolicy("fallback.Func", f, opts)
}

func newPolicy[T any](ctor string, f func(context.Context, error) (T, error), opts []Option) *policy[T] {
	cfg := config{name: DefaultName}
	for i, opt := range opts {
		if opt == nil {
			cfg.problems = append(cfg.problems, fmt.Sprintf("option %d is nil", i))
			continue
		}
		opt(&cfg)
	}
	if len(cfg.problems) > 0 {
		panic(fmt.Sprintf("levee: %s: %s", ctor, strings.Join(cfg.problems, "; ")))
	}
	return &policy[T]{core: newCore(cfg), f: f}
}

// core is what does not depend on T: the predicate and the telemetry.
type core struct {
	name       string
	handles    func(error) bool
	executions metric.Int64Counter
	nameAttr   attribute.KeyValue
	// reports holds, for the error.type values of levee's own errors, the
	// attributes of an execution built ahead, so that a fallback answering
	// for an open breaker or a timeout allocates nothing to report it.
	// Read-only after construction.
	reports map[string]*report
}

// report is what one execution reports for one error.type value.
type report struct {
	addOpts    []metric.AddOption
	eventAttrs []attribute.KeyValue
}

func newReport(nameAttr attribute.KeyValue, errorType string) *report {
	attrs := []attribute.KeyValue{nameAttr, telemetry.KeyErrorType.String(errorType)}
	return &report{
		addOpts:    []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(slices.Clone(attrs)...))}, // NewSet sorts its argument
		eventAttrs: attrs,
	}
}

func newCore(cfg config) *core {
	executions, err := telemetry.Meter(cfg.meterProvider).Int64Counter(telemetry.MetricFallbackExecutions,
		metric.WithUnit(telemetry.UnitCall),
		metric.WithDescription("Calls answered by a fallback, by the type of the error replaced."))
	telemetry.Handle(err)
	nameAttr := telemetry.KeyPolicyName.String(cfg.name)
	reports := make(map[string]*report)
	for _, errorType := range []string{telemetry.ErrorTypeCircuitOpen, telemetry.ErrorTypeTimeout, telemetry.ErrorTypeCanceled, telemetry.ErrorTypeOther} {
		reports[errorType] = newReport(nameAttr, errorType)
	}
	return &core{
		name:       cfg.name,
		handles:    cfg.handles,
		executions: executions,
		nameAttr:   nameAttr,
		reports:    reports,
	}
}

func (c *core) executed(ctx context.Context, err error) {
	errorType := telemetry.ErrorType(err)
	r, ok := c.reports[errorType]
	if !ok {
		r = newReport(c.nameAttr, errorType) // a user's error type
	}
	if c.executions != nil {
		c.executions.Add(ctx, 1, r.addOpts...)
	}
	telemetry.AddEvent(ctx, telemetry.EventFallbackExecuted, r.eventAttrs...)
}

type policy[T any] struct {
	*core
	f func(context.Context, error) (T, error)
}

func (p *policy[T]) Apply(next resilience.Func[T]) resilience.Func[T] {
	return func(ctx context.Context) (T, error) {
		v, err := next(ctx)
		if err == nil || (p.handles != nil && !p.handles(err)) {
			return v, err
		}
		p.executed(ctx, err)
		fv, ferr := p.f(ctx, err)
		if ferr != nil && ferr != err {
			return fv, &Error{Name: p.name, Err: ferr, Original: err}
		}
		return fv, ferr
	}
}

// Error is returned when a fallback's function fails too. It wraps both
// errors: errors.Is and errors.As find the fallback's error and the original
// one.
type Error struct {
	// Name is the fallback's name.
	Name string
	// Err is the fallback function's error.
	Err error
	// Original is the error the fallback was called for.
	Original error
}

// Error names both errors.
func (e *Error) Error() string {
	return "levee: fallback " + e.Name + " failed: " + e.Err.Error() + " (after: " + e.Original.Error() + ")"
}

// Unwrap returns the fallback's error and the original error, in that order.
func (e *Error) Unwrap() []error { return []error{e.Err, e.Original} }
