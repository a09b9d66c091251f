package telemetrytest_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/fallback"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/telemetry"
	"github.com/levee-go/levee/telemetry/telemetrytest"
)

// A test asserting that the payments breaker opened exactly once, however
// many calls failed. In a real test, t is the test's *testing.T.
func Example() {
	t := new(exampleT)
	defer t.runCleanups()

	h := telemetrytest.New(t)
	payments := breaker.New("payments", breaker.WithTracerProvider(h.TracerProvider), breaker.WithMeterProvider(h.MeterProvider))
	for range 5 {
		_ = payments.Call(context.Background(), func(context.Context) error { return errors.New("unavailable") })
	}
	h.AssertInt64(telemetry.MetricBreakerTransitions, 1, telemetry.KeyBreakerTo.String(telemetry.StateOpen))

	fmt.Println("opened:", h.Int64(telemetry.MetricBreakerTransitions, telemetry.KeyBreakerTo.String(telemetry.StateOpen)))
	fmt.Println("rejected:", h.Int64(telemetry.MetricBreakerCalls, telemetry.KeyOutcome.String(telemetry.OutcomeRejected)))
	// The breaker is used after its metrics are read: a breaker nobody
	// references is garbage, and its observable metrics go with it.
	fmt.Println("state:", payments.State())
	fmt.Println("test failed:", t.failed)
	// Output:
	// opened: 1
	// rejected: 2
	// state: open
	// test failed: false
}

// exampleT stands in for the *testing.T that a real test is given.
type exampleT struct {
	failed   bool
	cleanups []func()
}

func (*exampleT) Helper() {}

func (t *exampleT) Errorf(format string, args ...any) {
	t.failed = true
	fmt.Printf(format+"\n", args...)
}

func (t *exampleT) FailNow() {
	t.failed = true
	panic("test stopped")
}

func (t *exampleT) Cleanup(f func()) { t.cleanups = append(t.cleanups, f) }

func (t *exampleT) runCleanups() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}

// A test asserting that a pipeline's timeout fired once, reported under the
// pipeline's name. A real test would run in a testing/synctest bubble, where
// the deadline passes at once.
func Example_pipeline() {
	t := new(exampleT)
	defer t.runCleanups()

	h := telemetrytest.New(t)
	tel := resilience.Telemetry{Name: "search", TracerProvider: h.TracerProvider, MeterProvider: h.MeterProvider}
	search := resilience.WrapWith(tel, func(ctx context.Context) (string, error) {
		<-ctx.Done() // the search backend hangs
		return "", ctx.Err()
	}, fallback.Value("no results"), resilience.Timeout[string](time.Millisecond))

	results, err := search(context.Background())
	fmt.Println(results, err)
	fmt.Println("timeouts:", h.Int64(telemetry.MetricTimeoutExceeded, telemetry.KeyPolicyName.String("search")))
	fmt.Println("fallbacks:", h.Int64(telemetry.MetricFallbackExecutions, telemetry.KeyPolicyName.String("search")))
	// Output:
	// no results <nil>
	// timeouts: 1
	// fallbacks: 1
}
