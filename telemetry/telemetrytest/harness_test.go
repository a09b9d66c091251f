package telemetrytest_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/trace"

	"github.com/levee-go/levee/telemetry/telemetrytest"
)

// recordingT is a test double that keeps the failures a Harness reports, so
// that the harness's own failure messages can be checked.
type recordingT struct {
	errors   []string
	stopped  bool
	cleanups []func()
}

type stopTest struct{}

func (*recordingT) Helper() {}
func (r *recordingT) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}
func (r *recordingT) FailNow()          { r.stopped = true; panic(stopTest{}) }
func (r *recordingT) Cleanup(fn func()) { r.cleanups = append(r.cleanups, fn) }

func (r *recordingT) runCleanups() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

func (r *recordingT) failures() string { return strings.Join(r.errors, "\n") }

// stops runs f and reports whether it stopped the test with FailNow.
func stops(f func()) (stopped bool) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(stopTest); !ok {
				panic(r)
			}
			stopped = true
		}
	}()
	f()
	return false
}

var (
	keyName  = attribute.Key("name")
	keyColor = attribute.Key("color")
)

func counter(t *testing.T, h *telemetrytest.Harness, name string) metric.Int64Counter {
	t.Helper()
	c, err := h.MeterProvider.Meter("test").Int64Counter(name, metric.WithUnit("{thing}"))
	require.NoError(t, err)
	return c
}

func TestNew_RegistersCleanupThatShutsProvidersDown(t *testing.T) {
	t.Parallel()
	rt := new(recordingT)
	h := telemetrytest.New(rt)
	require.Len(t, rt.cleanups, 1, "New registers one cleanup")

	_, before := h.StartSpan(context.Background(), "before")
	assert.True(t, before.IsRecording(), "spans record until cleanup")
	before.End()

	rt.runCleanups()

	_, after := h.StartSpan(context.Background(), "after")
	assert.False(t, after.IsRecording(), "a shut-down TracerProvider records nothing")
	after.End()
	assert.Len(t, h.Spans(""), 1, "only the span ended before cleanup is recorded")
	assert.Empty(t, rt.errors, "a clean shutdown reports no error")
}

func TestInt64_SumsPointsWhoseAttributesIncludeThoseAskedFor(t *testing.T) {
	t.Parallel()
	h := telemetrytest.New(t)
	c := counter(t, h, "things")
	ctx := context.Background()
	c.Add(ctx, 2, metric.WithAttributes(keyName.String("a"), keyColor.String("red")))
	c.Add(ctx, 3, metric.WithAttributes(keyName.String("a"), keyColor.String("blue")))
	c.Add(ctx, 5, metric.WithAttributes(keyName.String("b"), keyColor.String("red")))

	assert.Equal(t, int64(10), h.Int64("things"), "no attributes: every point")
	assert.Equal(t, int64(5), h.Int64("things", keyName.String("a")), "a point may carry more attributes")
	assert.Equal(t, int64(7), h.Int64("things", keyColor.String("red")))
	assert.Equal(t, int64(2), h.Int64("things", keyName.String("a"), keyColor.String("red")))
	assert.Equal(t, int64(0), h.Int64("things", keyName.String("c")), "no matching point reads 0")
}

func TestInt64_ReadsObservableInstrumentsAndGauges(t *testing.T) {
	t.Parallel()
	h := telemetrytest.New(t)
	meter := h.MeterProvider.Meter("test")
	level := int64(4)
	_, err := meter.Int64ObservableUpDownCounter("level", metric.WithInt64Callback(
		func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(level, metric.WithAttributes(keyName.String("a")))
			return nil
		}))
	require.NoError(t, err)
	gauge, err := meter.Int64Gauge("temperature")
	require.NoError(t, err)
	gauge.Record(context.Background(), -3)

	assert.Equal(t, int64(4), h.Int64("level", keyName.String("a")))
	level = 7
	assert.Equal(t, int64(7), h.Int64("level", keyName.String("a")), "each read collects afresh")
	assert.Equal(t, int64(-3), h.Int64("temperature"))
}

