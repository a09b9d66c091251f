package fallback

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"unsafe"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/levee-go/levee/internal/emit"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/telemetry"
)

// DefaultName is the levee.policy.name of a fallback applied outside any
// pipeline (its Apply called directly); in a pipeline it reports under the
// pipeline's name (see resilience.WrapWith and resilience.Named).
const DefaultName = "fallback"

// Option configures a fallback at construction.
type Option func(*config)

type config struct {
	handles  func(error) bool
	problems []string
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

// Value returns a policy that answers v, with no error, when the call fails
// with an error it handles (every error unless If says otherwise) and the
// caller is still there: a call whose own context has ended gets its error,
// never a fallback.
// Invalid options panic at construction, naming the option. The policy is
// safe for concurrent use; v is returned as is, so share only values that
// callers do not modify.
func Value[T any](v T, opts ...Option) resilience.Policy[T] {
	return newPolicy("fallback.Value", func(context.Context, error) (T, error) { return v, nil }, opts)
}

// Func returns a policy that calls f with the call's context and error when
// the call fails with an error it handles (every error unless If says
// otherwise) and the caller's context has not ended, and returns what f
// returns: the caller gets f's result and error.
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
	var cfg config
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
	return &policy[T]{handles: cfg.handles, f: f}
}

// core is what does not depend on T: the predicate and the telemetry.
type core struct {
	name       string
	handles    func(error) bool
	executions metric.Int64Counter
	nameAttr   attribute.KeyValue
	// reports holds, by error.type value, the attributes of an execution,
	// so that a fallback answering every call of an outage allocates
	// nothing to report it: levee's own values and plain errors' are built
	// ahead, others at their first execution. The map is never modified
	// once published; a new one replaces it.
	reports atomic.Pointer[map[string]*report]
}

// maxReports bounds the error.type values whose report a fallback keeps. A
// program has finitely many error types, so the bound is never reached
// unless an ErrorTyper breaks its contract; beyond it, reports are built
// per execution.
const maxReports = 64

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

func newCore(tel resilience.Telemetry, handles func(error) bool) *core {
	if tel.Name == "" {
		tel.Name = DefaultName
	}
	executions, err := tel.Meter().Int64Counter(telemetry.MetricFallbackExecutions,
		metric.WithUnit(telemetry.UnitCall),
		metric.WithDescription("Calls answered by a fallback, by the type of the error replaced."))
	emit.Handle(err)
	nameAttr := telemetry.KeyPolicyName.String(tel.Name)
	reports := make(map[string]*report)
	for _, errorType := range []string{telemetry.ErrorTypeCircuitOpen, telemetry.ErrorTypeTimeout, telemetry.ErrorTypeCanceled, plainErrorType} {
		reports[errorType] = newReport(nameAttr, errorType)
	}
	c := &core{
		name:       tel.Name,
		handles:    handles,
		executions: executions,
		nameAttr:   nameAttr,
	}
	c.reports.Store(&reports)
	return c
}

// plainErrorType is the error.type of errors.New and of fmt.Errorf without
// %w: the commonest failure there is.
var plainErrorType = telemetry.ErrorType(errors.New(""))

// reportFor returns the report of an execution for errorType.
func (c *core) reportFor(errorType string) *report {
	reports := c.reports.Load()
	if r, ok := (*reports)[errorType]; ok {
		return r
	}
	r := newReport(c.nameAttr, errorType)
	if len(*reports) < maxReports {
		next := make(map[string]*report, len(*reports)+1)
		maps.Copy(next, *reports)
		next[errorType] = r
		c.reports.CompareAndSwap(reports, &next) // losing a race costs one more build later
	}
	return r
}

func (c *core) executed(ctx context.Context, err error) {
	r := c.reportFor(telemetry.ErrorType(err))
	emit.Guard("fallback telemetry", func() {
		if c.executions != nil {
			c.executions.Add(ctx, 1, r.addOpts...)
		}
		emit.AddEvent(ctx, telemetry.EventFallbackExecuted, r.eventAttrs...)
	})
}

type policy[T any] struct {
	handles func(error) bool
	f       func(context.Context, error) (T, error)
}

func (p *policy[T]) Apply(next resilience.Func[T]) resilience.Func[T] {
	return p.ApplyWith(resilience.Telemetry{}, next)
}

// ApplyWith builds the fallback of one pipeline, reporting under tel.
func (p *policy[T]) ApplyWith(tel resilience.Telemetry, next resilience.Func[T]) resilience.Func[T] {
	c := newCore(tel, p.handles)
	return func(ctx context.Context) (T, error) {
		if err := ctx.Err(); err != nil {
			var zero T
			return zero, err
		}
		v, err := next(ctx)
		if err == nil || ctx.Err() != nil || (c.handles != nil && !c.handles(err)) {
			return v, err
		}
		c.executed(ctx, err)
		fv, ferr := p.f(ctx, err)
		if ferr != nil && !sameError(ferr, err) {
			return fv, &Error{Name: c.name, Err: ferr, Original: err}
		}
		return fv, ferr
	}
}

// sameError reports whether a and b are the same error value, without the
// panic that == raises on errors of an uncomparable type (a slice of
// errors, as validators return) or on a struct holding such a value.
func sameError(a, b error) (same bool) {
	if identical(a, b) {
		return true // f returned the error it was given: nothing to compare
	}
	ta, tb := reflect.TypeOf(a), reflect.TypeOf(b)
	if ta != tb {
		return false
	}
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	switch ta.Kind() {
	case reflect.Slice:
		return va.Len() == vb.Len() && va.Pointer() == vb.Pointer()
	case reflect.Map:
		return va.Pointer() == vb.Pointer()
	}
	// A comparable type may still hold an uncomparable value (a struct
	// with an interface field): == panics then, and two values that are
	// not identical count as different.
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a == b
}

// identical reports whether a and b are one interface value, the same
// dynamic type and the same data word, as when f returns the very error it
// was given. Unlike ==, it never panics, whatever the type holds.
func identical(a, b error) bool {
	type iface struct{ typ, data unsafe.Pointer }
	return *(*iface)(unsafe.Pointer(&a)) == *(*iface)(unsafe.Pointer(&b))
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
	return "levee: fallback " + strconv.Quote(e.Name) + " failed: " + e.Err.Error() + " (after: " + e.Original.Error() + ")"
}

// Unwrap returns the fallback's error and the original error, in that order.
func (e *Error) Unwrap() []error { return []error{e.Err, e.Original} }
