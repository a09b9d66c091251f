package fallback_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/fallback"
	"github.com/levee-go/levee/internal/testkit"
	"github.com/levee-go/levee/resilience"
)

var (
	errBoom     = errors.New("boom")
	errNotFound = errors.New("not found")
	errCache    = errors.New("cache miss")
)

// quotaError is an error of a type of the user's own.
type quotaError struct{}

func (*quotaError) Error() string { return "quota exceeded" }

func failWith(err error) resilience.Func[string] {
	return func(context.Context) (string, error) { return "partial", err }
}

func TestValue_AnswersOnAnyError(t *testing.T) {
	b := breaker.New("dep")
	b.ForceOpen(context.Background())
	rejection := b.Call(context.Background(), func(context.Context) error { return nil })
	require.ErrorIs(t, rejection, breaker.ErrOpen)
	_, timeout := resilience.Do(context.Background(), func(ctx context.Context) (string, error) {
		<-ctx.Done()
		return "", ctx.Err()
	}, resilience.Timeout[string](time.Millisecond))
	require.ErrorIs(t, timeout, resilience.ErrTimeout)

	// context.Canceled from the function, not from the caller's own
	// context (which is live): the fallback answers it too.
	for _, err := range []error{errBoom, fmt.Errorf("wrapped: %w", errNotFound), &quotaError{}, rejection, timeout, context.Canceled} {
		t.Run(err.Error(), func(t *testing.T) {
			v, got := resilience.Do(context.Background(), failWith(err), fallback.Value("default"))
			assert.NoError(t, got)
			assert.Equal(t, "default", v)
		})
	}
}

func TestValue_SuccessPassesThrough(t *testing.T) {
	v, err := resilience.Do(context.Background(), func(context.Context) (string, error) { return "fresh", nil }, fallback.Value("default"))
	require.NoError(t, err)
	assert.Equal(t, "fresh", v)
}

func TestFunc_SuccessPassesThroughWithoutCallingF(t *testing.T) {
	calls := 0
	f := func(context.Context, error) (string, error) { calls++; return "fallback", nil }

	v, err := resilience.Do(context.Background(), func(context.Context) (string, error) { return "fresh", nil }, fallback.Func(f))

	require.NoError(t, err)
	assert.Equal(t, "fresh", v)
	assert.Zero(t, calls)
}

func TestIf_RestrictsWhichErrorsAreHandled(t *testing.T) {
	onlyNotFound := fallback.If(func(err error) bool {
		assert.Error(t, err, "the predicate sees only errors")
		return errors.Is(err, errNotFound)
	})
	for name, newPolicy := range map[string]func() resilience.Policy[string]{
		"Value": func() resilience.Policy[string] { return fallback.Value("default", onlyNotFound) },
		"Func": func() resilience.Policy[string] {
			return fallback.Func(func(context.Context, error) (string, error) { return "default", nil }, onlyNotFound)
		},
	} {
		t.Run(name, func(t *testing.T) {
			policy := newPolicy()

			v, err := resilience.Do(context.Background(), failWith(fmt.Errorf("user 7: %w", errNotFound)), policy)
			assert.NoError(t, err)
			assert.Equal(t, "default", v, "a matching error is handled")

			v, err = resilience.Do(context.Background(), failWith(errBoom), policy)
			assert.Same(t, errBoom, err, "another error passes through unchanged")
			assert.Equal(t, "partial", v, "with the call's own value")

			v, err = resilience.Do(context.Background(), func(context.Context) (string, error) { return "fresh", nil }, policy)
			assert.NoError(t, err)
			assert.Equal(t, "fresh", v)
		})
	}
}

func TestFunc_ReceivesTheOriginalErrorAndContext(t *testing.T) {
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, "request-7")
	original := fmt.Errorf("db: %w", errBoom)
	var gotErr error
	var gotValue any

	_, err := resilience.Do(ctx, failWith(original), fallback.Func(func(ctx context.Context, err error) (string, error) {
		gotErr, gotValue = err, ctx.Value(key{})
		return "cached", nil
	}))

	require.NoError(t, err)
	assert.Same(t, original, gotErr)
	assert.Equal(t, "request-7", gotValue)
}

func TestFunc_ResultAndErrorReachTheCaller(t *testing.T) {
	v, err := resilience.Do(context.Background(), failWith(errBoom), fallback.Func(func(context.Context, error) (string, error) {
		return "cached", nil
	}))
	require.NoError(t, err)
	assert.Equal(t, "cached", v)
}

func TestFunc_FailingFallbackWrapsBothErrors(t *testing.T) {
	v, err := resilience.WrapWith(resilience.Telemetry{Name: "prices"}, failWith(errBoom), fallback.Func(func(context.Context, error) (string, error) {
		return "stale", errCache
	}))(context.Background())

	require.Error(t, err)
	assert.Equal(t, "stale", v, "the fallback's value comes back with its error")
	assert.ErrorIs(t, err, errCache)
	assert.ErrorIs(t, err, errBoom)
	var fbErr *fallback.Error
	require.ErrorAs(t, err, &fbErr)
	assert.Equal(t, "prices", fbErr.Name)
	assert.Same(t, errCache, fbErr.Err)
	assert.Same(t, errBoom, fbErr.Original)
	assert.Equal(t, `levee: fallback "prices" failed: cache miss (after: boom)`, err.Error(), "the name quoted")
}

