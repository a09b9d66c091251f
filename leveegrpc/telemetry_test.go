package leveegrpc_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/leveegrpc"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/telemetry"
	"github.com/levee-go/levee/telemetry/telemetrytest"
)

// A pipeline's timeouts report under its breaker's name, under the name
// WithTelemetry gives, and else under leveegrpc's own.
func TestInterceptors_NameTheirPipelinesTelemetry(t *testing.T) {
	hang := func(ctx context.Context, _ string, _, _ any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
		<-ctx.Done()
		return status.FromContextError(ctx.Err()).Err()
	}
	handlerHangs := func(ctx context.Context, _ any) (any, error) {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	for _, tc := range []struct {
		name     string
		policies func(h *telemetrytest.Harness) []resilience.Policy[any]
		opts     func(h *telemetrytest.Harness) []leveegrpc.Option
		client   string // the name the client pipeline reports under
		server   string
	}{
		{
			name: "a breaker names the pipeline",
			policies: func(h *telemetrytest.Harness) []resilience.Policy[any] {
				b := breaker.New("payments", breaker.WithFailureThreshold(100),
					breaker.WithTracerProvider(h.TracerProvider), breaker.WithMeterProvider(h.MeterProvider))
				return []resilience.Policy[any]{breaker.Policy[any](b), resilience.Timeout[any](time.Millisecond)}
			},
			client: "payments", server: "payments",
		},
		{
			name: "WithTelemetry names it",
			policies: func(*telemetrytest.Harness) []resilience.Policy[any] {
				return []resilience.Policy[any]{resilience.Timeout[any](time.Millisecond)}
			},
			opts: func(h *telemetrytest.Harness) []leveegrpc.Option {
				return []leveegrpc.Option{leveegrpc.WithTelemetry(resilience.Telemetry{
					Name: "rates", TracerProvider: h.TracerProvider, MeterProvider: h.MeterProvider})}
			},
			client: "rates", server: "rates",
		},
		{
			name: "else leveegrpc names it",
			policies: func(*telemetrytest.Harness) []resilience.Policy[any] {
				return []resilience.Policy[any]{resilience.Timeout[any](time.Millisecond)}
			},
			opts: func(h *telemetrytest.Harness) []leveegrpc.Option {
				return []leveegrpc.Option{leveegrpc.WithTelemetry(resilience.Telemetry{
					TracerProvider: h.TracerProvider, MeterProvider: h.MeterProvider})}
			},
			client: "leveegrpc.client", server: "leveegrpc.server",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := telemetrytest.New(t)
			var opts []leveegrpc.Option
			if tc.opts != nil {
				opts = tc.opts(h)
			}
			client := leveegrpc.UnaryClientInterceptor(tc.policies(h), opts...)
			server := leveegrpc.UnaryServerInterceptor(tc.policies(h), opts...)

			err := client(t.Context(), methodSay, &wire{}, new(wire), nil, hang)
			assert.Equal(t, codes.DeadlineExceeded, status.Code(err))
			_, err = server(t.Context(), &wire{}, &grpc.UnaryServerInfo{FullMethod: methodSay}, handlerHangs)
			assert.Equal(t, codes.DeadlineExceeded, status.Code(err))

			want := map[string]int64{tc.client: 0, tc.server: 0}
			want[tc.client]++
			want[tc.server]++
			for name, n := range want {
				h.AssertInt64(telemetry.MetricTimeoutExceeded, n, telemetry.KeyPolicyName.String(name))
			}
		})
	}
}

// A provider that is a nil pointer (a variable of the SDK's type never
// assigned) is refused when the interceptor is built, by a panic naming the
// field, not left to fail inside the SDK at the first call (issue 10,
// point 9).
func TestInterceptors_RefuseATypedNilProviderNamingIt(t *testing.T) {
	var unset telemetrytest.Harness // never built: its providers are nil *sdktrace.TracerProvider and *sdkmetric.MeterProvider
	timeout := []resilience.Policy[any]{resilience.Timeout[any](time.Second)}
	for name, build := range map[string]func(leveegrpc.Option){
		"UnaryClientInterceptor":  func(o leveegrpc.Option) { leveegrpc.UnaryClientInterceptor(timeout, o) },
		"UnaryServerInterceptor":  func(o leveegrpc.Option) { leveegrpc.UnaryServerInterceptor(timeout, o) },
		"StreamServerInterceptor": func(o leveegrpc.Option) { leveegrpc.StreamServerInterceptor(timeout, o) },
		"StreamClientInterceptor": func(o leveegrpc.Option) {
			leveegrpc.StreamClientInterceptor([]resilience.Policy[grpc.ClientStream]{resilience.Timeout[grpc.ClientStream](time.Second)}, o)
		},
	} {
		t.Run(name, func(t *testing.T) {
			assert.PanicsWithValue(t, "levee: resilience.WrapWith: Telemetry.TracerProvider: provider is a nil *trace.TracerProvider", func() {
				build(leveegrpc.WithTelemetry(resilience.Telemetry{TracerProvider: unset.TracerProvider}))
			})
			assert.PanicsWithValue(t, "levee: resilience.WrapWith: Telemetry.MeterProvider: provider is a nil *metric.MeterProvider", func() {
				build(leveegrpc.WithTelemetry(resilience.Telemetry{MeterProvider: unset.MeterProvider}))
			})
		})
	}
}
