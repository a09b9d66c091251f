// Package leveeredis coordinates levee's policies across the instances of a
// service through Redis: fleet-wide breakers, rate limits and retry budgets.
//
// It is a module of its own, so that users of levee's core never download a
// Redis client. Nothing on a policy's call path waits for Redis: each instance
// keeps its local policy, and a background loop per instance exchanges state
// with Redis under bounded timeouts. When Redis is down, slow or partitioned,
// every instance goes on with its local policies alone, and says so in its
// telemetry (docs/fleet.md).
package leveeredis
