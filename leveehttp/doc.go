// Package leveehttp puts levee's policies on HTTP: a Transport that guards
// the calls an http.Client makes, and middleware that sheds load from a
// server's handler: Handler with a circuit breaker, BulkheadHandler,
// RateLimitHandler and ThrottleHandler with the limits.
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
// Retries and hedges go in the same pipeline, outside the breaker, and
// need nothing more of the caller than a request whose body can be sent
// again:
//
//	client := &http.Client{Transport: leveehttp.NewTransport(nil,
//		retry.Policy[*http.Response](retry.WithBudget(paymentsBudget)), // each attempt below is retried
//		breaker.Policy[*http.Response](payments),                       // counts every attempt
//		resilience.Timeout[*http.Response](2*time.Second),               // bounds each attempt
//	)}
//
// What the Transport does for them:
//
//   - Every attempt after the first sends the body again, from
//     Request.GetBody (http.NewRequest sets it for *bytes.Buffer,
//     *bytes.Reader and *strings.Reader bodies). A request with a body and
//     no GetBody is refused at its first retry with ErrBodyNotReplayable,
//     sending nothing; the retry returns it at once, and a breaker ignores
//     it. A hedge of such a request is not sent, and the call goes on with
//     its first attempt.
//   - A 429 or 503's Retry-After reaches the retry as the failure's
//     RetryAfter hint: the next delay is at least that long, and a hint
//     that would pass the caller's deadline (or the retry's maximum delay)
//     stops the retry at once.
//   - No response is left open. A failed response is closed as soon as the
//     retry decides to try again (ResponseError.Release), before it waits,
//     so that it holds no connection through the delay; a hedge's losers
//     are closed by the Transport, whenever they arrive, with no
//     hedge.WithRelease needed. When the retries run out, the caller gets
//     the last response, whole, as without a retry; a caller whose own
//     context ends while the retry waits gets the context's error.
//   - The response the caller gets stays readable after RoundTrip returns,
//     though the hedge or timeout that produced it has cancelled its
//     context: only the request's own context ends its body.
//
// On the server side, Handler answers 503 Service Unavailable with a
// Retry-After header while its breaker is open, without running the handler:
//
//	mux.Handle("/search", leveehttp.Handler(searchHandler, breaker.New("search")))
//
// The limits shed load before it reaches the handler, each answering a
// request it refuses at once, with a Retry-After header and a short
// plain-text body, and never calling the handler for it; an admitted
// request's response is the handler's own:
//
//	perClient := ratelimit.New("api-per-client", 100, time.Minute,
//		ratelimit.WithKey(leveehttp.RequestKey(leveehttp.ClientIP))) // 429, Retry-After until the client's next token
//	slots := bulkhead.New("api", 64)                                 // 503: at most 64 requests in the handler
//	mux.Handle("/api/", leveehttp.RateLimitHandler(leveehttp.BulkheadHandler(api, slots), perClient))
//
// ThrottleHandler answers 503 too, in proportion to how much of its work
// the handler has been failing (5xx and 429 answers, by default: see
// WithServed). ClientIP trusts no header; ForwardedClientIP reads
// X-Forwarded-For as far as the proxies you name wrote it.
package leveehttp
