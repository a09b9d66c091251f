package fallback_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/fallback"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/telemetry"
	"github.com/levee-go/levee/telemetry/telemetrytest"
)

// A fallback never runs when the caller's own context is done: the caller
// has gone, and gets its context's error (or the call's own, when the call
// ran). Each case runs a Value and a Func fallback, reporting to a harness,
// in a synctest bubble.

// ctxFallbacks are the two kinds of fallback, with a count of f's calls.
func ctxFallbacks(calls *int) map[string]resilience.Policy[string] {
	return map[string]resilience.Policy[string]{
		"Value": fallback.Value("cached"),
		"Func": fallback.Func(func(context.Context, error) (string, error) {
			*calls++
			return "computed", nil
		}),
	}
}

func TestFallback_NeverRunsWhenTheCallersContextIsAlreadyDone(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"Value", "Func"} {
		for name, newCtx := range map[string]func() (context.Context, context.CancelFunc){
			"canceled": func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx, cancel
			},
			"past its deadline": func() (context.Context, context.CancelFunc) {
				return context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
			},
		} {
			t.Run(kind+"/"+name, func(t *testing.T) {
				t.Parallel()
				synctest.Test(t, func(t *testing.T) {
					h := telemetrytest.New(t)
					fCalls, nextCalls := 0, 0
					get := resilience.WrapWith(telTelemetry(h, "prices"), func(context.Context) (string, error) {
						nextCalls++
						return "", errBoom
					}, ctxFallbacks(&fCalls)[kind])
					ctx, cancel := newCtx()
					defer cancel()

					v, err := get(ctx)

					assert.Empty(t, v)
					assert.Equal(t, ctx.Err(), err, "the caller gets its context's error")
					assert.Zero(t, nextCalls, "the call does not run")
					assert.Zero(t, fCalls, "nor does the fallback")
					h.AssertInt64(telemetry.MetricFallbackExecutions, 0)
				})
			})
		}
	}
}

func TestFallback_NeverRunsWhenTheCallersContextEndsDuringTheCall(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"Value", "Func"} {
		t.Run(kind+"/canceled", func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				h := telemetrytest.New(t)
				fCalls := 0
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				get := resilience.WrapWith(telTelemetry(h, "prices"), func(context.Context) (string, error) {
					cancel() // the caller gives up while the call runs
					return "partial", errBoom
				}, ctxFallbacks(&fCalls)[kind])

				v, err := get(ctx)

				assert.Same(t, errBoom, err, "the call's own error, unchanged")
				assert.Equal(t, "partial", v, "with its value")
				assert.Zero(t, fCalls)
				h.AssertInt64(telemetry.MetricFallbackExecutions, 0)
			})
		})
		t.Run(kind+"/caller's deadline", func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				h := telemetrytest.New(t)
				fCalls := 0
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				get := resilience.WrapWith(telTelemetry(h, "prices"), func(ctx context.Context) (string, error) {
					<-ctx.Done()
					return "", ctx.Err()
				}, ctxFallbacks(&fCalls)[kind])

				v, err := get(ctx)

				assert.Empty(t, v)
				assert.Equal(t, context.DeadlineExceeded, err)
				assert.Zero(t, fCalls)
				h.AssertInt64(telemetry.MetricFallbackExecutions, 0)
			})
		})
	}
}

// The contrast: a Timeout inside the fallback ends the call's context, not
// the caller's. The caller is still there, and the fallback answers.
func TestFallback_RunsWhenOnlyATimeoutInsideItFired(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		get := resilience.WrapWith(telTelemetry(h, "prices"), func(ctx context.Context) (string, error) {
			<-ctx.Done()
			return "", ctx.Err()
		}, fallback.Value("cached"), resilience.Timeout[string](time.Second))

		v, err := get(context.Background())

		require.NoError(t, err)
		assert.Equal(t, "cached", v)
		h.AssertInt64(telemetry.MetricFallbackExecutions, 1, telemetry.KeyErrorType.String(telemetry.ErrorTypeTimeout))
	})
}
