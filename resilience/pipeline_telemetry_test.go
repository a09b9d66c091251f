package resilience_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/fallback"
	"github.com/levee-go/levee/internal/testkit"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/telemetry"
	"github.com/levee-go/levee/telemetry/telemetrytest"
)

// Telemetry wired once per pipeline (issue 9, point 2): a pipeline names its
// policies and gives them their providers once, with WrapWith or through its
// breaker; two pipelines never share series by accident; Named renames one
// policy; a policy applied alone uses its default name. The tests run in
// synctest bubbles, where every deadline passes at once.

var errPipelineSlow = errors.New("pipeline test: answered too late")

// fetchPrice and fetchStock wait for their deadline: every call through a
// Timeout times out. They are package-level functions so that the names a
// pipeline takes from them are known.
func fetchPrice(ctx context.Context) (string, error) {
	<-ctx.Done()
	return "", ctx.Err()
}

func fetchStock(ctx context.Context) (string, error) {
	<-ctx.Done()
	return "", ctx.Err()
}

// recordedTelemetry is a TelemetryPolicy of a user's own that records the
// Telemetry its pipeline gives it, and otherwise passes the call on.
type recordedTelemetry struct {
	mu  sync.Mutex
	got []resilience.Telemetry
}

func (r *recordedTelemetry) Apply(next resilience.Func[string]) resilience.Func[string] {
	return r.ApplyWith(resilience.Telemetry{}, next)
}

func (r *recordedTelemetry) ApplyWith(tel resilience.Telemetry, next resilience.Func[string]) resilience.Func[string] {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, tel)
	return next
}

func (r *recordedTelemetry) only(t *testing.T) resilience.Telemetry {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	require.Len(t, r.got, 1, "applied once, when the pipeline was built")
	return r.got[0]
}

// policyNames returns the levee.policy.name of every data point of the
// int64 sum named metric, sorted.
func policyNames(t *testing.T, h *telemetrytest.Harness, metric string) []string {
	t.Helper()
	var names []string
	for _, sm := range h.Collect().ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != metric {
				continue
			}
			sum, ok := m.Data.(metricdata.Sum[int64])
			require.True(t, ok, "%s is an int64 sum, got %T", metric, m.Data)
			for _, p := range sum.DataPoints {
				v, _ := p.Attributes.Value(telemetry.KeyPolicyName)
				names = append(names, v.AsString())
			}
		}
	}
	slices.Sort(names)
	return names
}

// eventPolicyNames returns the name of each event on span and the
// levee.policy.name it carries, in order.
func eventPolicyNames(span sdktrace.ReadOnlySpan) [][2]string {
	var got [][2]string
	for _, e := range span.Events() {
		set := attribute.NewSet(e.Attributes...)
		name, _ := set.Value(telemetry.KeyPolicyName)
		got = append(got, [2]string{e.Name, name.AsString()})
	}
	return got
}

func TestWrapWith_EveryTimeoutAndFallbackReportsUnderThePipelinesTelemetry(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		tel := resilience.Telemetry{Name: "pricing", TracerProvider: h.TracerProvider, MeterProvider: h.MeterProvider}
		recorder := &recordedTelemetry{}
		// Ignores its context and answers after both deadlines have passed,
		// so that both Timeouts fire; then both fallbacks run, the inner one
		// passing the error on.
		tooLate := func(context.Context) (string, error) {
			time.Sleep(2 * time.Minute)
			return "", errPipelineSlow
		}
		get := resilience.WrapWith(tel, tooLate,
			fallback.Value("cached"),
			fallback.Func(func(_ context.Context, err error) (string, error) { return "", err }),
			resilience.Timeout[string](time.Minute),
			resilience.Timeout[string](time.Second),
			recorder,
		)

		ctx, caller := h.StartSpan(context.Background(), "GET /price")
		v, err := get(ctx)
		caller.End()
		require.NoError(t, err)
		require.Equal(t, "cached", v)

		pricing := telemetry.KeyPolicyName.String("pricing")
		h.AssertInt64(telemetry.MetricTimeoutExceeded, 2, pricing)
		h.AssertInt64(telemetry.MetricFallbackExecutions, 2, pricing, telemetry.KeyErrorType.String("timeout"))
		assert.Equal(t, []string{"pricing"}, policyNames(t, h, telemetry.MetricTimeoutExceeded), "one series, the pipeline's")
		assert.Equal(t, []string{"pricing"}, policyNames(t, h, telemetry.MetricFallbackExecutions), "one series, the pipeline's")
		assert.Equal(t, [][2]string{
			{telemetry.EventTimeoutExceeded, "pricing"},
			{telemetry.EventTimeoutExceeded, "pricing"},
			{telemetry.EventFallbackExecuted, "pricing"},
			{telemetry.EventFallbackExecuted, "pricing"},
		}, eventPolicyNames(h.Span("GET /price")), "innermost first, every event under the pipeline's name")

		got := recorder.only(t)
		assert.Equal(t, "pricing", got.Name)
		assert.Same(t, h.TracerProvider, got.TracerProvider, "a policy of the user's own gets the pipeline's providers")
		assert.Same(t, h.MeterProvider, got.MeterProvider)
	})
}

