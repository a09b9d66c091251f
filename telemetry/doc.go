// Package telemetry holds the names levee reports itself under through
// OpenTelemetry: the instrumentation scope, the metric, span and event
// names, the attribute keys and their bounded values, and ErrorType, which
// gives an error its bounded error.type value.
//
// The names here are a contract with dashboards and alerts: they do not
// change between minor versions. docs/telemetry.md lists every signal, its
// kind, unit and attributes, and when it fires.
//
// Policies get their providers from resilience.Telemetry, given once per
// pipeline (see resilience.WrapWith); a policy given none uses the globals
// (otel.GetTracerProvider, otel.GetMeterProvider), which are no-ops until
// the application installs an SDK. levee never installs a global provider.
//
// Package telemetrytest, beside this one, records all of it in memory for
// tests: yours and levee's own.
package telemetry
