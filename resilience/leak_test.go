package resilience_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"

	"github.com/levee-go/levee/internal/testkit"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/telemetry"
)

// leakTestStubborn is a function that ignores its context: it runs until
// release is closed, then ends as the call number says (a value, an error or
// a panic), and marks finished. Its name shows in goroutine dumps.
func leakTestStubborn(release <-chan struct{}, finished *sync.WaitGroup) resilience.Func[int] {
	var mu sync.Mutex
	calls := 0
	return func(context.Context) (int, error) {
		defer finished.Done()
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		<-release
		switch n % 3 {
		case 0:
			return n, nil
		case 1:
			return 0, errFaultQuery
		}
		panic("abandoned and broken")
	}
}

// TestReturnAtDeadline_LeavesNothingRunningOnceAbandonedFunctionsReturn
// abandons many functions at once. While they run, their goroutines are
// there (goleak finds them, which shows the check can fail); once they
// return, each is counted in levee.timeout.abandoned and nothing levee
// started is left running. Not parallel: goleak sees every goroutine of the
// process, and a panic of an abandoned function goes to the OpenTelemetry
// error handler, which the test captures.
func TestReturnAtDeadline_LeavesNothingRunningOnceAbandonedFunctionsReturn(t *testing.T) {
	reported := testkit.CaptureOTelErrors(t)
	ignoreExisting := goleak.IgnoreCurrent()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))

	const calls = 30
	release := make(chan struct{})
	var finished sync.WaitGroup
	finished.Add(calls)
	get := resilience.WrapWith(resilience.Telemetry{Name: "leak", MeterProvider: mp}, leakTestStubborn(release, &finished),
		resilience.Timeout[int](time.Millisecond, resilience.ReturnAtDeadline()))

	var callers sync.WaitGroup
	errs := make([]error, calls)
	for i := range calls {
		callers.Go(func() { _, errs[i] = get(context.Background()) })
	}
	callers.Wait()
	for i, err := range errs {
		require.ErrorIs(t, err, resilience.ErrTimeout, "call %d returned at its deadline", i)
	}

	leaks := goleak.Find(ignoreExisting)
	require.Error(t, leaks, "the abandoned functions are still running")
	assert.Contains(t, leaks.Error(), "leakTestStubborn")

	close(release)
	finished.Wait()
	goleak.VerifyNone(t, ignoreExisting)

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	assert.Equal(t, int64(calls), leakSum(rm, telemetry.MetricTimeoutAbandoned), "every abandoned function counted once it returned")
	panics := countErrors(reported.Take(), func(err error) bool { return strings.Contains(err.Error(), "abandoned and broken") })
	assert.Equal(t, calls/3, panics, "each abandoned panic reported, none lost, none crashing the process")
	require.NoError(t, mp.Shutdown(context.Background()))
}

// leakSum adds up the data points of the Int64 sum named name.
func leakSum(rm metricdata.ResourceMetrics, name string) int64 {
	var total int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == name {
				for _, dp := range sum.DataPoints {
					total += dp.Value
				}
			}
		}
	}
	return total
}
