package breaker_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/internal/testkit"
	"github.com/levee-go/levee/resilience"
)

type user struct{ Name string }

func TestPolicy_OneBreakerGuardsCallsOfManyResultTypes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker()
		userRuns, countRuns := 0, 0
		var failing bool
		getUser := resilience.Wrap(func(context.Context) (user, error) {
			userRuns++
			if failing {
				return user{}, errDown
			}
			return user{Name: "ada"}, nil
		}, breaker.Policy[user](b))
		countOrders := resilience.Wrap(func(context.Context) (int, error) {
			countRuns++
			if failing {
				return 0, errDown
			}
			return 42, nil
		}, breaker.Policy[int](b))
		ctx := context.Background()

		failing = true
		_, err := getUser(ctx)
		require.ErrorIs(t, err, errDown)
		_, err = countOrders(ctx)
		require.ErrorIs(t, err, errDown)
		require.ErrorIs(t, b.Call(ctx, fail), errDown)
		require.Equal(t, breaker.Open, b.State(), "failures of every result type count in one breaker")

		failing = false
		u, err := getUser(ctx)
		requireOpenError(t, err)
		assert.Equal(t, user{}, u, "a rejected call returns the zero value")
		n, err := countOrders(ctx)
		requireOpenError(t, err)
		assert.Zero(t, n)
		assert.Equal(t, 1, userRuns)
		assert.Equal(t, 1, countRuns)

		time.Sleep(breaker.DefaultOpenTimeout)
		synctest.Wait()
		n, err = countOrders(ctx)
		require.NoError(t, err)
		assert.Equal(t, 42, n, "the probe through one type closes the breaker for all")
		u, err = getUser(ctx)
		require.NoError(t, err)
		assert.Equal(t, user{Name: "ada"}, u)
		assert.Equal(t, breaker.Closed, b.State())
	})
}

func TestPolicy_ReturnsTheFunctionsValueAndErrorUnchanged(t *testing.T) {
	b := newBreaker()
	get := resilience.Wrap(func(context.Context) (string, error) { return "partial", errDown }, breaker.Policy[string](b))

	v, err := get(context.Background())

	assert.Same(t, errDown, err)
	assert.Equal(t, "partial", v)
}

func TestPolicy_PassesTheCallersContextToTheFunction(t *testing.T) {
	type key struct{}
	b := newBreaker()
	ctx := context.WithValue(context.Background(), key{}, "request-7")
	var got any
	_, err := resilience.Do(ctx, func(ctx context.Context) (int, error) {
		got = ctx.Value(key{})
		return 0, nil
	}, breaker.Policy[int](b))
	require.NoError(t, err)
	assert.Equal(t, "request-7", got)
}

func TestPolicy_PanicsOnNilBreaker(t *testing.T) {
	msg := testkit.PanicMessage(t, func() { breaker.Policy[int](nil) })
	assert.Contains(t, msg, "breaker.Policy")
	assert.Contains(t, msg, "must not be nil")
}

func TestPolicy_TimeoutInsideBreakerCountsSlowCallsAsFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker()
		fn := &counter{}
		slow := resilience.Wrap(func(ctx context.Context) (int, error) {
			fn.runs.Add(1)
			<-ctx.Done()
			return 0, ctx.Err()
		}, breaker.Policy[int](b), resilience.Timeout[int](time.Second))

		for range 3 {
			_, err := slow(context.Background())
			require.ErrorIs(t, err, resilience.ErrTimeout)
		}

		assert.Equal(t, breaker.Open, b.State())
		_, err := slow(context.Background())
		requireOpenError(t, err)
		assert.Equal(t, int64(3), fn.runs.Load())
	})
}

func TestPolicy_IsATelemetrySourceGivingTheBreakersNameAndProviders(t *testing.T) {
	tp := tracenoop.NewTracerProvider()
	mp := metricnoop.NewMeterProvider()
	withProviders := breaker.New("pricing", breaker.WithTracerProvider(tp), breaker.WithMeterProvider(mp))
	withGlobals := breaker.New("search")

	source, ok := breaker.Policy[int](withProviders).(resilience.TelemetrySource)
	require.True(t, ok, "a pipeline around a breaker reports under the breaker's telemetry")
	assert.Equal(t, resilience.Telemetry{Name: "pricing", TracerProvider: tp, MeterProvider: mp}, source.Telemetry())

	source, ok = breaker.Policy[string](withGlobals).(resilience.TelemetrySource)
	require.True(t, ok)
	assert.Equal(t, resilience.Telemetry{Name: "search"}, source.Telemetry(), "nil providers: the globals")
}
