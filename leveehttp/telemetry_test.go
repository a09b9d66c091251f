package leveehttp_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/fallback"
	"github.com/levee-go/levee/internal/testkit"
	"github.com/levee-go/levee/leveehttp"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/telemetry"
	"github.com/levee-go/levee/telemetry/telemetrytest"
)

// A Transport's pipeline reports under one name given once: its own
// (NewTransportWith), its breaker's, or DefaultTransportName; never the
// name of the Transport's internal function.

// hangs is a next RoundTripper, in memory, that answers only when its
// request's context ends.
var hangs = roundTripFunc(func(req *http.Request) (*http.Response, error) {
	<-req.Context().Done()
	return nil, req.Context().Err()
})

func exceededNames(t *testing.T, h *telemetrytest.Harness) []string {
	t.Helper()
	var names []string
	for _, sm := range h.Collect().ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != telemetry.MetricTimeoutExceeded {
				continue
			}
			for _, p := range m.Data.(metricdata.Sum[int64]).DataPoints {
				v, _ := p.Attributes.Value(telemetry.KeyPolicyName)
				names = append(names, v.AsString())
			}
		}
	}
	slices.Sort(names)
	return names
}

func TestTransport_PipelineReportsUnderTheNameGivenOnce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		b := breaker.New("inventory-api", breaker.WithFailureThreshold(100),
			breaker.WithTracerProvider(h.TracerProvider), breaker.WithMeterProvider(h.MeterProvider))
		tel := resilience.Telemetry{TracerProvider: h.TracerProvider, MeterProvider: h.MeterProvider}
		transports := []*leveehttp.Transport{
			leveehttp.NewTransportWith(resilience.Telemetry{Name: "prices-api", TracerProvider: h.TracerProvider, MeterProvider: h.MeterProvider},
				hangs, fallback.Func(passOn), resilience.Timeout[*http.Response](time.Second)),
			leveehttp.NewTransport(hangs, breaker.Policy[*http.Response](b), resilience.Timeout[*http.Response](time.Second)),
			leveehttp.NewTransportWith(tel, hangs, resilience.Timeout[*http.Response](time.Second)),
		}
		for _, rt := range transports {
			_, err := get(t, rt, "http://api.example/")
			require.ErrorIs(t, err, resilience.ErrTimeout)
		}

		assert.Equal(t, []string{"inventory-api", leveehttp.DefaultTransportName, "prices-api"}, exceededNames(t, h), "one series per pipeline, sorted")
		h.AssertInt64(telemetry.MetricFallbackExecutions, 1, telemetry.KeyPolicyName.String("prices-api"))
		assert.Equal(t, "leveehttp.Transport", leveehttp.DefaultTransportName)
	})
}

func passOn(_ context.Context, err error) (*http.Response, error) { return nil, err }

func TestNewTransportWith_RefusesATypedNilProviderNamingIt(t *testing.T) {
	t.Parallel()
	var mp *sdkmetric.MeterProvider
	msg := testkit.PanicMessage(t, func() {
		leveehttp.NewTransportWith(resilience.Telemetry{MeterProvider: mp}, nil, resilience.Timeout[*http.Response](time.Second))
	})
	assert.Contains(t, msg, "Telemetry.MeterProvider: provider is a nil *metric.MeterProvider")
}
