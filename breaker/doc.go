// Package breaker is levee's circuit breaker: it stops calling a dependency
// that keeps failing, rejects calls at once while it waits, and lets one
// probe through to find out whether the dependency is back.
//
// The state machine:
//
//	Closed   --(the trip rule says so)---------------------> Open
//	Open     --(the open period passes: a timer)-----------> HalfOpen
//	HalfOpen --(the probes succeed)------------------------> Closed
//	HalfOpen --(a probe fails: a fresh, maybe longer, period)--> Open
//
// The trip rule is consecutive failures reaching a threshold (the default),
// or a failure rate, a slow-call rate or a function of your own over a window
// of recent calls, counted by number or by time (docs/concepts.md says when
// to use which).
//
// Create a Breaker with New, then guard calls with Call (for functions that
// return only an error) or put Policy in a resilience pipeline. Every state
// change is reported through OpenTelemetry (see docs/telemetry.md) and to the
// listeners given with WithStateChangeListener. The breaker reads the time
// package only: tests run it inside testing/synctest, where a 30-second open
// timeout passes at once (see docs/testing.md).
package breaker
