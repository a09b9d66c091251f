package main

import (
	"context"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/fallback"
	"github.com/levee-go/levee/resilience"
)

// The metric and label names as Prometheus shows them, when an application
// exports levee's metrics with the OpenTelemetry Prometheus exporter's
// defaults. docs/telemetry.md quotes them. It lives in the examples module,
// which already has the exporter, so the library's module needs no Prometheus.
func TestPrometheusExporter_ShowsLeveesMetricNames(t *testing.T) {
	t.Parallel()
	registry := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(registry))
	require.NoError(t, err)
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	t.Cleanup(func() { assert.NoError(t, mp.Shutdown(context.Background())) })

	b := breaker.New("payments", breaker.WithFailureThreshold(1), breaker.WithOpenTimeout(time.Hour), breaker.WithMeterProvider(mp))
	pay := resilience.Wrap(func(ctx context.Context) (string, error) {
		<-ctx.Done()
		return "", ctx.Err()
	},
		fallback.Value("queued"), // reports under the breaker's name and provider
		breaker.Policy[string](b),
		resilience.Timeout[string](time.Millisecond),
	)
	for range 2 {
		v, err := pay(context.Background())
		require.NoError(t, err)
		require.Equal(t, "queued", v)
	}
	require.ErrorIs(t, b.Call(context.Background(), func(context.Context) error { return nil }), breaker.ErrOpen)

	// A breaker with a window that times its calls: the rate gauges and
	// the duration histogram.
	windowed := breaker.New("search", breaker.WithCountWindow(10), breaker.WithSlowCallDuration(time.Second),
		breaker.WithFailureRate(0.5), breaker.WithCallDurationHistogram(), breaker.WithMeterProvider(mp))
	require.NoError(t, windowed.Call(context.Background(), func(context.Context) error { return nil }))

	// A function a ReturnAtDeadline timeout abandons, counted when it returns.
	release := make(chan struct{})
	stubborn := resilience.WrapWith(resilience.Telemetry{Name: "pay-timeout", MeterProvider: mp},
		func(context.Context) (int, error) { <-release; return 1, nil },
		resilience.Timeout[int](time.Millisecond, resilience.ReturnAtDeadline()))
	_, err = stubborn(context.Background())
	require.ErrorIs(t, err, resilience.ErrTimeout)
	close(release)

	// labels returns the label names of each metric family Prometheus shows.
	labels := func() map[string][]string {
		families, err := registry.Gather()
		assert.NoError(t, err) // not require: Eventually calls this off the test's goroutine
		labels := map[string][]string{}
		for _, f := range families {
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if !slices.Contains(labels[f.GetName()], l.GetName()) {
						labels[f.GetName()] = append(labels[f.GetName()], l.GetName())
					}
				}
			}
			slices.Sort(labels[f.GetName()])
		}
		return labels
	}
	require.Eventually(t, func() bool {
		_, ok := labels()["levee_timeout_abandoned_total"]
		return ok
	}, 2*time.Second, time.Millisecond, "the abandoned function is counted once it returns")

	shown := labels()
	scope := []string{"otel_scope_name", "otel_scope_schema_url", "otel_scope_version"}
	want := map[string][]string{
		"levee_circuit_breaker_state":                 {"levee_circuit_breaker_state", "levee_policy_name"},
		"levee_circuit_breaker_calls_total":           {"levee_outcome", "levee_policy_name"},
		"levee_circuit_breaker_transitions_total":     {"levee_circuit_breaker_from", "levee_circuit_breaker_to", "levee_circuit_breaker_trip_rule", "levee_policy_name"},
		"levee_circuit_breaker_failure_rate_ratio":    {"levee_policy_name"},
		"levee_circuit_breaker_slow_call_rate_ratio":  {"levee_policy_name"},
		"levee_circuit_breaker_call_duration_seconds": {"levee_outcome", "levee_policy_name"},
		"levee_timeout_exceeded_total":                {"levee_policy_name"},
		"levee_timeout_abandoned_total":               {"levee_policy_name"},
		"levee_fallback_executions_total":             {"error_type", "levee_policy_name"},
	}
	for name, wantLabels := range want {
		got, ok := shown[name]
		if assert.True(t, ok, "Prometheus shows %s; it shows %v", name, shown) {
			assert.Equal(t, slices.Sorted(slices.Values(append(wantLabels, scope...))), got, name)
		}
	}
	// A breaker nobody references is garbage and stops being reported: keep
	// this one alive until its metrics have been read.
	runtime.KeepAlive(b)
	runtime.KeepAlive(windowed)
}
