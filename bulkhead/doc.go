// Package bulkhead is levee's concurrency limit: it caps how many calls to
// one dependency are in flight at once, so that a slow dependency ties up a
// bounded share of a service's goroutines, connections and memory instead
// of all of them.
//
// Create a Bulkhead with New, naming it and its limit, then guard calls with
// Call or put Policy in a resilience pipeline; one bulkhead may guard calls
// of many result types. A call that finds every slot taken is rejected at
// once with an error matching ErrFull, or, with WithMaxWait, queues for a
// slot: waiters are served in the order they came, until their wait or their
// context runs out.
//
// Decisions are reported through OpenTelemetry (see docs/telemetry.md): the
// calls by outcome, the calls in flight and queued, and an event on the
// caller's span for each rejection and each wait. A call that gets a slot at
// once does no OpenTelemetry work at all. docs/limits.md compares the
// bulkhead with the rate limit and the adaptive throttle.
package bulkhead
