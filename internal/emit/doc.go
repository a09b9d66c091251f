// Package emit is what every levee policy shares to report itself: levee's
// tracer and meter from a provider (the globals when none is given), span
// events that cost nothing when no span records, and a guard that keeps a
// fault in telemetry (an instrument refused, an exporter that panics) away
// from the caller. It depends on the OpenTelemetry API alone.
//
// It is internal on purpose: policy authors outside levee get their tracer
// and meter from resilience.Telemetry, a small public surface that can keep
// its promises for years.
package emit
