package telemetrytest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TB is the part of testing.TB a Harness uses: *testing.T and *testing.B
// satisfy it, and so does any testify-compatible test double that can run
// cleanups.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
	FailNow()
	Cleanup(func())
}

// Harness records, in memory, the spans and metrics of one test.
//
// Hand TracerProvider and MeterProvider to the code under test (a breaker
// takes them as WithTracerProvider and WithMeterProvider options, a
// pipeline as its resilience.Telemetry, or from its breaker), then read
// what it reported: Spans, Span and Events for traces; Int64,
// Metric and Instrument for metrics; the Assert methods to fail the test
// with a message listing what was expected and what exists.
//
// Spans are recorded synchronously: a span is visible as soon as it ends.
// Metrics are read when asked for: each read collects afresh, running the
// observable instruments' callbacks, and values are cumulative since the
// instrument was created.
//
// A Harness is safe for concurrent use. The methods that stop the test
// (Span, Metric, Instrument) call FailNow, so call them from the test's own
// goroutine, as with testing.T.
type Harness struct {
	// TracerProvider is an SDK TracerProvider that records every span it
	// samples, synchronously. It samples as the SDK does by default: every
	// root span, and the children of sampled parents.
	TracerProvider *sdktrace.TracerProvider
	// MeterProvider is an SDK MeterProvider read by a ManualReader, with
	// cumulative temporality and the default aggregations.
	MeterProvider *sdkmetric.MeterProvider

	t      TB
	spans  *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader

	mu          sync.Mutex
	instruments map[string]sdkmetric.Instrument // by name, as created
}

// New returns a Harness for the test t. Its providers are shut down when
// the test and its subtests end (t.Cleanup). New never touches the global
// OpenTelemetry providers, so tests using it can run in parallel.
func New(t TB) *Harness {
	t.Helper()
	h := &Harness{
		t:           t,
		spans:       tracetest.NewSpanRecorder(),
		reader:      sdkmetric.NewManualReader(),
		instruments: make(map[string]sdkmetric.Instrument),
	}
	h.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(h.spans))
	h.MeterProvider = sdkmetric.NewMeterProvider(
		sdkmetric.WithReader(h.reader),
		// A view that matches nothing: it only notes how each instrument
		// was created, which the collected data does not say.
		sdkmetric.WithView(h.noteInstrument),
	)
	t.Cleanup(func() {
		ctx := context.Background()
		err := errors.Join(h.TracerProvider.Shutdown(ctx), h.MeterProvider.Shutdown(ctx))
		if err != nil {
			t.Errorf("telemetrytest: shutting the providers down: %v", err)
		}
	})
	return h
}

func (h *Harness) noteInstrument(inst sdkmetric.Instrument) (sdkmetric.Stream, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, seen := h.instruments[inst.Name]; !seen {
		h.instruments[inst.Name] = inst
	}
	return sdkmetric.Stream{}, false
}

// StartSpan starts a span named name on TracerProvider, to stand for the
// span of the code that calls the policy under test: pass the returned ctx
// to the call, End the span, then find it with Span(name). The span is a
// root span (so it is sampled and recording) unless ctx holds a span
// already.
func (h *Harness) StartSpan(ctx context.Context, name string) (context.Context, trace.Span) {
	return h.TracerProvider.Tracer("github.com/levee-go/levee/telemetry/telemetrytest").Start(ctx, name)
}

// Spans returns the ended spans named name, in the order they ended; every
// ended span when name is "". Spans not ended yet are not included.
func (h *Harness) Spans(name string) []sdktrace.ReadOnlySpan {
	ended := h.spans.Ended()
	if name == "" {
		return ended
	}
	var named []sdktrace.ReadOnlySpan
	for _, s := range ended {
		if s.Name() == name {
			named = append(named, s)
		}
	}
	return named
}

