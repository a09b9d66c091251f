package resilience_test

import (
	"context"
	"errors"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/internal/testkit"
	"github.com/levee-go/levee/resilience"
)

var errBoom = errors.New("boom")

// countingPolicy counts how often it is applied and how often the Func it
// returned is called.
type countingPolicy struct {
	applied, calls atomic.Int64
}

func (p *countingPolicy) Apply(next resilience.Func[int]) resilience.Func[int] {
	p.applied.Add(1)
	return func(ctx context.Context) (int, error) {
		p.calls.Add(1)
		return next(ctx)
	}
}

func TestWrap_AppliesEachPolicyOnceNotPerCall(t *testing.T) {
	a, b, c := &countingPolicy{}, &countingPolicy{}, &countingPolicy{}
	fn := func(context.Context) (int, error) { return 1, nil }

	wrapped := resilience.Wrap(fn, a, b, c)
	for range 100 {
		_, err := wrapped(context.Background())
		require.NoError(t, err)
	}

	for i, p := range []*countingPolicy{a, b, c} {
		assert.Equal(t, int64(1), p.applied.Load(), "policies[%d] applied", i)
		assert.Equal(t, int64(100), p.calls.Load(), "policies[%d] called", i)
	}
}

// tracing returns a policy that records when a call enters and leaves it.
func tracing(name string, log *[]string) resilience.Policy[string] {
	return resilience.PolicyFunc[string](func(next resilience.Func[string]) resilience.Func[string] {
		return func(ctx context.Context) (string, error) {
			*log = append(*log, name+" enter")
			v, err := next(ctx)
			*log = append(*log, name+" exit")
			return name + "(" + v + ")", err
		}
	})
}

func TestDo_RunsPoliciesOutermostFirst(t *testing.T) {
	var log []string
	fn := func(context.Context) (string, error) {
		log = append(log, "fn")
		return "fn", nil
	}

	v, err := resilience.Do(context.Background(), fn, tracing("a", &log), tracing("b", &log), tracing("c", &log))

	require.NoError(t, err)
	assert.Equal(t, "a(b(c(fn)))", v)
	assert.Equal(t, []string{"a enter", "b enter", "c enter", "fn", "c exit", "b exit", "a exit"}, log)
}

func TestWrap_BuildsTheSameChainAsDo(t *testing.T) {
	var log []string
	fn := func(context.Context) (string, error) { return "fn", nil }

	v, err := resilience.Wrap(fn, tracing("outer", &log), tracing("inner", &log))(context.Background())

	require.NoError(t, err)
	assert.Equal(t, "outer(inner(fn))", v)
}

func TestWrap_WithNoPoliciesReturnsFnItself(t *testing.T) {
	type key struct{}
	var gotCtx any
	fn := resilience.Func[int](func(ctx context.Context) (int, error) {
		gotCtx = ctx.Value(key{})
		return 7, errBoom
	})

	wrapped := resilience.Wrap(fn)
	v, err := wrapped(context.WithValue(context.Background(), key{}, "v"))

	assert.Equal(t, 7, v)
	assert.Same(t, errBoom, err)
	assert.Equal(t, "v", gotCtx)
	assert.Equal(t, reflect.ValueOf(fn).Pointer(), reflect.ValueOf(wrapped).Pointer())
}

func TestDo_PassesTheContextAndReturnsTheResult(t *testing.T) {
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, 42)
	v, err := resilience.Do(ctx, func(ctx context.Context) (int, error) {
		return ctx.Value(key{}).(int), errBoom
	}, resilience.PolicyFunc[int](func(next resilience.Func[int]) resilience.Func[int] { return next }))

	assert.Equal(t, 42, v)
	assert.Same(t, errBoom, err)
}

func TestWrap_PanicsNamingTheProblemAndItsPosition(t *testing.T) {
	fn := func(context.Context) (int, error) { return 0, nil }
	pass := resilience.PolicyFunc[int](func(next resilience.Func[int]) resilience.Func[int] { return next })
	returnsNil := resilience.PolicyFunc[int](func(resilience.Func[int]) resilience.Func[int] { return nil })

	tests := []struct {
		name string
		wrap func()
		want string
	}{
		{"nil fn", func() { resilience.Wrap[int](nil, pass) }, "levee: resilience.Wrap: fn must not be nil"},
		{"nil policy", func() { resilience.Wrap(fn, pass, nil, pass) }, "levee: resilience.Wrap: policies[1] is nil"},
		{"Apply returns nil", func() { resilience.Wrap(fn, returnsNil, pass) }, "levee: resilience.Wrap: policies[0].Apply returned a nil Func"},
		{"Do with a nil policy", func() { _, _ = resilience.Do(context.Background(), fn, nil) }, "levee: resilience.Do: policies[0] is nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, testkit.PanicMessage(t, tt.wrap))
		})
	}
}

func TestPolicyFunc_ApplyCallsTheFunctionWithNext(t *testing.T) {
	var gotNext resilience.Func[int]
	next := resilience.Func[int](func(context.Context) (int, error) { return 3, nil })
	replacement := resilience.Func[int](func(context.Context) (int, error) { return 4, nil })
	p := resilience.PolicyFunc[int](func(n resilience.Func[int]) resilience.Func[int] {
		gotNext = n
		return replacement
	})

	got := p.Apply(next)

	require.NotNil(t, gotNext)
	v, _ := gotNext(context.Background())
	assert.Equal(t, 3, v, "Apply hands next to the function")
	v, _ = got(context.Background())
	assert.Equal(t, 4, v, "Apply returns what the function returns")
}