func TestWrap_AroundABreakerReportsUnderTheBreakersNameAndProviders(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		b := breaker.New("prices", breaker.WithFailureThreshold(1),
			breaker.WithTracerProvider(h.TracerProvider), breaker.WithMeterProvider(h.MeterProvider))
		recorder := &recordedTelemetry{}
		// The breaker need not come first: the fallback outside it reports
		// under its name too.
		get := resilience.Wrap(fetchPrice,
			fallback.Value("cached"),
			breaker.Policy[string](b),
			resilience.Timeout[string](time.Second),
			recorder,
		)

		for _, span := range []string{"slow", "rejected"} {
			ctx, caller := h.StartSpan(context.Background(), span)
			v, err := get(ctx)
			caller.End()
			require.NoError(t, err)
			require.Equal(t, "cached", v)
		}
		require.Equal(t, breaker.Open, b.State())

		prices := telemetry.KeyPolicyName.String("prices")
		h.AssertInt64(telemetry.MetricTimeoutExceeded, 1, prices)
		h.AssertInt64(telemetry.MetricFallbackExecutions, 1, prices, telemetry.KeyErrorType.String("timeout"))
		h.AssertInt64(telemetry.MetricFallbackExecutions, 1, prices, telemetry.KeyErrorType.String("circuit_open"))
		assert.Equal(t, []string{"prices"}, policyNames(t, h, telemetry.MetricTimeoutExceeded))
		assert.Equal(t, []string{"prices", "prices"}, policyNames(t, h, telemetry.MetricFallbackExecutions))
		assert.Equal(t, [][2]string{
			{telemetry.EventTimeoutExceeded, "prices"},
			{telemetry.EventBreakerTransition, "prices"},
			{telemetry.EventFallbackExecuted, "prices"},
		}, eventPolicyNames(h.Span("slow")))
		assert.Equal(t, [][2]string{
			{telemetry.EventBreakerRejected, "prices"},
			{telemetry.EventFallbackExecuted, "prices"},
		}, eventPolicyNames(h.Span("rejected")))

		got := recorder.only(t)
		assert.Equal(t, "prices", got.Name)
		assert.Same(t, h.TracerProvider, got.TracerProvider, "the breaker's providers")
		assert.Same(t, h.MeterProvider, got.MeterProvider)
	})
}

