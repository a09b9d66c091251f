// Package breaker is levee's circuit breaker: it stops calling a dependency
// that keeps failing, rejects calls at once while it waits, and lets one
// probe through to find out whether the dependency is back.
//
// The state machine:
//
//	Closed   --(consecutive failures reach the threshold)--> Open
//	Open     --(the open timeout passes: a timer)-----------> HalfOpen
//	HalfOpen --(the probe succeeds)-------------------------> Closed
//	HalfOpen --(the probe fails: a fresh timeout)-----------> Open
//
// Create a Breaker with New, then guard calls with Call (for functions that
// return only an error) or put Policy in a resilience pipeline. Every state
// change is reported through OpenTelemetry (see docs/telemetry.md) and to the
// listeners given with WithStateChangeListener. The breaker reads the time
// package only: tests run it inside testing/synctest, where a 30-second open
// timeout passes at once (see docs/testing.md).
package breaker
