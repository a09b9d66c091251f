package testkit

import (
	"context"
	"errors"
	"sync/atomic"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

var (
	// ErrSpanExport is the error of every call to a FailingSpanExporter.
	ErrSpanExport = errors.New("fault test: span export failed")
	// ErrMetricExport is the error of every call to a FailingMetricExporter
	// that can fail.
	ErrMetricExport = errors.New("fault test: metric export failed")
	// ErrMeterRefused is the error of every instrument and callback a
	// FaultyMeterProvider's meter is asked for.
	ErrMeterRefused = errors.New("fault test: meter refused")
)

var (
	_ sdktrace.SpanExporter = (*FailingSpanExporter)(nil)
	_ sdkmetric.Exporter    = (*FailingMetricExporter)(nil)
	_ metric.MeterProvider  = FaultyMeterProvider{}
)

// FailingSpanExporter is a span exporter that fails every export (and its
// shutdown) with ErrSpanExport.
type FailingSpanExporter struct{ exports atomic.Int64 }

// ExportSpans counts the export and fails it.
func (e *FailingSpanExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error {
	e.exports.Add(1)
	return ErrSpanExport
}

// Shutdown fails.
func (e *FailingSpanExporter) Shutdown(context.Context) error { return ErrSpanExport }

// Exports returns how many exports were attempted.
func (e *FailingSpanExporter) Exports() int64 { return e.exports.Load() }

// FailingMetricExporter is a metric exporter, with the default temporality
// and aggregations, that fails every export, flush and shutdown with
// ErrMetricExport.
type FailingMetricExporter struct{ exports atomic.Int64 }

// Temporality is the SDK's default.
func (e *FailingMetricExporter) Temporality(k sdkmetric.InstrumentKind) metricdata.Temporality {
	return sdkmetric.DefaultTemporalitySelector(k)
}

// Aggregation is the SDK's default.
func (e *FailingMetricExporter) Aggregation(k sdkmetric.InstrumentKind) sdkmetric.Aggregation {
	return sdkmetric.DefaultAggregationSelector(k)
}

// Export counts the export and fails it.
func (e *FailingMetricExporter) Export(context.Context, *metricdata.ResourceMetrics) error {
	e.exports.Add(1)
	return ErrMetricExport
}

// ForceFlush fails.
func (e *FailingMetricExporter) ForceFlush(context.Context) error { return ErrMetricExport }

// Shutdown fails.
func (e *FailingMetricExporter) Shutdown(context.Context) error { return ErrMetricExport }

// Exports returns how many exports were attempted.
func (e *FailingMetricExporter) Exports() int64 { return e.exports.Load() }

// FaultyMeterProvider hands out a meter that refuses what levee asks of it:
// creating an int64 counter, observable counter or observable up-down
// counter fails with ErrMeterRefused, and so does registering a callback.
type FaultyMeterProvider struct {
	noop.MeterProvider
	// NilInstruments makes a refused instrument creation return no
	// instrument; otherwise it returns a working no-op one with the error,
	// as SDKs do for a bad name.
	NilInstruments bool
}

// Meter returns the faulty meter.
func (p FaultyMeterProvider) Meter(string, ...metric.MeterOption) metric.Meter {
	return faultyMeter{nilInstruments: p.NilInstruments}
}

// faultyMeter is the meter of a FaultyMeterProvider.
type faultyMeter struct {
	noop.Meter
	nilInstruments bool
}

func (m faultyMeter) Int64Counter(name string, opts ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	if m.nilInstruments {
		return nil, ErrMeterRefused
	}
	c, _ := m.Meter.Int64Counter(name, opts...)
	return c, ErrMeterRefused
}

func (m faultyMeter) Int64ObservableCounter(name string, opts ...metric.Int64ObservableCounterOption) (metric.Int64ObservableCounter, error) {
	if m.nilInstruments {
		return nil, ErrMeterRefused
	}
	c, _ := m.Meter.Int64ObservableCounter(name, opts...)
	return c, ErrMeterRefused
}

func (m faultyMeter) Int64ObservableUpDownCounter(name string, opts ...metric.Int64ObservableUpDownCounterOption) (metric.Int64ObservableUpDownCounter, error) {
	if m.nilInstruments {
		return nil, ErrMeterRefused
	}
	c, _ := m.Meter.Int64ObservableUpDownCounter(name, opts...)
	return c, ErrMeterRefused
}

func (m faultyMeter) RegisterCallback(metric.Callback, ...metric.Observable) (metric.Registration, error) {
	return nil, ErrMeterRefused
}
