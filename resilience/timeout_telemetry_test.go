package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
	"go.opentelemetry.io/otel/trace"

	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/telemetry"
	"github.com/levee-go/levee/telemetry/telemetrytest"
)

// Tests of the timeout rows of docs/telemetry.md: levee.timeout.exceeded
// (metric and span event) and levee.timeout.abandoned. Each runs in a
// synctest bubble: the deadline passes at once, and "once the abandoned
// function returns" is a synctest.Wait, not a poll.

const telDeadline = 2 * time.Millisecond

// telTelemetry is the Telemetry of a pipeline named name reporting to h.
func telTelemetry(h *telemetrytest.Harness, name string) resilience.Telemetry {
	return resilience.Telemetry{Name: name, TracerProvider: h.TracerProvider, MeterProvider: h.MeterProvider}
}

// telWrap returns fn guarded by a Timeout[int] of telDeadline, in a pipeline
// named name reporting to h.
func telWrap(h *telemetrytest.Harness, name string, fn resilience.Func[int], opts ...resilience.TimeoutOption) resilience.Func[int] {
	return resilience.WrapWith(telTelemetry(h, name), fn, resilience.Timeout[int](telDeadline, opts...))
}

// telHonourDeadline waits for its context to end, as a slow call that
// honours its context does.
func telHonourDeadline(ctx context.Context) (int, error) {
	<-ctx.Done()
	return 0, ctx.Err()
}

// telAssertCounter asserts an int64 counter metric whole: name, kind, unit,
// levee's scope, and exactly the given data points.
func telAssertCounter(t *testing.T, h *telemetrytest.Harness, name, unit string, points ...metricdata.DataPoint[int64]) {
	t.Helper()
	inst := h.Instrument(name)
	assert.Equal(t, sdkmetric.InstrumentKindCounter, inst.Kind, "%s kind", name)
	assert.Equal(t, telemetry.ScopeName, inst.Scope.Name)
	got := h.Metric(name)
	assert.NotEmpty(t, got.Description)
	metricdatatest.AssertEqual(t, metricdata.Metrics{
		Name:        name,
		Description: got.Description,
		Unit:        unit,
		Data: metricdata.Sum[int64]{
			Temporality: metricdata.CumulativeTemporality,
			IsMonotonic: true,
			DataPoints:  points,
		},
	}, got, metricdatatest.IgnoreTimestamp(), metricdatatest.IgnoreExemplars())
}

func TestTimeoutTelemetry_ExceededCountedAndReportedOnTheCallersSpan(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		call := telWrap(h, "inventory", telHonourDeadline)

		ctx, caller := h.StartSpan(context.Background(), "GET /stock")
		_, err := call(ctx)
		caller.End()
		require.ErrorIs(t, err, resilience.ErrTimeout)

		name := telemetry.KeyPolicyName.String("inventory")
		telAssertCounter(t, h, telemetry.MetricTimeoutExceeded, "{call}",
			metricdata.DataPoint[int64]{Attributes: attribute.NewSet(name), Value: 1})

		events := h.Span("GET /stock").Events()
		require.Len(t, events, 1)
		assert.Equal(t, telemetry.EventTimeoutExceeded, events[0].Name)
		assert.ElementsMatch(t, []attribute.KeyValue{
			name,
			telemetry.KeyTimeout.Float64(telDeadline.Seconds()),
			telemetry.KeyErrorType.String("timeout"),
		}, events[0].Attributes)
		assert.Len(t, h.Spans(""), 1, "a Timeout starts no span of its own")
	})
}

func TestTimeoutTelemetry_ExceededAlsoWhenReturningAtTheDeadline(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		call := telWrap(h, "inventory", telHonourDeadline, resilience.ReturnAtDeadline())

		ctx, caller := h.StartSpan(context.Background(), "GET /stock")
		_, err := call(ctx)
		caller.End()
		require.ErrorIs(t, err, resilience.ErrTimeout)

		h.AssertInt64(telemetry.MetricTimeoutExceeded, 1, telemetry.KeyPolicyName.String("inventory"))
		assert.Len(t, telemetrytest.EventsOn(h.Span("GET /stock"), telemetry.EventTimeoutExceeded), 1)
	})
}

