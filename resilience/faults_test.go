package resilience_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/fallback"
	"github.com/levee-go/levee/internal/testkit"
	"github.com/levee-go/levee/resilience"
)

// Faults in the telemetry never reach a call: a Timeout, and a whole
// fallback + breaker + timeout pipeline, keep their results and errors when
// the exporters fail or the meter refuses its instruments; such faults go to
// the OpenTelemetry error handler.

var errFaultQuery = errors.New("fault test: query failed")

// countErrors returns how many of errs match.
func countErrors(errs []error, match func(error) bool) int {
	n := 0
	for _, err := range errs {
		if match(err) {
			n++
		}
	}
	return n
}

// faultyTelemetry is one way the telemetry can fail: providers to give every
// policy, and a stop to call at the end.
type faultyTelemetry struct {
	name   string
	setup  func() (metric.MeterProvider, *sdktrace.TracerProvider, func())
	target error // what must reach otel.Handle
}

func faultyTelemetries() []faultyTelemetry {
	return []faultyTelemetry{
		{"span exporter fails", func() (metric.MeterProvider, *sdktrace.TracerProvider, func()) {
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(&testkit.FailingSpanExporter{}))
			return noop.NewMeterProvider(), tp, func() { _ = tp.Shutdown(context.Background()) }
		}, testkit.ErrSpanExport},
		{"metric exporter fails", func() (metric.MeterProvider, *sdktrace.TracerProvider, func()) {
			exporter := &testkit.FailingMetricExporter{}
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(
				sdkmetric.NewPeriodicReader(exporter, sdkmetric.WithInterval(time.Millisecond))))
			tp := sdktrace.NewTracerProvider()
			return mp, tp, func() {
				// Let the reader collect (running the breaker's callback)
				// and fail to export a few times.
				for deadline := time.Now().Add(5 * time.Second); exporter.Exports() < 3 && time.Now().Before(deadline); {
					time.Sleep(time.Millisecond)
				}
				_ = mp.Shutdown(context.Background())
				_ = tp.Shutdown(context.Background())
			}
		}, testkit.ErrMetricExport},
		{"meter refuses instruments and callback", func() (metric.MeterProvider, *sdktrace.TracerProvider, func()) {
			tp := sdktrace.NewTracerProvider()
			return testkit.FaultyMeterProvider{NilInstruments: true}, tp, func() { _ = tp.Shutdown(context.Background()) }
		}, testkit.ErrMeterRefused},
	}
}

// TestFaults_TelemetryFaultsNeverReachAPipelinesCalls is deliberately not
// parallel: it installs an OpenTelemetry error handler (a global) for its
// duration, to check each fault is reported there rather than to a caller.
// Each fault runs in a synctest bubble, so that the breaker's open timeout
// cannot pass while the test looks at it, and the periodic reader's
// interval passes at once.
func TestFaults_TelemetryFaultsNeverReachAPipelinesCalls(t *testing.T) {
	reported := testkit.CaptureOTelErrors(t)
	for _, fault := range faultyTelemetries() {
		t.Run(fault.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { telemetryFaultNeverReachesCalls(t, fault, reported) })
		})
	}
}

