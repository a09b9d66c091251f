// Package testkit is the test-support code that levee's test suites share:
// the message of a panic, a recorder of what reaches the OpenTelemetry error
// handler, and span and metric exporters and a meter that fail on purpose.
//
// It imports testify and the OpenTelemetry SDK, so only tests may import it:
// levee's library code never does.
package testkit
