// Package telemetrytest records what levee reports through OpenTelemetry, in
// memory, so that a test can assert on it: one call to New gives a
// TracerProvider and a MeterProvider to hand to the policies under test, and
// helpers to read metric values, find spans and span events, and fail the
// test with a message that says what was expected and what was there.
//
//	func TestPaymentsBreakerOpensOnce(t *testing.T) {
//		t.Parallel()
//		h := telemetrytest.New(t)
//		b := breaker.New("payments",
//			breaker.WithTracerProvider(h.TracerProvider),
//			breaker.WithMeterProvider(h.MeterProvider))
//		// ... drive b ...
//		h.AssertInt64("levee.circuit_breaker.transitions", 1,
//			attribute.String("levee.policy.name", "payments"),
//			attribute.String("levee.circuit_breaker.to", "open"))
//	}
//
// A breaker's state and calls metrics are observed when the harness
// collects, and only for breakers still referenced: a breaker nobody
// references is garbage, and its series go with it. Keep the breaker
// referenced until the test has read them (use it afterwards, or call
// runtime.KeepAlive). A pipeline without a breaker takes the harness's
// providers in its resilience.Telemetry, given to resilience.WrapWith.
//
// A Harness never touches the global providers, so tests that use it can run
// in parallel. This package imports the OpenTelemetry SDK; import it from
// tests only.
package telemetrytest
