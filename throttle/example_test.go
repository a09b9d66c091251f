package throttle_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/throttle"
)

// A dependency that refuses every call: the throttle lets the first calls
// through, then sheds more and more of them locally. With K = 2 and no
// accepts, the probability after n requests is n/(n+1).
func Example() {
	backend := throttle.New("search", throttle.WithSeed(1)) // a seed for a reproducible example
	overloaded := errors.New("503 service unavailable")
	search := resilience.Wrap(func(context.Context) ([]string, error) { return nil, overloaded },
		throttle.Policy[[]string](backend))

	sent, shed := 0, 0
	for range 1000 {
		_, err := search(context.Background())
		if errors.Is(err, throttle.ErrThrottled) {
			shed++
		} else {
			sent++
		}
	}
	fmt.Printf("sent %d, shed %d locally; probability now %.3f\n", sent, shed, backend.Probability())
	// Output: sent 6, shed 994 locally; probability now 0.999
}

// A healthy dependency is never throttled: while it accepts at least one
// call in K, the probability stays 0.
func ExampleThrottle_Probability() {
	backend := throttle.New("search")
	flaky := 0
	call := func(context.Context) error {
		if flaky++; flaky%3 == 0 {
			return errors.New("503 service unavailable")
		}
		return nil
	}
	for range 300 {
		_ = backend.Call(context.Background(), call)
	}
	fmt.Println("probability:", backend.Probability())
	// Output: probability: 0
}
