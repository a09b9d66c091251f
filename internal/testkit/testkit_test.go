package testkit_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/levee-go/levee/internal/testkit"
)

// The helpers are what other suites' assertions stand on: each must fail
// when what it checks is not so, and report what it promises.

// recordingT keeps what a helper reports; FailNow stops the helper as
// testing.T's does, with a panic the test recovers.
type recordingT struct{ failures []string }

type stopped struct{}

func (*recordingT) Helper() {}
func (r *recordingT) Errorf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}
func (*recordingT) FailNow() { panic(stopped{}) }

// run calls f with a fresh recordingT and returns what it reported and
// whether it stopped.
func run(f func(t *recordingT)) (failures string, stop bool) {
	rt := &recordingT{}
	func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(stopped); !ok {
					panic(r)
				}
				stop = true
			}
		}()
		f(rt)
	}()
	return strings.Join(rt.failures, "\n"), stop
}

func TestPanicMessage_ReturnsTheStringPanickedWith(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "levee: bad setting", testkit.PanicMessage(t, func() { panic("levee: bad setting") }))
}

func TestPanicMessage_FailsWithoutAPanicOrWithAValueThatIsNoString(t *testing.T) {
	t.Parallel()
	failures, stop := run(func(rt *recordingT) { testkit.PanicMessage(rt, func() {}) })
	assert.True(t, stop, "no panic stops the test")
	assert.Contains(t, failures, "expected a panic")

	failures, stop = run(func(rt *recordingT) { testkit.PanicMessage(rt, func() { panic(errors.New("an error value")) }) })
	assert.True(t, stop, "a panic value that is not a string stops the test")
	assert.Contains(t, failures, "is not a string")
}

// Not parallel: CaptureOTelErrors changes the global error handler.
func TestCaptureOTelErrors_RecordsUntilTheTestEndsThenRestoresTheHandler(t *testing.T) {
	before := otel.GetErrorHandler()
	errFirst, errSecond := errors.New("first"), errors.New("second")
	var captured *testkit.OTelErrors
	t.Run("capturing", func(t *testing.T) {
		captured = testkit.CaptureOTelErrors(t)
		otel.Handle(errFirst)
		otel.Handle(errSecond)
		assert.Equal(t, []error{errFirst, errSecond}, captured.Take())
		assert.Empty(t, captured.Take(), "Take returns what came since the last Take")
	})
	assert.Equal(t, before, otel.GetErrorHandler(), "the previous handler is back once the test ends")
	captured.Handle(errors.New("after the test")) // logged as the default handler does, not recorded
	assert.Empty(t, captured.Take())
}

// Not parallel: it captures what reaches the global error handler.
func TestFailingSpanExporter_FailsAndCountsEveryExport(t *testing.T) {
	reported := testkit.CaptureOTelErrors(t)
	exporter := &testkit.FailingSpanExporter{}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	for range 2 {
		_, span := tp.Tracer("test").Start(context.Background(), "s")
		span.End()
	}
	assert.Equal(t, int64(2), exporter.Exports())
	errs := reported.Take()
	require.Len(t, errs, 2, "each failed export reaches otel.Handle")
	assert.ErrorIs(t, errs[0], testkit.ErrSpanExport)
	assert.ErrorIs(t, exporter.ExportSpans(context.Background(), nil), testkit.ErrSpanExport)
	assert.ErrorIs(t, tp.Shutdown(context.Background()), testkit.ErrSpanExport)
}

func TestFailingMetricExporter_FailsAndCountsEveryExport(t *testing.T) {
	t.Parallel()
	exporter := &testkit.FailingMetricExporter{}
	assert.Equal(t, sdkmetric.DefaultTemporalitySelector(sdkmetric.InstrumentKindCounter), exporter.Temporality(sdkmetric.InstrumentKindCounter))
	assert.Equal(t, sdkmetric.DefaultAggregationSelector(sdkmetric.InstrumentKindHistogram), exporter.Aggregation(sdkmetric.InstrumentKindHistogram))
	assert.ErrorIs(t, exporter.Export(context.Background(), &metricdata.ResourceMetrics{}), testkit.ErrMetricExport)
	assert.ErrorIs(t, exporter.ForceFlush(context.Background()), testkit.ErrMetricExport)
	assert.ErrorIs(t, exporter.Shutdown(context.Background()), testkit.ErrMetricExport)
	assert.Equal(t, int64(1), exporter.Exports())
}

func TestFaultyMeterProvider_RefusesInstrumentsAndCallbacks(t *testing.T) {
	t.Parallel()
	for _, nilInstruments := range []bool{false, true} {
		t.Run(fmt.Sprintf("NilInstruments=%v", nilInstruments), func(t *testing.T) {
			t.Parallel()
			meter := testkit.FaultyMeterProvider{NilInstruments: nilInstruments}.Meter("test")
			counter, err := meter.Int64Counter("c")
			assert.ErrorIs(t, err, testkit.ErrMeterRefused)
			observed, err := meter.Int64ObservableCounter("o")
			assert.ErrorIs(t, err, testkit.ErrMeterRefused)
			gauge, err := meter.Int64ObservableUpDownCounter("g")
			assert.ErrorIs(t, err, testkit.ErrMeterRefused)
			_, err = meter.RegisterCallback(func(context.Context, metric.Observer) error { return nil })
			assert.ErrorIs(t, err, testkit.ErrMeterRefused)
			if nilInstruments {
				assert.Nil(t, counter)
				assert.Nil(t, observed)
				assert.Nil(t, gauge)
			} else {
				require.NotNil(t, counter, "a working no-op instrument, as SDKs return for a bad name")
				assert.NotPanics(t, func() { counter.Add(context.Background(), 1) })
				assert.NotNil(t, observed)
				assert.NotNil(t, gauge)
			}
		})
	}
}

func TestBenchEnvs_ProvidersAndContexts(t *testing.T) {
	t.Parallel()
	none := testkit.BenchNoSDK(t)
	_, span := none.TP.Tracer("t").Start(none.Ctx, "s")
	assert.False(t, span.IsRecording(), "no SDK: nothing records")
	span.End()
	assert.False(t, trace.SpanFromContext(none.Ctx).IsRecording())

	sdk := testkit.BenchSDK(t)
	_, span = sdk.TP.Tracer("t").Start(sdk.Ctx, "s")
	assert.True(t, span.IsRecording(), "the SDK samples every span")
	span.End()
	assert.False(t, trace.SpanFromContext(sdk.Ctx).IsRecording(), "no span in the context")

	withSpan := testkit.BenchSDKSpan(t)
	assert.True(t, trace.SpanFromContext(withSpan.Ctx).IsRecording(), "the context carries a recording span")
}