func TestTimeoutTelemetry_NothingWhenTheTimeoutDoesNotFire(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		fn   resilience.Func[int]
		ctx  func(context.Context) (context.Context, context.CancelFunc)
	}{
		{"the call succeeds", func(context.Context) (int, error) { return 1, nil }, nil},
		{"the call fails at once", func(context.Context) (int, error) { return 0, errors.New("refused") }, nil},
		{"the caller cancels first", telHonourDeadline, func(ctx context.Context) (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(ctx)
			cancel()
			return ctx, cancel
		}},
		{"the caller's own deadline is sooner", telHonourDeadline, func(ctx context.Context) (context.Context, context.CancelFunc) {
			return context.WithTimeout(ctx, time.Microsecond)
		}},
	}
	for _, tt := range tests {
		for _, returnAtDeadline := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/ReturnAtDeadline=%v", tt.name, returnAtDeadline), func(t *testing.T) {
				t.Parallel()
				synctest.Test(t, func(t *testing.T) {
					h := telemetrytest.New(t)
					var opts []resilience.TimeoutOption
					if returnAtDeadline {
						opts = append(opts, resilience.ReturnAtDeadline())
					}
					call := telWrap(h, "inventory", tt.fn, opts...)
					ctx, caller := h.StartSpan(context.Background(), "GET /stock")
					if tt.ctx != nil {
						var cancel context.CancelFunc
						ctx, cancel = tt.ctx(ctx)
						defer cancel()
					}
					_, err := call(ctx)
					caller.End()

					assert.NotErrorIs(t, err, resilience.ErrTimeout)
					h.AssertInt64(telemetry.MetricTimeoutExceeded, 0)
					assert.Empty(t, h.Span("GET /stock").Events())
				})
			})
		}
	}
}

func TestTimeoutTelemetry_NoEventWhenTheCallersSpanIsNotRecording(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		call := telWrap(h, "inventory", telHonourDeadline)
		remote := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled, Remote: true})

		for _, ctx := range []context.Context{context.Background(), trace.ContextWithRemoteSpanContext(context.Background(), remote)} {
			_, err := call(ctx)
			require.ErrorIs(t, err, resilience.ErrTimeout)
		}

		h.AssertInt64(telemetry.MetricTimeoutExceeded, 2, telemetry.KeyPolicyName.String("inventory"))
		assert.Empty(t, h.Spans(""), "no span, so no event, anywhere")
	})
}

func TestTimeoutTelemetry_AbandonedCountedWhenTheFunctionFinallyReturns(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		release := make(chan struct{})
		returned := make(chan struct{})
		stubborn := func(context.Context) (int, error) { // ignores its context
			defer close(returned)
			<-release
			return 1, nil
		}
		call := telWrap(h, "inventory", stubborn, resilience.ReturnAtDeadline())

		_, err := call(context.Background())
		require.ErrorIs(t, err, resilience.ErrTimeout)
		h.AssertInt64(telemetry.MetricTimeoutExceeded, 1)
		time.Sleep(time.Hour)
		synctest.Wait()
		h.AssertInt64(telemetry.MetricTimeoutAbandoned, 0, telemetry.KeyPolicyName.String("inventory")) // still running, an hour on

		close(release)
		<-returned
		synctest.Wait() // the goroutine that ran it has counted it and ended
		name := telemetry.KeyPolicyName.String("inventory")
		telAssertCounter(t, h, telemetry.MetricTimeoutAbandoned, "{call}",
			metricdata.DataPoint[int64]{Attributes: attribute.NewSet(name), Value: 1})
	})
}

// Under ReturnAtDeadline a caller that gives up before the deadline
// abandons the function too: the caller gets its ctx.Err(), no timeout is
// counted, and the function is counted abandoned once it returns.
func TestTimeoutTelemetry_AbandonedCountedAlsoWhenTheCallerGaveUpFirst(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		release := make(chan struct{})
		returned := make(chan struct{})
		stubborn := func(context.Context) (int, error) { // ignores its context
			defer close(returned)
			<-release
			return 1, nil
		}
		call := telWrap(h, "inventory", stubborn, resilience.ReturnAtDeadline())
		ctx, cancel := context.WithTimeout(context.Background(), telDeadline/2) // sooner than the Timeout's
		defer cancel()

		_, err := call(ctx)
		require.Equal(t, context.DeadlineExceeded, err, "the caller's own error, unchanged")
		h.AssertInt64(telemetry.MetricTimeoutExceeded, 0)
		h.AssertInt64(telemetry.MetricTimeoutAbandoned, 0, telemetry.KeyPolicyName.String("inventory")) // still running

		close(release)
		<-returned
		synctest.Wait() // the goroutine that ran it has counted it and ended
		h.AssertInt64(telemetry.MetricTimeoutAbandoned, 1, telemetry.KeyPolicyName.String("inventory"))
	})
}

// A Timeout applied on its own (its Apply called directly, or ApplyWith given
// a Telemetry with no name) reports under DefaultTimeoutName. In a pipeline
// it reports under the pipeline's name (pipeline_telemetry_test.go).
func TestTimeoutTelemetry_DefaultName(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		p, ok := resilience.Timeout[int](telDeadline).(resilience.TelemetryPolicy[int])
		require.True(t, ok, "a Timeout is a TelemetryPolicy")
		call := p.ApplyWith(resilience.Telemetry{TracerProvider: h.TracerProvider, MeterProvider: h.MeterProvider}, telHonourDeadline)
		_, err := call(context.Background())
		require.ErrorIs(t, err, resilience.ErrTimeout)

		h.AssertInt64(telemetry.MetricTimeoutExceeded, 1, telemetry.KeyPolicyName.String(resilience.DefaultTimeoutName))
		assert.Equal(t, "timeout", resilience.DefaultTimeoutName)
	})
}