// Span returns the one ended span named name. When there is none, or more
// than one, it stops the test (FailNow), listing the spans that ended.
func (h *Harness) Span(name string) sdktrace.ReadOnlySpan {
	h.t.Helper()
	named := h.Spans(name)
	if len(named) != 1 {
		require.Fail(h.t, fmt.Sprintf("want exactly one ended span named %q, found %d", name, len(named)),
			"ended spans: %s", spanNames(h.spans.Ended()))
		return nil
	}
	return named[0]
}

// Events returns the span events named name on every ended span, in the
// order the spans ended and, within a span, the order the events were
// added.
func (h *Harness) Events(name string) []sdktrace.Event {
	var events []sdktrace.Event
	for _, s := range h.spans.Ended() {
		events = append(events, EventsOn(s, name)...)
	}
	return events
}

// EventsOn returns the events named name on span, in the order they were
// added.
func EventsOn(span sdktrace.ReadOnlySpan, name string) []sdktrace.Event {
	var events []sdktrace.Event
	for _, e := range span.Events() {
		if e.Name == name {
			events = append(events, e)
		}
	}
	return events
}

// Collect reads every metric now, running the observable instruments'
// callbacks, and returns the data as the SDK reports it. A collection error
// fails the test (the data read so far is still returned).
func (h *Harness) Collect() metricdata.ResourceMetrics {
	h.t.Helper()
	var rm metricdata.ResourceMetrics
	if err := h.reader.Collect(context.Background(), &rm); err != nil {
		h.t.Errorf("telemetrytest: collecting metrics: %v", err)
	}
	return rm
}

// Metric collects the metrics and returns the one named name, with its
// unit, description and data. When no metric of that name has data it
// stops the test (FailNow), listing those that have. A synchronous
// instrument has data once it has recorded a measurement; an observable one
// once its callback has observed a value.
func (h *Harness) Metric(name string) metricdata.Metrics {
	h.t.Helper()
	rm := h.Collect()
	if m, ok := find(rm, name); ok {
		return m
	}
	require.Fail(h.t, fmt.Sprintf("no data for metric %q", name), "metrics with data: %s", metricNames(rm))
	return metricdata.Metrics{}
}

// Instrument returns how the instrument named name was created on
// MeterProvider: its Kind (sdkmetric.InstrumentKindCounter,
// InstrumentKindObservableUpDownCounter, ...), Unit, Description and Scope,
// which the collected data alone does not tell. When no instrument of that
// name was created it stops the test (FailNow), listing those that were.
func (h *Harness) Instrument(name string) sdkmetric.Instrument {
	h.t.Helper()
	inst, ok := h.instrument(name)
	if !ok {
		require.Fail(h.t, fmt.Sprintf("no instrument named %q was created", name), "instruments: %s", h.instrumentNames())
	}
	return inst
}

func (h *Harness) instrument(name string) (sdkmetric.Instrument, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	inst, ok := h.instruments[name]
	return inst, ok
}

func (h *Harness) instrumentNames() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	names := make([]string, 0, len(h.instruments))
	for name := range h.instruments {
		names = append(names, name)
	}
	slices.Sort(names)
	return "[" + strings.Join(names, ", ") + "]"
}

// Int64 collects the metrics and returns the value of the int64 metric
// named name (a counter, an up-down counter or a gauge, synchronous or
// observable) summed over its data points whose attributes include every
// one of attrs; with no attrs, over all its points. A point may carry more
// attributes than attrs names.
//
// It returns 0 when no point matches: a counter that has not counted yet
// reports no data. It fails the test (Errorf) when no instrument named name
// was ever created on MeterProvider, or when the metric is not an int64 sum
// or gauge. AssertInt64 lists the points that exist when a value is not the
// one expected.
func (h *Harness) Int64(name string, attrs ...attribute.KeyValue) int64 {
	h.t.Helper()
	v, _ := h.int64(name, attrs)
	return v
}