func TestFunc_FailingFallbackKeepsTheBreakersRejectionReachable(t *testing.T) {
	b := breaker.New("dep")
	b.ForceOpen(context.Background())

	_, err := resilience.Do(context.Background(), failWith(nil), fallback.Func(func(context.Context, error) (string, error) {
		return "", errCache
	}), breaker.Policy[string](b))

	assert.ErrorIs(t, err, breaker.ErrOpen)
	var openErr *breaker.OpenError
	assert.ErrorAs(t, err, &openErr)
	assert.ErrorIs(t, err, errCache)
}

func TestFunc_ReturningTheOriginalErrorReturnsItUnchanged(t *testing.T) {
	v, err := resilience.Do(context.Background(), failWith(errBoom), fallback.Func(func(_ context.Context, err error) (string, error) {
		return "ignored?", err
	}))

	assert.Same(t, errBoom, err)
	assert.Equal(t, "ignored?", v)
}

func TestFunc_PanicInFPropagates(t *testing.T) {
	value := &struct{ reason string }{"kaboom"}
	var recovered any
	func() {
		defer func() { recovered = recover() }()
		_, _ = resilience.Do(context.Background(), failWith(errBoom), fallback.Func(func(context.Context, error) (string, error) {
			panic(value)
		}))
	}()
	assert.Same(t, value, recovered)
}

// The name and providers are no longer a fallback's options: they are its
// pipeline's (resilience.WrapWith, resilience.Named), tested in resilience.
func TestFallback_PanicsOnInvalidSettingsNamingThem(t *testing.T) {
	tests := []struct {
		name string
		make func()
		want []string
	}{
		{"nil f", func() { fallback.Func[int](nil) }, []string{"levee: fallback.Func: f must not be nil"}},
		{"nil pred", func() { fallback.Value(1, fallback.If(nil)) }, []string{"levee: fallback.Value: ", "If: pred must not be nil"}},
		{"nil option", func() { fallback.Value(1, fallback.If(errorsOnly), nil) }, []string{"levee: fallback.Value: ", "option 1 is nil"}},
		{"every problem at once", func() {
			fallback.Func(func(context.Context, error) (int, error) { return 0, nil }, fallback.If(nil), nil)
		}, []string{"levee: fallback.Func: ", "If:", "option 1 is nil"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := testkit.PanicMessage(t, tt.make)
			for _, want := range tt.want {
				assert.Contains(t, msg, want)
			}
		})
	}
}

func errorsOnly(err error) bool { return err != nil }

// The guide's last step: a breaker whose open state answers with a fallback
// instead of an error (fallback outside, breaker inside). In a bubble, the
// breaker's 30-second open timeout passes at once.
func TestFallback_AnswersForAnOpenBreaker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := breaker.New("prices")
		calls := 0
		healthy := false
		fetchPrice := func(context.Context) (int, error) {
			calls++
			if !healthy {
				return 0, errBoom
			}
			return 120, nil
		}
		var handled []error
		getPrice := resilience.Wrap(fetchPrice,
			fallback.Func(func(_ context.Context, err error) (int, error) {
				handled = append(handled, err)
				return 100, nil // the last known price
			}),
			breaker.Policy[int](b),
		)
		ctx := context.Background()

		for range 3 {
			price, err := getPrice(ctx)
			require.NoError(t, err)
			assert.Equal(t, 100, price, "failures are answered too")
		}
		require.Equal(t, breaker.Open, b.State())

		price, err := getPrice(ctx)
		require.NoError(t, err, "the open breaker's rejection is answered, not returned")
		assert.Equal(t, 100, price)
		assert.Equal(t, 3, calls, "the dependency is not called while open")
		require.Len(t, handled, 4)
		assert.ErrorIs(t, handled[3], breaker.ErrOpen, "the fallback saw the rejection")
		assert.Equal(t, int64(1), b.Counts().Rejected)

		healthy = true
		time.Sleep(breaker.DefaultOpenTimeout)
		synctest.Wait() // the open timer has made the breaker half-open
		require.Equal(t, breaker.HalfOpen, b.State())
		price, err = getPrice(ctx)
		require.NoError(t, err)
		assert.Equal(t, 120, price, "the probe's fresh answer")
		assert.Equal(t, breaker.Closed, b.State())
		assert.Len(t, handled, 4)
	})
}

func TestFallback_OnlyForRejectionsLetsFailuresThrough(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := breaker.New("prices", breaker.WithFailureThreshold(1))
		getPrice := resilience.Wrap(func(context.Context) (int, error) { return 0, errBoom },
			fallback.Value(100, fallback.If(func(err error) bool { return errors.Is(err, breaker.ErrOpen) })),
			breaker.Policy[int](b),
		)

		_, err := getPrice(context.Background())
		assert.Same(t, errBoom, err, "a failure of the dependency reaches the caller")
		require.Equal(t, breaker.Open, b.State())
		price, err := getPrice(context.Background())
		assert.NoError(t, err)
		assert.Equal(t, 100, price, "a rejection is answered")
	})
}
