package resilience

import (
	"context"
	"strconv"
)

// Func is a call that a policy guards: it takes a context and returns a
// result or an error. Any function of that shape can be guarded; wrap a
// function of another shape in a closure.
type Func[T any] func(ctx context.Context) (T, error)

// Policy wraps a Func in another of the same type, adding behaviour around
// the call: a breaker, a fallback, a timeout, or one of your own.
//
// Apply is called once per pipeline, when Wrap builds it, never per call:
// work that can be done ahead (attribute sets, instruments) belongs in
// Apply or in the policy's constructor. The Func that Apply returns must be
// safe for concurrent use if next is.
type Policy[T any] interface {
	Apply(next Func[T]) Func[T]
}

// PolicyFunc adapts an ordinary function to the Policy interface, as
// http.HandlerFunc does for http.Handler:
//
//	logErrors := resilience.PolicyFunc[string](func(next resilience.Func[string]) resilience.Func[string] {
//		return func(ctx context.Context) (string, error) {
//			v, err := next(ctx)
//			if err != nil {
//				log.Printf("call failed: %v", err)
//			}
//			return v, err
//		}
//	})
type PolicyFunc[T any] func(next Func[T]) Func[T]

// Apply calls f(next).
func (f PolicyFunc[T]) Apply(next Func[T]) Func[T] { return f(next) }

// Wrap returns fn guarded by policies, listed outermost first:
// Wrap(fn, a, b, c) returns a.Apply(b.Apply(c.Apply(fn))). Each policy's
// Apply runs once, here; calling the result runs no more than the policies'
// own per-call work. With no policies, Wrap returns fn itself. A nil policy
// is refused with a panic naming its position. The result is safe for
// concurrent use when fn and the policies are.
func Wrap[T any](fn Func[T], policies ...Policy[T]) Func[T] {
	if fn == nil {
		panic("levee: resilience.Wrap: fn must not be nil")
	}
	for i := len(policies) - 1; i >= 0; i-- {
		p := policies[i]
		if p == nil {
			panic("levee: resilience.Wrap: policies[" + strconv.Itoa(i) + "] is nil")
		}
		fn = p.Apply(fn)
		if fn == nil {
			panic("levee: resilience.Wrap: policies[" + strconv.Itoa(i) + "].Apply returned a nil Func")
		}
	}
	return fn
}

// Do runs fn once under policies, listed outermost first:
// Do(ctx, fn, a, b, c) runs a(b(c(fn)))(ctx). It builds the pipeline on
// every call; to call the same pipeline many times, build it once with Wrap.
func Do[T any](ctx context.Context, fn Func[T], policies ...Policy[T]) (T, error) {
	return Wrap(fn, policies...)(ctx)
}
