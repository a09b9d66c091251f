package bench

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/telemetry"
)

// fleet is how many breakers the scale benchmarks create: a service that
// guards one breaker per downstream host or tenant.
const fleet = 10_000

func fleetNames() []string {
	names := make([]string, fleet)
	for i := range names {
		names[i] = fmt.Sprintf("dep-%05d", i)
	}
	return names
}

// newFleetSDK is newSDK for one op of a scale benchmark: the caller shuts
// it down. The SDK's default cardinality limit (2000 points per instrument)
// is lifted: 10 000 breakers report 30 000 state points and 40 000
// call-count points, and an application with that many breakers must lift
// it too.
func newFleetSDK() *sdk {
	reader := sdkmetric.NewManualReader()
	return &sdk{
		mp:     sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader), sdkmetric.WithCardinalityLimit(0)),
		reader: reader,
		tp:     sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample())),
	}
}

func (s *sdk) shutdown() {
	_ = s.mp.Shutdown(context.Background())
	_ = s.tp.Shutdown(context.Background())
}

func heapAfterGC() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkBreakerMemory: the heap one breaker holds with its telemetry
// registered with an SDK MeterProvider. Each op creates 10 000 named
// breakers and reports the live heap they added, after a GC, divided by
// 10 000 (names and the slice holding the breakers are made beforehand and
// not counted), as B/breaker; then collects their metrics once and reports
// the heap held after that, divided likewise, as B/breaker-collected: that
// includes what the SDK keeps for each of the 7 data points a breaker
// reports.
func BenchmarkBreakerMemory(b *testing.B) {
	names := fleetNames()
	var registered, collected float64
	for i := 0; i < b.N; i++ {
		s := newFleetSDK()
		brs := make([]*breaker.Breaker, fleet)
		before := heapAfterGC()
		for k := range brs {
			brs[k] = breaker.New(names[k], breaker.WithMeterProvider(s.mp), breaker.WithTracerProvider(s.tp))
		}
		after := heapAfterGC()
		var rm metricdata.ResourceMetrics
		if err := s.reader.Collect(context.Background(), &rm); err != nil {
			b.Fatal(err)
		}
		checkFleetMetrics(b, &rm)
		rm = metricdata.ResourceMetrics{}
		afterCollect := heapAfterGC()
		runtime.KeepAlive(brs)
		registered += float64(after-before) / fleet
		collected += float64(afterCollect-before) / fleet
		s.shutdown()
	}
	b.ReportMetric(registered/float64(b.N), "B/breaker")
	b.ReportMetric(collected/float64(b.N), "B/breaker-collected")
}

// BenchmarkFleet10k: one op creates 10 000 named breakers with an SDK
// MeterProvider and TracerProvider and collects their metrics once,
// reported in ms (as ms/op, besides ns/op).
func BenchmarkFleet10k(b *testing.B) {
	names := fleetNames()
	b.ReportAllocs()
	var elapsed time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := newFleetSDK()
		brs := make([]*breaker.Breaker, fleet)
		var rm metricdata.ResourceMetrics
		b.StartTimer()
		start := time.Now()
		for k := range brs {
			brs[k] = breaker.New(names[k], breaker.WithMeterProvider(s.mp), breaker.WithTracerProvider(s.tp))
		}
		err := s.reader.Collect(context.Background(), &rm)
		elapsed += time.Since(start)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		checkFleetMetrics(b, &rm)
		runtime.KeepAlive(brs)
		s.shutdown()
		b.StartTimer()
	}
	b.ReportMetric(float64(elapsed.Microseconds())/1e3/float64(b.N), "ms/op")
}

// BenchmarkFleet10kSDKFloor is the part of BenchmarkFleet10k that is the
// SDK's own: one op collects, once, 70 000 points (3 state points and 4
// call-count points for each of 10 000 names) from one callback that hands
// the SDK attribute sets made beforehand. No levee code runs; no breaker
// telemetry can collect faster than this.
func BenchmarkFleet10kSDKFloor(b *testing.B) {
	names := fleetNames()
	b.ReportAllocs()
	var elapsed time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := newFleetSDK()
		meter := s.mp.Meter(telemetry.ScopeName)
		state, err := meter.Int64ObservableUpDownCounter(telemetry.MetricBreakerState)
		if err != nil {
			b.Fatal(err)
		}
		calls, err := meter.Int64ObservableCounter(telemetry.MetricBreakerCalls)
		if err != nil {
			b.Fatal(err)
		}
		stateOpts := make([][]metric.ObserveOption, 0, 3*fleet)
		callOpts := make([][]metric.ObserveOption, 0, 4*fleet)
		for _, name := range names {
			for _, v := range []string{telemetry.StateClosed, telemetry.StateOpen, telemetry.StateHalfOpen} {
				stateOpts = append(stateOpts, []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(
					telemetry.KeyPolicyName.String(name), telemetry.KeyBreakerState.String(v)))})
			}
			for _, v := range []string{telemetry.OutcomeSuccess, telemetry.OutcomeFailure, telemetry.OutcomeRejected, telemetry.OutcomeIgnored} {
				callOpts = append(callOpts, []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(
					telemetry.KeyPolicyName.String(name), telemetry.KeyOutcome.String(v)))})
			}
		}
		_, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
			for k, opts := range stateOpts {
				o.ObserveInt64(state, int64(k%3/2), opts...)
			}
			for _, opts := range callOpts {
				o.ObserveInt64(calls, 0, opts...)
			}
			return nil
		}, state, calls)
		if err != nil {
			b.Fatal(err)
		}
		var rm metricdata.ResourceMetrics
		b.StartTimer()
		start := time.Now()
		err = s.reader.Collect(context.Background(), &rm)
		elapsed += time.Since(start)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		checkFleetMetrics(b, &rm)
		s.shutdown()
		b.StartTimer()
	}
	b.ReportMetric(float64(elapsed.Microseconds())/1e3/float64(b.N), "ms/op")
}

// checkFleetMetrics makes sure a collection saw every breaker: 3 state
// points and 4 call-count points each.
func checkFleetMetrics(b *testing.B, rm *metricdata.ResourceMetrics) {
	b.Helper()
	points := map[string]int{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if d, ok := m.Data.(metricdata.Sum[int64]); ok {
				points[m.Name] += len(d.DataPoints)
			}
		}
	}
	if got, want := points[telemetry.MetricBreakerState], 3*fleet; got != want {
		b.Fatalf("%s: %d points, want %d", telemetry.MetricBreakerState, got, want)
	}
	if got, want := points[telemetry.MetricBreakerCalls], 4*fleet; got != want {
		b.Fatalf("%s: %d points, want %d", telemetry.MetricBreakerCalls, got, want)
	}
}
