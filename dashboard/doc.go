// Package dashboard is a live web page of an application's levee policies:
// an http.Handler to mount beside net/http/pprof, at /debug/levee/ say.
//
//	d := dashboard.New()
//	payments := d.NewBreaker("payments", breaker.WithFailureThreshold(5))
//	d.AddBulkhead(pool)
//	mux.Handle("/debug/levee/", requireStaff(d)) // your own authentication
//
// The page shows every breaker, bulkhead, rate limit, throttle, retry and
// hedge registered with the dashboard: a breaker's state and its
// transitions over the last minutes as a timeline, and for every policy its
// calls by outcome with their rates, updated live over server-sent events.
// Everything it serves is embedded: no CDN, no external script, a strict
// Content-Security-Policy, and every name rendered as text. A thousand
// policies are filtered and paged on the server.
//
// It costs nothing while no one watches: no goroutine, no sampling. It reads
// the counters the policies keep anyway, when a page asks. Retries and
// hedges keep no counters (their first attempt's fast path does no work at
// all); the dashboard counts what they report to OpenTelemetry through
// MeterProvider, for the pipelines given it.
//
// Operator controls (force a breaker open, reset it) are off unless
// WithControls gives an authorization function; control requests must be
// same-origin POSTs carrying the page's CSRF token, and the change they make
// is reported like any forced transition (levee.circuit_breaker.transition,
// marked forced).
//
// The package lives at the module's root beside the policies it imports,
// rather than in a module of its own, because it needs nothing but the
// standard library and the OpenTelemetry API: an application that does not
// import it compiles none of it.
package dashboard
