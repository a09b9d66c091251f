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

	"github.com/levee-go/levee/internal/emit"
	"github.com/levee-go/levee/telemetry"
)

// DefaultTimeoutName is the levee.policy.name of a Timeout applied outside
// any pipeline (its Apply called directly); in a pipeline it reports under
// the pipeline's name.
const DefaultTimeoutName = "timeout"

// TimeoutOption configures a Timeout policy.
type TimeoutOption func(*timeoutConfig)

type timeoutConfig struct {
	returnAtDeadline bool
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

// Timeout returns a policy that gives each call at most d: the function runs
// with a context whose deadline is d from the call's start.
//
// If that deadline fires first and the function fails, the call's error
// matches both ErrTimeout and context.DeadlineExceeded and wraps the
// function's own error. If the caller's own context ends first, the
// function's result comes back unchanged (not ErrTimeout): the caller gave
// up, the dependency did not time out. Which came first is decided by the
// contexts themselves, not by when the function noticed. A function that
// returns success after the deadline keeps its success. A call whose
// context is already done runs nothing and returns ctx.Err().
//
// Timeout is cooperative by default: the function must honour its context.
// See ReturnAtDeadline for functions that do not. Inside a circuit breaker, a
// Timeout makes slow calls count as failures.
//
// The Timeout reports under its pipeline's Telemetry (see WrapWith and
// Named): levee.timeout.exceeded, levee.timeout.abandoned and a span event.
// d must be positive; Timeout panics otherwise, naming the setting. The
// policy is safe for concurrent use; a policy value may be shared by many
// pipelines.
func Timeout[T any](d time.Duration, opts ...TimeoutOption) Policy[T] {
	var problems []string
	if d <= 0 {
		problems = append(problems, fmt.Sprintf("d: the timeout must be positive, got %v", d))
	}
	var cfg timeoutConfig
	for i, opt := range opts {
		if opt == nil {
			problems = append(problems, fmt.Sprintf("option %d is nil", i))
			continue
		}
		opt(&cfg)
	}
	if len(problems) > 0 {
		panic("levee: resilience.Timeout: " + strings.Join(problems, "; "))
	}
	return timeoutPolicy[T]{d: d, returnAtDeadline: cfg.returnAtDeadline}
}

type timeoutPolicy[T any] struct {
	d                time.Duration
	returnAtDeadline bool
}

func (p timeoutPolicy[T]) Apply(next Func[T]) Func[T] { return p.ApplyWith(Telemetry{}, next) }

func (p timeoutPolicy[T]) ApplyWith(tel Telemetry, next Func[T]) Func[T] {
	c := newTimeoutCore(p.d, tel)
	if p.returnAtDeadline {
		return func(ctx context.Context) (T, error) { return callReturningAtDeadline(c, ctx, next) }
	}
	return func(ctx context.Context) (T, error) {
		if err := ctx.Err(); err != nil {
			var zero T
			return zero, err
		}
		tctx, cancel := context.WithTimeoutCause(ctx, c.d, errDeadline)
		defer cancel()
		v, err := next(tctx)
		if err != nil && context.Cause(tctx) == errDeadline {
			return v, c.timedOut(ctx, err)
		}
		return v, err
	}
}

// errDeadline is the cause a Timeout gives its own deadline, so that
// context.Cause tells it apart from the caller's context ending first.
var errDeadline = errors.New("levee: the timeout's own deadline")

// timeoutCore holds what does not depend on T, so every result type shares
// one implementation of the telemetry.
type timeoutCore struct {
	d          time.Duration
	name       string
	exceeded   metric.Int64Counter
	abandoned  metric.Int64Counter
	addOpts    []metric.AddOption
	eventAttrs []attribute.KeyValue
}

func newTimeoutCore(d time.Duration, tel Telemetry) *timeoutCore {
	if tel.Name == "" {
		tel.Name = DefaultTimeoutName
	}
	meter := tel.Meter()
	exceeded, err := meter.Int64Counter(telemetry.MetricTimeoutExceeded,
		metric.WithUnit(telemetry.UnitCall),
		metric.WithDescription("Calls whose timeout fired before the function returned."))
	emit.Handle(err)
	abandoned, err := meter.Int64Counter(telemetry.MetricTimeoutAbandoned,
		metric.WithUnit(telemetry.UnitCall),
		metric.WithDescription("Functions abandoned at a timeout's deadline or when their caller gave up, counted when they return and their result is dropped."))
	emit.Handle(err)
	name := telemetry.KeyPolicyName.String(tel.Name)
	return &timeoutCore{
		d:         d,
		name:      tel.Name,
		exceeded:  exceeded,
		abandoned: abandoned,
		addOpts:   []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(name))},
		eventAttrs: []attribute.KeyValue{
			name,
			telemetry.KeyTimeout.Float64(d.Seconds()),
			telemetry.KeyErrorType.String(telemetry.ErrorTypeTimeout),
		},
	}
}

func (c *timeoutCore) timedOut(ctx context.Context, err error) error {
	emit.Guard("timeout telemetry", func() {
		if c.exceeded != nil {
			c.exceeded.Add(ctx, 1, c.addOpts...)
		}
		emit.AddEvent(ctx, telemetry.EventTimeoutExceeded, c.eventAttrs...)
	})
	return &timeoutError{name: c.name, timeout: c.d, err: err}
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

func callReturningAtDeadline[T any](c *timeoutCore, ctx context.Context, next Func[T]) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	tctx, cancel := context.WithTimeoutCause(ctx, c.d, errDeadline)
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
			c.dropAbandoned(ctx, out.panicked, out.panicVal)
		}()
		out.v, out.err = next(tctx)
		returned = true
	}()

	select {
	case out := <-done:
		return finish(c, ctx, tctx, out)
	case <-tctx.Done():
	}
	if !owner.CompareAndSwap(ownerCaller, ownerAbandoned) {
		// The function returned as the deadline fired: its result is here.
		return finish(c, ctx, tctx, <-done)
	}
	if context.Cause(tctx) != errDeadline {
		return zero, ctx.Err()
	}
	return zero, c.timedOut(ctx, nil)
}

func finish[T any](c *timeoutCore, ctx, tctx context.Context, out outcome[T]) (T, error) {
	if out.panicked {
		if out.panicVal == nil {
			var zero T
			return zero, errGoexit
		}
		panic(out.panicVal)
	}
	if out.err != nil && context.Cause(tctx) == errDeadline {
		return out.v, c.timedOut(ctx, out.err)
	}
	return out.v, out.err
}

// dropAbandoned counts an abandoned function that has returned. Its result
// is dropped; a panic it raised cannot reach a caller any more and is handed
// to the OpenTelemetry error handler instead of crashing the process.
func (c *timeoutCore) dropAbandoned(ctx context.Context, panicked bool, panicVal any) {
	emit.Guard("timeout telemetry", func() {
		if c.abandoned != nil {
			c.abandoned.Add(context.WithoutCancel(ctx), 1, c.addOpts...)
		}
	})
	switch {
	case panicked && panicVal == nil:
		emit.Handle(fmt.Errorf("levee: timeout %q: abandoned function called runtime.Goexit", c.name))
	case panicked:
		emit.Handle(fmt.Errorf("levee: timeout %q: abandoned function panicked: %v", c.name, panicVal))
	}
}
