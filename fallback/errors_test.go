package fallback_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/fallback"
	"github.com/levee-go/levee/resilience"
)

// Errors are never lost: whatever policies guard a call, in whatever order,
// errors.Is and errors.As reach the user's own error. These tests build
// every ordered arrangement of every subset of four policies (a breaker, a
// timeout, a fallback whose If does not match, and a user's PolicyFunc that
// wraps errors), 65 pipelines, and check each.

// permQueryError is the user's own error type.
type permQueryError struct {
	table string
	cause error
}

func (e *permQueryError) Error() string { return "query on " + e.table + ": " + e.cause.Error() }
func (e *permQueryError) Unwrap() error { return e.cause }

var (
	errPermDisk      = errors.New("disk on fire")  // the cause inside the user's error
	errPermUnrelated = errors.New("unrelated")     // what the pass-through fallback handles
	errPermCustom    = errors.New("custom policy") // what the user's policy wraps errors with
	errPermFallback  = errors.New("fallback down") // the failing fallback's own error
)

// permPolicy builds one kind of policy for one pipeline; each pipeline gets
// fresh policies so that no breaker state leaks between cases.
type permPolicy struct {
	name string
	make func(timeout time.Duration) resilience.Policy[string]
}

var permPolicies = []permPolicy{
	{"breaker", func(time.Duration) resilience.Policy[string] {
		return breaker.Policy[string](breaker.New("perm", breaker.WithFailureThreshold(100)))
	}},
	{"timeout", func(d time.Duration) resilience.Policy[string] {
		return resilience.Timeout[string](d)
	}},
	{"fallback", func(time.Duration) resilience.Policy[string] {
		return fallback.Value("unused", fallback.If(func(err error) bool { return errors.Is(err, errPermUnrelated) }))
	}},
	{"custom", func(time.Duration) resilience.Policy[string] {
		return resilience.PolicyFunc[string](func(next resilience.Func[string]) resilience.Func[string] {
			return func(ctx context.Context) (string, error) {
				v, err := next(ctx)
				if err != nil {
					return v, fmt.Errorf("%w: %w", errPermCustom, err)
				}
				return v, nil
			}
		})
	}},
}

// permArrangements returns every ordered arrangement of every subset of n
// items, as index lists: 1 + n + n(n-1) + ... + n! of them.
func permArrangements(n int) [][]int {
	var out [][]int
	var build func(prefix []int, used uint)
	build = func(prefix []int, used uint) {
		out = append(out, append([]int(nil), prefix...))
		for i := range n {
			if used&(1<<i) == 0 {
				build(append(prefix, i), used|1<<i)
			}
		}
	}
	build(nil, 0)
	return out
}

// permPipeline builds the pipeline for one arrangement around fn, and names
// it. override, when not nil, may supply the policy at a position instead.
func permPipeline(arrangement []int, timeout time.Duration, fn resilience.Func[string], override func(at int) resilience.Policy[string]) (resilience.Func[string], string, bool) {
	policies := make([]resilience.Policy[string], 0, len(arrangement))
	names := make([]string, 0, len(arrangement))
	hasTimeout := false
	for at, i := range arrangement {
		p := permPolicies[i].make(timeout)
		if override != nil {
			if o := override(at); o != nil {
				p = o
			}
		}
		policies = append(policies, p)
		names = append(names, permPolicies[i].name)
		hasTimeout = hasTimeout || permPolicies[i].name == "timeout"
	}
	name := strings.Join(names, ">")
	if name == "" {
		name = "none"
	}
	return resilience.Wrap(fn, policies...), name, hasTimeout
}

// requireUserError requires that err lets errors.Is and errors.As reach the
// user's error and its cause.
func requireUserError(t *testing.T, err error) {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, errPermDisk, "errors.Is reaches the cause inside the user's error: %v", err)
	var qe *permQueryError
	require.ErrorAs(t, err, &qe, "errors.As reaches the user's error type: %v", err)
	assert.Equal(t, "orders", qe.table)
}

func TestErrors_ReachTheUsersErrorThroughEveryOrderOfPolicies(t *testing.T) {
	t.Parallel()
	arrangements := permArrangements(len(permPolicies))
	require.Len(t, arrangements, 65)
	for _, arrangement := range arrangements {
		get, name, _ := permPipeline(arrangement, time.Hour, func(context.Context) (string, error) {
			return "", &permQueryError{table: "orders", cause: errPermDisk}
		}, nil)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := get(context.Background())
			requireUserError(t, err)
			assert.NotErrorIs(t, err, resilience.ErrTimeout)
			assert.NotErrorIs(t, err, breaker.ErrOpen)
		})
	}
}

// When the timeout fires and the function returns its own error (wrapping
// the context's), the caller's error matches ErrTimeout and still reaches
// the user's error, wherever the timeout sits.
func TestErrors_ReachTheUsersErrorWhenTheTimeoutFires(t *testing.T) {
	t.Parallel()
	for _, arrangement := range permArrangements(len(permPolicies)) {
		get, name, hasTimeout := permPipeline(arrangement, time.Millisecond, func(ctx context.Context) (string, error) {
			<-ctx.Done()
			return "", &permQueryError{table: "orders", cause: fmt.Errorf("%w (%w)", errPermDisk, ctx.Err())}
		}, nil)
		if !hasTimeout {
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := get(context.Background())
			requireUserError(t, err)
			assert.ErrorIs(t, err, resilience.ErrTimeout)
			assert.ErrorIs(t, err, context.DeadlineExceeded)
		})
	}
}

// A fallback whose own function fails reports both errors, as
// fallback.Error documents: errors.Is and errors.As find the fallback's
// error and the original one, in every order of the other policies around
// and inside it.
func TestErrors_FailingFallbackReportsTheOriginalErrorInEveryOrder(t *testing.T) {
	t.Parallel()
	for _, arrangement := range permArrangements(len(permPolicies)) {
		fallbackAt := -1
		for i, p := range arrangement {
			if permPolicies[p].name == "fallback" {
				fallbackAt = i
			}
		}
		if fallbackAt < 0 {
			continue
		}
		// The pass-through fallback becomes one that handles the error and
		// fails too.
		var gotOriginal error
		failing := resilience.Named("cache", fallback.Func(func(_ context.Context, err error) (string, error) {
			gotOriginal = err
			return "", fmt.Errorf("cache: %w", errPermFallback)
		}))
		get, name, _ := permPipeline(arrangement, time.Hour, func(context.Context) (string, error) {
			return "", &permQueryError{table: "orders", cause: errPermDisk}
		}, func(at int) resilience.Policy[string] {
			if at == fallbackAt {
				return failing
			}
			return nil
		})
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			v, err := get(context.Background())
			assert.Empty(t, v)
			requireUserError(t, err)
			requireUserError(t, gotOriginal) // the fallback received the original error
			assert.ErrorIs(t, err, errPermFallback, "the fallback's own error")
			var fbErr *fallback.Error
			require.ErrorAs(t, err, &fbErr)
			assert.Equal(t, "cache", fbErr.Name)
			assert.ErrorIs(t, fbErr.Err, errPermFallback)
			requireUserError(t, fbErr.Original)
			assert.Contains(t, err.Error(), "fallback down")
			assert.Contains(t, err.Error(), "disk on fire", "the message names the original error too")
		})
	}
}