// AssertInt64 asserts that Int64(name, attrs...) is want. When it is not,
// it fails the test (Errorf: the test goes on) with a message naming the
// metric, the attributes asked for and the data points that exist, and
// returns false.
func (h *Harness) AssertInt64(name string, want int64, attrs ...attribute.KeyValue) bool {
	h.t.Helper()
	got, points := h.int64(name, attrs)
	return assert.Equal(h.t, want, got, "%s%s\ndata points:%s", name, formatAttrs(attrs), points)
}

// int64 returns the matching sum and a listing of the metric's points.
func (h *Harness) int64(name string, attrs []attribute.KeyValue) (int64, string) {
	h.t.Helper()
	if _, created := h.instrument(name); !created {
		assert.Fail(h.t, fmt.Sprintf("no instrument named %q was created", name), "instruments: %s", h.instrumentNames())
		return 0, " none"
	}
	m, ok := find(h.Collect(), name)
	if !ok {
		return 0, " none (no measurement recorded yet)"
	}
	var points []metricdata.DataPoint[int64]
	switch data := m.Data.(type) {
	case metricdata.Sum[int64]:
		points = data.DataPoints
	case metricdata.Gauge[int64]:
		points = data.DataPoints
	default:
		assert.Fail(h.t, fmt.Sprintf("metric %q is not an int64 sum or gauge", name), "its data is %T", m.Data)
		return 0, " none"
	}
	var sum int64
	var listing strings.Builder
	for _, p := range points {
		if includes(p.Attributes, attrs) {
			sum += p.Value
		}
		fmt.Fprintf(&listing, "\n  {%s} = %d", p.Attributes.Encoded(attribute.DefaultEncoder()), p.Value)
	}
	return sum, listing.String()
}

// AssertAttributes asserts that got holds every attribute in want, with the
// same value; got may hold others too. When it does not, it fails the test
// (Errorf) listing what is missing or different and what got holds, and
// returns false. Use it on span attributes (span.Attributes()) and event
// attributes (event.Attributes).
func (h *Harness) AssertAttributes(got []attribute.KeyValue, want ...attribute.KeyValue) bool {
	h.t.Helper()
	set := attribute.NewSet(got...)
	var problems []string
	for _, kv := range want {
		v, ok := set.Value(kv.Key)
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("missing %s=%s", kv.Key, kv.Value.Emit()))
		case v != kv.Value:
			problems = append(problems, fmt.Sprintf("%s: want %s (%s), got %s (%s)", kv.Key, kv.Value.Emit(), kv.Value.Type(), v.Emit(), v.Type()))
		}
	}
	if len(problems) == 0 {
		return true
	}
	return assert.Fail(h.t, "attributes differ: "+strings.Join(problems, "; "), "attributes: {%s}", set.Encoded(attribute.DefaultEncoder()))
}

func find(rm metricdata.ResourceMetrics, name string) (metricdata.Metrics, bool) {
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m, true
			}
		}
	}
	return metricdata.Metrics{}, false
}

func includes(set attribute.Set, attrs []attribute.KeyValue) bool {
	for _, kv := range attrs {
		if v, ok := set.Value(kv.Key); !ok || v != kv.Value {
			return false
		}
	}
	return true
}

func formatAttrs(attrs []attribute.KeyValue) string {
	if len(attrs) == 0 {
		return ""
	}
	set := attribute.NewSet(attrs...)
	return "{" + set.Encoded(attribute.DefaultEncoder()) + "}"
}

func metricNames(rm metricdata.ResourceMetrics) string {
	var names []string
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			names = append(names, m.Name)
		}
	}
	slices.Sort(names)
	return "[" + strings.Join(slices.Compact(names), ", ") + "]"
}

func spanNames(spans []sdktrace.ReadOnlySpan) string {
	names := make([]string, len(spans))
	for i, s := range spans {
		names[i] = s.Name()
	}
	return "[" + strings.Join(names, ", ") + "]"
}
