// Package fallback turns a failure into a degraded answer: a default value,
// a cached result, a reduced response. Put it outside a circuit breaker and
// the breaker's rejections become answers too, as production breakers do:
//
//	get := resilience.Wrap(fetchPrice,
//		fallback.Value(lastKnownPrice),
//		breaker.Policy[Price](priceBreaker),
//	)
//
// Value answers with a fixed value; Func computes the answer from the error.
// If restricts which errors a fallback handles.
package fallback
