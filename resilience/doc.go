// Package resilience is levee's core: the Func every policy guards, the
// Policy that wraps one Func in another, Do and Wrap that compose policies
// into one pipeline, and the Timeout policy.
//
// A Policy has the shape of net/http middleware: it takes the next Func and
// returns a Func of the same type, so a guarded function is still just a
// function. Wrap applies the policies once, when the pipeline is built, and
// the result can be called any number of times from any number of
// goroutines:
//
//	get := resilience.Wrap(fetchPrice,
//		fallback.Value(cachedPrice),           // outermost: turns any failure into a degraded answer
//		breaker.Policy[Price](priceBreaker),   // rejects at once while the dependency is down
//		resilience.Timeout[Price](time.Second), // innermost: a slow call counts as a failure
//	)
//	price, err := get(ctx)
//
// Policies are listed outermost first: Do(ctx, fn, a, b, c) runs
// a(b(c(fn))). docs/policies.md explains the order levee advises and how to
// write a policy of your own.
package resilience
