package resilience

import (
	"context"
	"reflect"
	"runtime"
	"strconv"

	"github.com/levee-go/levee/internal/emit"
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
// safe for concurrent use if next is. A policy that reports telemetry
// implements TelemetryPolicy as well, to report under its pipeline's name.
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
// Wrap(fn, a, b, c) returns a.Apply(b.Apply(c.Apply(fn))). It is
// WrapWith with a zero Telemetry: the pipeline reports under the name and
// providers of its first breaker, or else under fn's name and the global
// providers.
func Wrap[T any](fn Func[T], policies ...Policy[T]) Func[T] {
	return wrap("Wrap", Telemetry{}, fn, policies)
}

// WrapWith returns fn guarded by policies, listed outermost first, as Wrap
// does, with every TelemetryPolicy among them (Timeout, fallbacks, retries,
// hedges) reporting under tel. Fields of tel left zero come from the first
// policy that is a TelemetrySource (a breaker's Policy), and otherwise the
// name of fn's function and the global providers.
//
// Each policy's Apply (or ApplyWith) runs once, here; calling the result
// runs no more than the policies' own per-call work. With no policies,
// WrapWith returns fn itself. A nil fn or policy, or a provider that is a
// nil pointer, is refused with a panic naming it. The result is safe for
// concurrent use when fn and the policies are.
func WrapWith[T any](tel Telemetry, fn Func[T], policies ...Policy[T]) Func[T] {
	return wrap("WrapWith", tel, fn, policies)
}

func wrap[T any](caller string, tel Telemetry, fn Func[T], policies []Policy[T]) Func[T] {
	if fn == nil {
		panic("levee: resilience." + caller + ": fn must not be nil")
	}
	if problem := checkProviders(tel); problem != "" {
		panic("levee: resilience." + caller + ": " + problem)
	}
	for i, p := range policies {
		if p == nil {
			panic("levee: resilience." + caller + ": policies[" + strconv.Itoa(i) + "] is nil")
		}
		if src, ok := p.(TelemetrySource); ok {
			tel = tel.orFrom(src.Telemetry())
		}
	}
	if len(policies) == 0 {
		return fn
	}
	if tel.Name == "" {
		tel.Name = funcName(fn)
	}
	for i := len(policies) - 1; i >= 0; i-- {
		fn = apply(policies[i], tel, fn)
		if fn == nil {
			panic("levee: resilience." + caller + ": policies[" + strconv.Itoa(i) + "].Apply returned a nil Func")
		}
	}
	return fn
}

// orFrom fills the zero fields of t from src.
func (t Telemetry) orFrom(src Telemetry) Telemetry {
	if t.Name == "" {
		t.Name = src.Name
	}
	if t.TracerProvider == nil {
		t.TracerProvider = src.TracerProvider
	}
	if t.MeterProvider == nil {
		t.MeterProvider = src.MeterProvider
	}
	return t
}

func checkProviders(tel Telemetry) string {
	if tel.TracerProvider != nil {
		if p := emit.CheckProvider("Telemetry.TracerProvider", tel.TracerProvider); p != "" {
			return p
		}
	}
	if tel.MeterProvider != nil {
		return emit.CheckProvider("Telemetry.MeterProvider", tel.MeterProvider)
	}
	return ""
}

// funcName is the name of fn's function ("example.com/shop.fetchPrice"): a
// pipeline given no name reports under it, so that two pipelines around
// different functions never share series.
func funcName(fn any) string {
	if f := runtime.FuncForPC(reflect.ValueOf(fn).Pointer()); f != nil && f.Name() != "" {
		return f.Name()
	}
	return "pipeline"
}

// Do runs fn once under policies, listed outermost first:
// Do(ctx, fn, a, b, c) runs a(b(c(fn)))(ctx). It builds the pipeline on
// every call, instruments included; to call the same pipeline many times,
// build it once with Wrap.
func Do[T any](ctx context.Context, fn Func[T], policies ...Policy[T]) (T, error) {
	return wrap("Do", Telemetry{}, fn, policies)(ctx)
}

func quote(s string) string { return strconv.Quote(s) }