func TestInt64_ReadsZeroBeforeTheFirstMeasurement(t *testing.T) {
	t.Parallel()
	rt := new(recordingT)
	h := telemetrytest.New(rt)
	_ = counter(t, h, "things")

	assert.Equal(t, int64(0), h.Int64("things"))
	assert.True(t, h.AssertInt64("things", 0))
	assert.Empty(t, rt.errors)
}

func TestInt64_FailsForAnInstrumentNeverCreated(t *testing.T) {
	t.Parallel()
	rt := new(recordingT)
	h := telemetrytest.New(rt)
	_ = counter(t, h, "things")

	assert.Equal(t, int64(0), h.Int64("thingz"))
	require.Len(t, rt.errors, 1)
	assert.Contains(t, rt.failures(), `no instrument named "thingz" was created`)
	assert.Contains(t, rt.failures(), "instruments: [things]", "the message lists what exists")
	assert.False(t, rt.stopped, "Int64 reports and lets the test go on")
}

func TestInt64_FailsForAMetricThatIsNotInt64(t *testing.T) {
	t.Parallel()
	rt := new(recordingT)
	h := telemetrytest.New(rt)
	c, err := h.MeterProvider.Meter("test").Float64Counter("seconds")
	require.NoError(t, err)
	c.Add(context.Background(), 1.5)

	assert.Equal(t, int64(0), h.Int64("seconds"))
	assert.Contains(t, rt.failures(), `metric "seconds" is not an int64 sum or gauge`)
	assert.Contains(t, rt.failures(), "metricdata.Sum[float64]")
}

func TestAssertInt64_FailureNamesExpectedValueAndListsPoints(t *testing.T) {
	t.Parallel()
	rt := new(recordingT)
	h := telemetrytest.New(rt)
	c := counter(t, h, "things")
	c.Add(context.Background(), 2, metric.WithAttributes(keyName.String("a"), keyColor.String("red")))

	assert.False(t, h.AssertInt64("things", 3, keyName.String("a")))
	assert.True(t, h.AssertInt64("things", 2, keyName.String("a")))

	require.Len(t, rt.errors, 1, "only the wrong expectation fails")
	msg := rt.failures()
	assert.Contains(t, msg, "expected: 3")
	assert.Contains(t, msg, "actual  : 2")
	assert.Contains(t, msg, "things{name=a}", "the message names the metric and attributes asked for")
	assert.Contains(t, msg, "{color=red,name=a} = 2", "the message lists the points that exist")
}

func TestMetric_ReturnsUnitAndDataOrStopsListingMetricsWithData(t *testing.T) {
	t.Parallel()
	rt := new(recordingT)
	h := telemetrytest.New(rt)
	c := counter(t, h, "things")
	_ = counter(t, h, "unused")
	c.Add(context.Background(), 1)

	m := h.Metric("things")
	assert.Equal(t, "things", m.Name)
	assert.Equal(t, "{thing}", m.Unit)
	sum, ok := m.Data.(metricdata.Sum[int64])
	require.True(t, ok, "a counter's data is a Sum, got %T", m.Data)
	assert.True(t, sum.IsMonotonic)
	assert.Equal(t, metricdata.CumulativeTemporality, sum.Temporality)

	assert.True(t, stops(func() { h.Metric("unused") }), "a metric with no data stops the test")
	assert.Contains(t, rt.failures(), `no data for metric "unused"`)
	assert.Contains(t, rt.failures(), "metrics with data: [things]")
}

func TestInstrument_TellsHowTheInstrumentWasCreated(t *testing.T) {
	t.Parallel()
	rt := new(recordingT)
	h := telemetrytest.New(rt)
	meter := h.MeterProvider.Meter("scope", metric.WithInstrumentationVersion("v1.2.3"))
	_, err := meter.Int64ObservableCounter("observed", metric.WithUnit("{call}"), metric.WithDescription("Observed calls."))
	require.NoError(t, err)

	inst := h.Instrument("observed")
	assert.Equal(t, sdkmetric.InstrumentKindObservableCounter, inst.Kind)
	assert.Equal(t, "{call}", inst.Unit)
	assert.Equal(t, "Observed calls.", inst.Description)
	assert.Equal(t, "scope", inst.Scope.Name)
	assert.Equal(t, "v1.2.3", inst.Scope.Version)

	assert.True(t, stops(func() { h.Instrument("missing") }))
	assert.Contains(t, rt.failures(), `no instrument named "missing" was created`)
	assert.Contains(t, rt.failures(), "instruments: [observed]")
}