// Wrap takes the pipeline's Telemetry from the first breaker, field by
// field, where WrapWith left it zero.
func TestWrapWith_FieldsLeftZeroComeFromTheFirstBreaker(t *testing.T) {
	t.Parallel()
	fromBreaker, other := telemetrytest.New(t), telemetrytest.New(t)
	first := breaker.New("first", breaker.WithTracerProvider(fromBreaker.TracerProvider), breaker.WithMeterProvider(fromBreaker.MeterProvider))
	second := breaker.New("second", breaker.WithTracerProvider(other.TracerProvider), breaker.WithMeterProvider(other.MeterProvider))
	unnamedProviders := breaker.New("no-providers")
	tests := []struct {
		name     string
		tel      resilience.Telemetry
		policies []resilience.Policy[string]
		want     resilience.Telemetry
	}{
		{"all from the breaker", resilience.Telemetry{}, []resilience.Policy[string]{breaker.Policy[string](first)},
			resilience.Telemetry{Name: "first", TracerProvider: fromBreaker.TracerProvider, MeterProvider: fromBreaker.MeterProvider}},
		{"the first of two breakers", resilience.Telemetry{}, []resilience.Policy[string]{breaker.Policy[string](first), breaker.Policy[string](second)},
			resilience.Telemetry{Name: "first", TracerProvider: fromBreaker.TracerProvider, MeterProvider: fromBreaker.MeterProvider}},
		{"the name given, the providers from the breaker", resilience.Telemetry{Name: "checkout"}, []resilience.Policy[string]{breaker.Policy[string](first)},
			resilience.Telemetry{Name: "checkout", TracerProvider: fromBreaker.TracerProvider, MeterProvider: fromBreaker.MeterProvider}},
		{"a meter given, the rest from the breaker", resilience.Telemetry{MeterProvider: other.MeterProvider}, []resilience.Policy[string]{breaker.Policy[string](first)},
			resilience.Telemetry{Name: "first", TracerProvider: fromBreaker.TracerProvider, MeterProvider: other.MeterProvider}},
		{"everything given", resilience.Telemetry{Name: "checkout", TracerProvider: other.TracerProvider, MeterProvider: other.MeterProvider}, []resilience.Policy[string]{breaker.Policy[string](first)},
			resilience.Telemetry{Name: "checkout", TracerProvider: other.TracerProvider, MeterProvider: other.MeterProvider}},
		{"a breaker with the global providers", resilience.Telemetry{}, []resilience.Policy[string]{breaker.Policy[string](unnamedProviders)},
			resilience.Telemetry{Name: "no-providers"}},
		{"no breaker", resilience.Telemetry{}, nil,
			resilience.Telemetry{Name: "github.com/levee-go/levee/resilience_test.fetchPrice"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recorder := &recordedTelemetry{}
			resilience.WrapWith(tt.tel, fetchPrice, append(slices.Clone(tt.policies), recorder)...)
			got := recorder.only(t)
			assert.Equal(t, tt.want.Name, got.Name)
			assert.Equal(t, tt.want.TracerProvider, got.TracerProvider)
			assert.Equal(t, tt.want.MeterProvider, got.MeterProvider)
		})
	}
}

// Two pipelines given no name (and no breaker to take one from) report
// under the names of the functions they guard, even when they share one
// Timeout and one fallback value: their series never merge.
func TestWrap_PipelinesWithNoNameAroundDifferentFunctionsNeverShareSeries(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		providers := resilience.Telemetry{TracerProvider: h.TracerProvider, MeterProvider: h.MeterProvider}
		timeout := resilience.Timeout[string](time.Second)
		cached := fallback.Value("cached")
		closureA := func(ctx context.Context) (string, error) { return fetchPrice(ctx) }
		closureB := func(ctx context.Context) (string, error) { return fetchPrice(ctx) }
		for _, fn := range []resilience.Func[string]{fetchPrice, fetchStock, closureA, closureB} {
			v, err := resilience.WrapWith(providers, fn, cached, timeout)(context.Background())
			require.NoError(t, err)
			require.Equal(t, "cached", v)
		}
		_, err := resilience.Do(context.Background(), fetchStock, timeout)
		require.ErrorIs(t, err, resilience.ErrTimeout)
		assert.Contains(t, err.Error(), `"github.com/levee-go/levee/resilience_test.fetchStock"`, "Do builds an unnamed pipeline too")

		exceeded := policyNames(t, h, telemetry.MetricTimeoutExceeded)
		assert.Len(t, exceeded, 4, "one series per function: %v", exceeded)
		assert.Equal(t, exceeded, policyNames(t, h, telemetry.MetricFallbackExecutions), "each fallback beside its pipeline's timeout")
		assert.NotContains(t, exceeded, resilience.DefaultTimeoutName)
		assert.Subset(t, exceeded, []string{
			"github.com/levee-go/levee/resilience_test.fetchPrice",
			"github.com/levee-go/levee/resilience_test.fetchStock",
		})
		h.AssertInt64(telemetry.MetricTimeoutExceeded, 1, telemetry.KeyPolicyName.String("github.com/levee-go/levee/resilience_test.fetchStock"))
		h.AssertInt64(telemetry.MetricTimeoutExceeded, 1, telemetry.KeyPolicyName.String("github.com/levee-go/levee/resilience_test.fetchPrice"))
	})
}