func telemetryFaultNeverReachesCalls(t *testing.T, fault faultyTelemetry, reported *testkit.OTelErrors) {
	mp, tp, stop := fault.setup()
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()
	ctx, span := tp.Tracer("test").Start(context.Background(), "caller")
	defer span.End()
	b := breaker.New("faulty", breaker.WithFailureThreshold(1),
		breaker.WithMeterProvider(mp), breaker.WithTracerProvider(tp))
	tel := resilience.Telemetry{Name: "faulty", MeterProvider: mp, TracerProvider: tp}
	timeout := resilience.Timeout[string](time.Millisecond)
	stale := fallback.Func(func(_ context.Context, err error) (string, error) {
		if errors.Is(err, breaker.ErrOpen) {
			return "stale", nil
		}
		return "", err
	})

	// The timeout alone: the function's result, then ErrTimeout wrapping its error.
	v, err := resilience.WrapWith(tel, func(context.Context) (string, error) { return "fresh", nil }, timeout)(ctx)
	require.NoError(t, err)
	require.Equal(t, "fresh", v)
	_, err = resilience.WrapWith(tel, func(ctx context.Context) (string, error) {
		<-ctx.Done()
		return "", errFaultQuery
	}, timeout)(ctx)
	require.ErrorIs(t, err, resilience.ErrTimeout)
	require.ErrorIs(t, err, errFaultQuery)

	// The pipeline, reporting under the breaker's name and providers:
	// success, the timeout trips the breaker, the fallback answers.
	pipeline := func(fn resilience.Func[string]) resilience.Func[string] {
		return resilience.Wrap(fn, stale, breaker.Policy[string](b), timeout)
	}
	v, err = pipeline(func(context.Context) (string, error) { return "fresh", nil })(ctx)
	require.NoError(t, err)
	require.Equal(t, "fresh", v)
	v, err = pipeline(func(ctx context.Context) (string, error) {
		<-ctx.Done()
		return "", ctx.Err()
	})(ctx)
	require.ErrorIs(t, err, resilience.ErrTimeout, "the fallback passes the timeout on (its f returns it)")
	var fbErr *fallback.Error
	require.False(t, errors.As(err, &fbErr), "f returned the original error itself: no fallback.Error")
	assert.Empty(t, v)
	require.Equal(t, breaker.Open, b.State())
	ran := false
	v, err = pipeline(func(context.Context) (string, error) { ran = true; return "fresh", nil })(ctx)
	require.NoError(t, err)
	assert.Equal(t, "stale", v, "the fallback answers for the open breaker")
	assert.False(t, ran)

	stopped = true
	stop()
	assert.Positive(t, countErrors(reported.Take(), func(err error) bool { return errors.Is(err, fault.target) }),
		"the fault reached otel.Handle")
}

// TestFaults_AbandonedFunctionsPanicGoesToTheErrorHandler is not parallel
// for the same reason: the panic of a function that ReturnAtDeadline
// abandoned has no caller left to reach; it must be reported, not crash the
// process, and the caller keeps its ErrTimeout.
func TestFaults_AbandonedFunctionsPanicGoesToTheErrorHandler(t *testing.T) {
	reported := testkit.CaptureOTelErrors(t)
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		finished := make(chan struct{})
		get := resilience.WrapWith(resilience.Telemetry{Name: "abandoning"}, func(context.Context) (int, error) {
			<-release
			defer close(finished)
			panic("abandoned and broken")
		}, resilience.Timeout[int](time.Millisecond, resilience.ReturnAtDeadline()))

		v, err := get(context.Background())
		require.ErrorIs(t, err, resilience.ErrTimeout)
		assert.Zero(t, v)

		close(release)
		<-finished
		synctest.Wait() // the goroutine that ran it has reported the panic and ended
		errs := reported.Take()
		assert.Equal(t, 1, countErrors(errs, func(err error) bool {
			return strings.Contains(err.Error(), "abandoned and broken") && strings.Contains(err.Error(), `"abandoning"`)
		}), "the abandoned function's panic reached otel.Handle, naming the timeout: %v", errs)
	})
}

// Not parallel, for the same reason: an abandoned function that calls
// runtime.Goexit (as t.FailNow does) has no caller to tell; it is reported,
// naming the timeout.
func TestFaults_AbandonedFunctionsGoexitGoesToTheErrorHandler(t *testing.T) {
	reported := testkit.CaptureOTelErrors(t)
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		get := resilience.WrapWith(resilience.Telemetry{Name: "abandoning"}, func(context.Context) (int, error) {
			<-release
			runtime.Goexit()
			return 0, nil
		}, resilience.Timeout[int](time.Millisecond, resilience.ReturnAtDeadline()))

		_, err := get(context.Background())
		require.ErrorIs(t, err, resilience.ErrTimeout)

		close(release)
		synctest.Wait()
		errs := reported.Take()
		assert.Equal(t, 1, countErrors(errs, func(err error) bool {
			return err.Error() == `levee: timeout "abandoning": abandoned function called runtime.Goexit`
		}), "reported: %v", errs)
	})
}
