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

	"github.com/levee-go/levee/bulkhead"
	"github.com/levee-go/levee/ratelimit"
	"github.com/levee-go/levee/throttle"
)

// The limits' metric and label names as Prometheus shows them with the
// OpenTelemetry exporter's defaults, as docs/telemetry.md quotes them. They
// live here, in the examples module, so that the library's module needs no
// Prometheus client.

func TestPrometheusExporter_ShowsTheBulkheadsMetricNames(t *testing.T) {
	t.Parallel()
	mp, registry := promProvider(t)
	b := bulkhead.New("db", 1, bulkhead.WithMeterProvider(mp))
	require.NoError(t, b.Call(context.Background(), func(context.Context) error { return nil }))
	assertPromNames(t, registry, map[string][]string{
		"levee_bulkhead_calls_total": {"levee_outcome", "levee_policy_name"},
		"levee_bulkhead_in_flight":   {"levee_policy_name"},
		"levee_bulkhead_queued":      {"levee_policy_name"},
	})
	runtime.KeepAlive(b)
}

func TestPrometheusExporter_ShowsTheRateLimitsMetricNames(t *testing.T) {
	t.Parallel()
	mp, registry := promProvider(t)
	tenantOf := func(context.Context) string { return "tenant-1" }
	l := ratelimit.New("api", 1, time.Second, ratelimit.WithMeterProvider(mp), ratelimit.WithKey(tenantOf))
	require.NoError(t, l.Call(context.Background(), func(context.Context) error { return nil }))
	assertPromNames(t, registry, map[string][]string{
		"levee_rate_limit_calls_total":        {"levee_outcome", "levee_policy_name"},
		"levee_rate_limit_queued":             {"levee_policy_name"},
		"levee_rate_limit_keys":               {"levee_policy_name"},
		"levee_rate_limit_key_overflow_total": {"levee_policy_name"},
	})
	runtime.KeepAlive(l)
}

func TestPrometheusExporter_ShowsTheThrottlesMetricNames(t *testing.T) {
	t.Parallel()
	mp, registry := promProvider(t)
	th := throttle.New("db", throttle.WithMeterProvider(mp))
	require.NoError(t, th.Call(context.Background(), func(context.Context) error { return nil }))
	assertPromNames(t, registry, map[string][]string{
		"levee_throttle_calls_total":       {"levee_outcome", "levee_policy_name"},
		"levee_throttle_probability_ratio": {"levee_policy_name"},
	})
	runtime.KeepAlive(th)
}

// promProvider returns a MeterProvider exported to a fresh Prometheus
// registry with the OpenTelemetry exporter's defaults.
func promProvider(t *testing.T) (*sdkmetric.MeterProvider, *prometheus.Registry) {
	t.Helper()
	registry := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(registry))
	require.NoError(t, err)
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	t.Cleanup(func() { assert.NoError(t, mp.Shutdown(context.Background())) })
	return mp, registry
}

// assertPromNames asserts that Prometheus shows each metric of want, with
// its labels and the instrumentation scope's.
func assertPromNames(t *testing.T, registry *prometheus.Registry, want map[string][]string) {
	t.Helper()
	families, err := registry.Gather()
	require.NoError(t, err)
	shown := map[string][]string{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if !slices.Contains(shown[f.GetName()], l.GetName()) {
					shown[f.GetName()] = append(shown[f.GetName()], l.GetName())
				}
			}
		}
		slices.Sort(shown[f.GetName()])
	}
	scope := []string{"otel_scope_name", "otel_scope_schema_url", "otel_scope_version"}
	for name, wantLabels := range want {
		got, ok := shown[name]
		if assert.True(t, ok, "Prometheus shows %s; it shows %v", name, shown) {
			assert.Equal(t, slices.Sorted(slices.Values(append(wantLabels, scope...))), got, name)
		}
	}
}