// Named renames one policy of a pipeline, and keeps the pipeline's
// providers; the pipeline's other policies keep its name.
func TestNamed_OverridesOnePolicysName(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		tel := resilience.Telemetry{Name: "pricing", TracerProvider: h.TracerProvider, MeterProvider: h.MeterProvider}
		recorder := &recordedTelemetry{}
		get := resilience.WrapWith(tel, fetchPrice,
			fallback.Value("cached"),
			resilience.Timeout[string](time.Minute),
			resilience.Named("pricing-attempt", resilience.Timeout[string](time.Second)),
			resilience.Named[string]("recorded", recorder),
		)

		v, err := get(context.Background())
		require.NoError(t, err)
		require.Equal(t, "cached", v)

		assert.Equal(t, []string{"pricing-attempt"}, policyNames(t, h, telemetry.MetricTimeoutExceeded), "the inner timeout fired, under its own name")
		assert.Equal(t, []string{"pricing"}, policyNames(t, h, telemetry.MetricFallbackExecutions), "the fallback keeps the pipeline's name")
		got := recorder.only(t)
		assert.Equal(t, "recorded", got.Name)
		assert.Same(t, h.TracerProvider, got.TracerProvider, "Named keeps the pipeline's providers")
		assert.Same(t, h.MeterProvider, got.MeterProvider)

		// Applied alone, a Named policy reports under its name too.
		_, err = resilience.Named("alone", resilience.Timeout[string](time.Second)).Apply(fetchPrice)(context.Background())
		assert.EqualError(t, err, `levee: timeout "alone" exceeded after 1s`)
	})
}

func TestNamed_PassesOtherPoliciesThrough(t *testing.T) {
	t.Parallel()
	var log []string
	get := resilience.Wrap(func(context.Context) (string, error) { return "fn", nil },
		resilience.Named("traced", tracing("a", &log)))
	v, err := get(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "a(fn)", v, "a policy that is not a TelemetryPolicy is applied as it is")
}

func TestNamed_PanicsOnAnEmptyNameOrANilPolicy(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "levee: resilience.Named: name must not be empty",
		testkit.PanicMessage(t, func() { resilience.Named("", resilience.Timeout[int](time.Second)) }))
	assert.Equal(t, `levee: resilience.Named("per-attempt"): policy must not be nil`,
		testkit.PanicMessage(t, func() { resilience.Named[int]("per-attempt", nil) }))
}

func TestWrapWith_RefusesTypedNilProvidersAndNilPoliciesNamingThem(t *testing.T) {
	t.Parallel()
	var tp *sdktrace.TracerProvider
	var mp *sdkmetric.MeterProvider
	fn := func(context.Context) (int, error) { return 0, nil }
	timeout := resilience.Timeout[int](time.Second)
	tests := []struct {
		name string
		wrap func()
		want string
	}{
		{"typed-nil tracer provider", func() { resilience.WrapWith(resilience.Telemetry{TracerProvider: tp}, fn, timeout) },
			"levee: resilience.WrapWith: Telemetry.TracerProvider: provider is a nil *trace.TracerProvider"},
		{"typed-nil meter provider", func() { resilience.WrapWith(resilience.Telemetry{MeterProvider: mp}, fn, timeout) },
			"levee: resilience.WrapWith: Telemetry.MeterProvider: provider is a nil *metric.MeterProvider"},
		{"typed-nil provider, no policies", func() { resilience.WrapWith(resilience.Telemetry{MeterProvider: mp}, fn) },
			"levee: resilience.WrapWith: Telemetry.MeterProvider: provider is a nil *metric.MeterProvider"},
		{"nil policy", func() { resilience.WrapWith(resilience.Telemetry{Name: "x"}, fn, timeout, nil) },
			"levee: resilience.WrapWith: policies[1] is nil"},
		{"nil fn", func() { resilience.WrapWith[int](resilience.Telemetry{Name: "x"}, nil, timeout) },
			"levee: resilience.WrapWith: fn must not be nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, testkit.PanicMessage(t, tt.wrap))
		})
	}
}

