package resilience_test

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/telemetry"
	"github.com/levee-go/levee/telemetry/telemetrytest"
)

// Which context ended first decides a Timeout's result, not which one the
// function noticed, nor which one is done by the time it returns: the
// Timeout's own deadline (told apart by context.Cause) gives ErrTimeout and
// is counted, the caller's context ending first gives its ctx.Err()
// unchanged. The bubbles make each order exact.

// lateCaller is a caller's context that gives up just after the Timeout's
// deadline has fired, and before the Timeout looks: once armed, reading its
// Err waits until the function has canceled it. So whatever order the
// scheduler runs the caller's and the function's goroutines in (under
// ReturnAtDeadline they are two), the Timeout sees both contexts ended.
type lateCaller struct {
	context.Context
	cancel   context.CancelFunc
	armed    atomic.Bool
	canceled chan struct{}
}

func newLateCaller() *lateCaller {
	ctx, cancel := context.WithCancel(context.Background())
	return &lateCaller{Context: ctx, cancel: cancel, canceled: make(chan struct{})}
}

func (c *lateCaller) Err() error {
	if c.armed.Load() {
		<-c.canceled
	}
	return c.Context.Err()
}

// The regression of issue 10, point 8, made deterministic: the deadline
// fires, then the caller cancels, then the function returns. The caller
// gets ErrTimeout, and levee.timeout.exceeded counts it.
//
// Under ReturnAtDeadline the Timeout decides on one of two paths: the
// caller sees the deadline first and abandons the function, or the
// function's result is already there and the caller takes it. lateCaller
// makes each exact; which one a call takes is the scheduler's choice
// (under -race about two calls in five take the second, without it about
// one in five hundred), so that mode makes many calls.
func TestTimeout_CallerCancelingJustAfterTheDeadlineFiredStillGetsErrTimeout(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			calls := 1
			if len(mode.opts) > 0 {
				calls = 2000
			}
			synctest.Test(t, func(t *testing.T) {
				h := telemetrytest.New(t)
				for i := range calls {
					caller := newLateCaller()
					get := telWrap(h, "inventory", func(tctx context.Context) (int, error) {
						caller.armed.Store(true)
						<-tctx.Done() // 1. the Timeout's deadline fires
						require.NoError(t, caller.Context.Err(), "the caller is still there when the deadline fires")
						caller.cancel() // 2. the caller gives up
						close(caller.canceled)
						return 0, tctx.Err() // 3. the function returns
					}, mode.opts...)

					v, err := get(caller)

					assert.Zero(t, v)
					require.ErrorIs(t, err, resilience.ErrTimeout, "call %d", i)
					assert.ErrorIs(t, err, context.DeadlineExceeded)
					require.Error(t, caller.Err(), "the caller did cancel")
					synctest.Wait() // under ReturnAtDeadline, the function's goroutine has ended
				}
				h.AssertInt64(telemetry.MetricTimeoutExceeded, int64(calls), telemetry.KeyPolicyName.String("inventory"))
			})
		})
	}
}

// Both contexts have ended by the time the function returns, in either
// order: the first to end decides.
func TestTimeout_TheContextThatEndedFirstDecides(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name            string
		timeout, caller time.Duration // the Timeout's d, the caller's own deadline
		want            error
	}{
		{"the Timeout's deadline, then the caller's", time.Second, 2 * time.Second, resilience.ErrTimeout},
		{"the caller's deadline, then the Timeout's", 2 * time.Second, time.Second, context.DeadlineExceeded},
	}
	for _, mode := range modes {
		for _, tt := range tests {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				synctest.Test(t, func(t *testing.T) {
					h := telemetrytest.New(t)
					ctx, cancel := context.WithTimeout(context.Background(), tt.caller)
					defer cancel()
					// Ignores its context and returns once both have ended.
					get := resilience.WrapWith(telTelemetry(h, "inventory"), func(tctx context.Context) (int, error) {
						time.Sleep(3 * time.Second)
						return 0, tctx.Err()
					}, resilience.Timeout[int](tt.timeout, mode.opts...))

					_, err := get(ctx)

					if tt.want == resilience.ErrTimeout {
						require.ErrorIs(t, err, resilience.ErrTimeout)
						h.AssertInt64(telemetry.MetricTimeoutExceeded, 1)
					} else {
						assert.Equal(t, tt.want, err, "the caller's own error, unchanged")
						h.AssertInt64(telemetry.MetricTimeoutExceeded, 0)
					}
					time.Sleep(3 * time.Second) // an abandoned function returns
					synctest.Wait()
				})
			})
		}
	}
}

// A call whose context is already done runs nothing and returns ctx.Err(),
// in either mode, without counting a timeout.
func TestTimeout_CallWhoseContextIsAlreadyDoneRunsNothing(t *testing.T) {
	t.Parallel()
	done := map[string]func() (context.Context, context.CancelFunc){
		"canceled": func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		},
		"canceled with a cause": func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancelCause(context.Background())
			cancel(errBoom)
			return ctx, func() {}
		},
		"past its deadline": func() (context.Context, context.CancelFunc) {
			return context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		},
	}
	for _, mode := range modes {
		for name, newCtx := range done {
			t.Run(mode.name+"/"+name, func(t *testing.T) {
				t.Parallel()
				synctest.Test(t, func(t *testing.T) {
					h := telemetrytest.New(t)
					var ran atomic.Bool
					get := telWrap(h, "inventory", func(context.Context) (int, error) {
						ran.Store(true)
						return 1, nil
					}, mode.opts...)
					ctx, cancel := newCtx()
					defer cancel()

					v, err := get(ctx)
					synctest.Wait() // a goroutine started for the function would have run by now

					assert.False(t, ran.Load(), "the function must not run")
					assert.Zero(t, v)
					assert.Equal(t, ctx.Err(), err, "ctx.Err(), unchanged")
					assert.NotErrorIs(t, err, resilience.ErrTimeout)
					h.AssertInt64(telemetry.MetricTimeoutExceeded, 0)
					if len(mode.opts) > 0 {
						h.AssertInt64(telemetry.MetricTimeoutAbandoned, 0, telemetry.KeyPolicyName.String("inventory"))
					}
				})
			})
		}
	}
}
