// Package ratelimit is levee's rate limit: a token bucket that lets through
// at most n calls per period, in bursts of up to n (or WithBurst), or spaced
// evenly (Smooth). A call that finds no token is rejected at once with an
// error matching ErrLimited, whose RetryAfter says when the next token comes;
// with WithMaxWait, a call waits for its token when it will come in time.
//
// One Limiter may limit every call together, or, with WithKey, each key
// apart: a tenant, a user, a client's address, taken from the call's context
// by a function of yours. A keyed limiter keeps a bounded number of keys
// (WithMaxKeys) and forgets idle ones; see WithMaxKeys for what happens past
// the limit.
//
// Create a Limiter with New, then guard calls with Call or put Policy in a
// resilience pipeline. Decisions are reported through OpenTelemetry (see
// docs/telemetry.md) with no series per key; a call let through at once does
// no OpenTelemetry work. docs/limits.md compares the rate limit with the
// bulkhead and the adaptive throttle.
package ratelimit