func TestSpans_FindsEndedSpansByNameInTheOrderTheyEnded(t *testing.T) {
	t.Parallel()
	h := telemetrytest.New(t)
	ctx, parent := h.StartSpan(context.Background(), "parent")
	require.True(t, parent.IsRecording(), "StartSpan gives a recording span")
	_, first := h.StartSpan(ctx, "child")
	_, second := h.StartSpan(ctx, "child")
	_, running := h.StartSpan(ctx, "running")
	second.End()
	first.End()
	parent.End()

	children := h.Spans("child")
	require.Len(t, children, 2)
	assert.Equal(t, second.SpanContext().SpanID(), children[0].SpanContext().SpanID(), "in the order they ended")
	assert.Equal(t, parent.SpanContext().SpanID(), children[0].Parent().SpanID(), "StartSpan makes children of the span in ctx")
	assert.Len(t, h.Spans(""), 3, `"" finds every ended span`)
	assert.Empty(t, h.Spans("running"), "a span not ended is not included")
	running.End()
}

func TestSpan_StopsUnlessExactlyOneSpanHasTheName(t *testing.T) {
	t.Parallel()
	rt := new(recordingT)
	h := telemetrytest.New(rt)
	for _, name := range []string{"once", "twice", "twice"} {
		_, s := h.StartSpan(context.Background(), name)
		s.End()
	}

	assert.Equal(t, "once", h.Span("once").Name())
	assert.False(t, stops(func() { h.Span("once") }))

	assert.True(t, stops(func() { h.Span("twice") }))
	assert.Contains(t, rt.failures(), `want exactly one ended span named "twice", found 2`)
	assert.True(t, stops(func() { h.Span("never") }))
	assert.Contains(t, rt.failures(), `want exactly one ended span named "never", found 0`)
	assert.Contains(t, rt.failures(), "ended spans: [once, twice, twice]")
}

func TestEvents_FindsEventsByNameOnEndedSpans(t *testing.T) {
	t.Parallel()
	h := telemetrytest.New(t)
	_, a := h.StartSpan(context.Background(), "a")
	a.AddEvent("hit", trace.WithAttributes(keyName.String("first")))
	a.AddEvent("miss")
	a.AddEvent("hit", trace.WithAttributes(keyName.String("second")))
	a.End()
	_, b := h.StartSpan(context.Background(), "b")
	b.AddEvent("hit", trace.WithAttributes(keyName.String("third")))
	b.End()

	hits := h.Events("hit")
	require.Len(t, hits, 3)
	for i, want := range []string{"first", "second", "third"} {
		h.AssertAttributes(hits[i].Attributes, keyName.String(want))
	}
	assert.Len(t, telemetrytest.EventsOn(h.Span("a"), "hit"), 2)
	assert.Len(t, telemetrytest.EventsOn(h.Span("b"), "miss"), 0)
	assert.Empty(t, h.Events("none"))
}

func TestAssertAttributes_ReportsMissingAndDifferentValues(t *testing.T) {
	t.Parallel()
	rt := new(recordingT)
	h := telemetrytest.New(rt)
	got := []attribute.KeyValue{keyName.String("a"), attribute.Int("count", 3)}

	assert.True(t, h.AssertAttributes(got, keyName.String("a")), "got may hold more")
	assert.True(t, h.AssertAttributes(got))
	require.Empty(t, rt.errors)

	assert.False(t, h.AssertAttributes(got, keyName.String("b"), attribute.String("count", "3"), keyColor.String("red")))
	msg := rt.failures()
	assert.Contains(t, msg, "name: want b (STRING), got a (STRING)")
	assert.Contains(t, msg, "count: want 3 (STRING), got 3 (INT64)", "a value of another type differs")
	assert.Contains(t, msg, "missing color=red")
	assert.Contains(t, msg, "attributes: {count=3,name=a}")
}
