package retry_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/retry"
)

// A flaky dependency: it fails twice, then answers.
type flaky struct{ calls int }

func (f *flaky) price(context.Context) (float64, error) {
	f.calls++
	if f.calls < 3 {
		return 0, errors.New("connection reset")
	}
	return 41.99, nil
}

// The order levee advises: the retry outside, so that each attempt goes
// through the breaker, and the timeout inside, so that each attempt gets
// its own deadline.
func Example() {
	pricing := breaker.New("pricing")
	dep := &flaky{}
	getPrice := resilience.Wrap(dep.price,
		retry.Policy[float64](retry.WithBackoff(time.Millisecond, 10*time.Millisecond)),
		breaker.Policy[float64](pricing),
		resilience.Timeout[float64](time.Second),
	)

	price, err := getPrice(context.Background())
	fmt.Println(price, err, "after", dep.calls, "attempts")
	// Output: 41.99 <nil> after 3 attempts
}

func ExamplePolicy() {
	getPrice := resilience.WrapWith(resilience.Telemetry{Name: "pricing"},
		func(context.Context) (float64, error) { return 0, errors.New("connection refused") },
		retry.Policy[float64](retry.WithMaxAttempts(4), retry.WithDelay(time.Millisecond)),
	)

	_, err := getPrice(context.Background())
	var retryErr *retry.Error
	if errors.As(err, &retryErr) {
		fmt.Println("attempts:", retryErr.Attempts)
	}
	fmt.Println(err)
	// Output:
	// attempts: 4
	// levee: retry "pricing": gave up after 4 attempts: connection refused
}

var errNotFound = errors.New("not found")

func ExamplePermanent() {
	calls := 0
	lookup := func(context.Context) (string, error) {
		calls++
		return "", retry.Permanent(errNotFound) // retrying will not make it appear
	}

	_, err := resilience.Wrap(lookup, retry.Policy[string]())(context.Background())
	fmt.Println(errors.Is(err, errNotFound), "after", calls, "attempt")
	// Output: true after 1 attempt
}

func ExampleIf() {
	errThrottled := errors.New("throttled")
	calls := 0
	send := func(context.Context) (int, error) {
		calls++
		if calls == 1 {
			return 0, errThrottled
		}
		return 0, errors.New("invalid message")
	}

	onlyThrottling := retry.If(func(err error) bool { return errors.Is(err, errThrottled) })
	_, err := resilience.Wrap(send, retry.Policy[int](onlyThrottling, retry.WithDelay(0)))(context.Background())
	fmt.Println(err, "after", calls, "attempts")
	// Output: invalid message after 2 attempts
}

// One budget per dependency, shared by every pipeline that calls it: during
// an outage, retries add at most 20% to the load, plus 10 a second.
func ExampleNewBudget() {
	inventory := retry.NewBudget(0.2, 10)
	unavailable := errors.New("unavailable")
	getStock := resilience.Wrap(func(context.Context) (int, error) { return 0, unavailable },
		retry.Policy[int](retry.WithBudget(inventory), retry.WithDelay(0), retry.WithMaxAttempts(1000)))
	listItems := resilience.Wrap(func(context.Context) ([]string, error) { return nil, unavailable },
		retry.Policy[[]string](retry.WithBudget(inventory), retry.WithDelay(0), retry.WithMaxAttempts(1000)))

	// The first call spends the budget's floor; the second finds it empty.
	_, err := getStock(context.Background())
	fmt.Println(errors.Is(err, retry.ErrBudgetExhausted), errors.Is(err, unavailable))
	_, err = listItems(context.Background())
	fmt.Println(errors.Is(err, retry.ErrBudgetExhausted), errors.Is(err, unavailable))
	// Output:
	// true true
	// true true
}
