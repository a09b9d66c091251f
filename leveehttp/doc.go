// Package leveehttp puts levee's policies on HTTP: a Transport that guards
// the calls an http.Client makes, and Handler, a middleware that guards a
// server's handler with a circuit breaker.
//
// On the client side, a Transport sends each request through a levee
// pipeline and counts transport errors, 5xx and 429 responses as failures:
//
//	payments := breaker.New("payments", breaker.WithRetryAfter(5*time.Minute))
//	client := &http.Client{Transport: leveehttp.NewTransport(nil,
//		breaker.Policy[*http.Response](payments),        // rejects at once while payments is down
//		resilience.Timeout[*http.Response](2*time.Second), // a slow answer counts as a failure
//	)}
//
// A failing response still reaches the caller as a response, status,
// headers and body intact, exactly as without levee: only the policies see
// it as a failure, as a *ResponseError. A rejected call returns an error
// matching breaker.ErrOpen (wrapped in a *url.Error by http.Client) and
// never touches the request's body.
//
// On the server side, Handler answers 503 Service Unavailable with a
// Retry-After header while its breaker is open, without running the handler:
//
//	mux.Handle("/search", leveehttp.Handler(searchHandler, breaker.New("search")))
package leveehttp
