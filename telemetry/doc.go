// Package telemetry holds what every levee policy shares to report itself
// through OpenTelemetry: the instrumentation scope, the metric, span and event
// names, the attribute keys and their bounded values, and small helpers that
// emit them.
//
// The names here are a contract with dashboards and alerts: they do not
// change between minor versions. docs/telemetry.md lists every signal, its
// kind, unit and attributes, and when it fires.
//
// This package depends on the OpenTelemetry API alone. It never installs a
// global provider; a policy given no provider uses the globals
// (otel.GetTracerProvider, otel.GetMeterProvider), which are no-ops until the
// application installs an SDK.
//
// Package telemetrytest, beside this one, records all of it in memory for
// tests: yours and levee's own.
package telemetry