// A policy applied alone, outside any pipeline, reports under its default
// name; its error messages say that name too.
func TestApply_AloneUsesTheDefaultNames(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		_, err := resilience.Timeout[string](time.Second).Apply(fetchPrice)(context.Background())
		assert.EqualError(t, err, `levee: timeout "timeout" exceeded after 1s`)

		failing := fallback.Func(func(context.Context, error) (string, error) { return "", errPipelineSlow })
		_, err = failing.Apply(func(context.Context) (string, error) { return "", errBoom })(context.Background())
		assert.EqualError(t, err, `levee: fallback "fallback" failed: pipeline test: answered too late (after: boom)`)
	})
}

// A user who installs global providers passes none: a pipeline with no
// Telemetry, and a policy applied alone, report to the globals. Not
// parallel: it installs the global providers for its duration.
func TestWrap_ReportsToTheGlobalProvidersWhenGivenNone(t *testing.T) {
	h := telemetrytest.New(t)
	previousTP, previousMP := otel.GetTracerProvider(), otel.GetMeterProvider()
	otel.SetTracerProvider(h.TracerProvider)
	otel.SetMeterProvider(h.MeterProvider)
	t.Cleanup(func() {
		otel.SetTracerProvider(previousTP)
		otel.SetMeterProvider(previousMP)
	})

	synctest.Test(t, func(t *testing.T) {
		ctx, caller := h.StartSpan(context.Background(), "GET /price")
		v, err := resilience.Wrap(fetchPrice, fallback.Value("cached"), resilience.Timeout[string](time.Second))(ctx)
		require.NoError(t, err)
		require.Equal(t, "cached", v)
		_, err = resilience.Timeout[string](time.Second).Apply(fetchPrice)(ctx)
		require.ErrorIs(t, err, resilience.ErrTimeout)
		v, err = fallback.Value("cached").Apply(func(context.Context) (string, error) { return "", errBoom })(ctx)
		require.NoError(t, err)
		require.Equal(t, "cached", v)
		caller.End()
	})

	fetchPriceName := "github.com/levee-go/levee/resilience_test.fetchPrice"
	h.AssertInt64(telemetry.MetricTimeoutExceeded, 1, telemetry.KeyPolicyName.String(fetchPriceName))
	h.AssertInt64(telemetry.MetricTimeoutExceeded, 1, telemetry.KeyPolicyName.String(resilience.DefaultTimeoutName))
	h.AssertInt64(telemetry.MetricFallbackExecutions, 1, telemetry.KeyPolicyName.String(fetchPriceName))
	h.AssertInt64(telemetry.MetricFallbackExecutions, 1, telemetry.KeyPolicyName.String(fallback.DefaultName))
	assert.Len(t, h.Span("GET /price").Events(), 4, "the events go on the caller's span")
}

// Named renames a TelemetryPolicy only: around a breaker's policy it changes
// nothing, and the pipeline still takes its telemetry from the breaker.
func TestNamed_AroundABreakerChangesNothing(t *testing.T) {
	t.Parallel()
	h := telemetrytest.New(t)
	b := breaker.New("prices", breaker.WithTracerProvider(h.TracerProvider), breaker.WithMeterProvider(h.MeterProvider))
	recorder := &recordedTelemetry{}
	resilience.Wrap(fetchPrice, resilience.Named("renamed", breaker.Policy[string](b)), recorder)

	got := recorder.only(t)
	assert.Equal(t, "prices", got.Name, "the breaker keeps its name, and the pipeline takes it")
	assert.Same(t, h.TracerProvider, got.TracerProvider)
	assert.Same(t, h.MeterProvider, got.MeterProvider)
}

// A policy of the user's own gets levee's tracer and meter from its
// pipeline's Telemetry: levee's scope, on the pipeline's providers.
func TestTelemetry_TracerAndMeterAreLeveesOnThePipelinesProviders(t *testing.T) {
	t.Parallel()
	h := telemetrytest.New(t)
	tel := resilience.Telemetry{Name: "pricing", TracerProvider: h.TracerProvider, MeterProvider: h.MeterProvider}
	_, span := tel.Tracer().Start(context.Background(), "own-policy")
	span.End()
	counter, err := tel.Meter().Int64Counter("own.counter")
	require.NoError(t, err)
	counter.Add(context.Background(), 1)

	assert.Equal(t, telemetry.ScopeName, h.Span("own-policy").InstrumentationScope().Name)
	assert.Equal(t, telemetry.ScopeName, h.Instrument("own.counter").Scope.Name)
	assert.Equal(t, int64(1), h.Int64("own.counter"))
}
