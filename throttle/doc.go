// Package throttle is levee's adaptive client-side throttling, as Google's
// SRE book describes it ("Handling Overload"): a client that sees its
// dependency refuse more and more of its calls starts refusing some itself,
// locally and at no cost to the dependency, in proportion to how much the
// dependency has been refusing.
//
// Over a recent window (two minutes by default) a Throttle counts requests
// (every call it saw, those it refused included) and accepts (calls the
// dependency served), and refuses the next call with probability
//
//	max(0, (requests - K·accepts) / (requests + 1))
//
// with K = 2 by default. While the dependency accepts at least one call in
// K, nothing is refused; past that, the throttle lets through about K times
// what the dependency accepts, and sheds the rest before it leaves the
// process. Refused calls return ErrThrottled.
//
// Create a Throttle with New, then guard calls with Call or put Policy in a
// resilience pipeline. Decisions are reported through OpenTelemetry (see
// docs/telemetry.md), the current probability included; a call through a
// healthy dependency does no OpenTelemetry work. docs/limits.md compares the
// throttle with the bulkhead and the rate limit.
package throttle
