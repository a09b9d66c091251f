package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/levee-go/levee/resilience"
)

// queryOrders stands for a dependency that hangs.
func queryOrders(ctx context.Context) (string, error) {
	select {
	case <-time.After(time.Minute):
		return "rows", nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// Wrap guards a function once; the result is called like the function. A
// pipeline given no name, and no breaker to take one from, reports under
// the guarded function's name, so that two pipelines never share series.
func ExampleWrap() {
	query := resilience.Wrap(queryOrders, resilience.Timeout[string](10*time.Millisecond))

	_, err := query(context.Background())
	fmt.Println(err)
	fmt.Println(errors.Is(err, resilience.ErrTimeout), errors.Is(err, context.DeadlineExceeded))
	// Output:
	// levee: timeout "github.com/levee-go/levee/resilience_test.queryOrders" exceeded after 10ms
	// true true
}

// WrapWith names a pipeline, and gives it its providers, once: every policy
// in it reports under that name.
func ExampleWrapWith() {
	query := resilience.WrapWith(resilience.Telemetry{Name: "orders-db"}, queryOrders,
		resilience.Timeout[string](10*time.Millisecond))

	_, err := query(context.Background())
	fmt.Println(err)
	// Output:
	// levee: timeout "orders-db" exceeded after 10ms
}

// Named renames one policy of a pipeline: here the Timeout around each
// attempt, beside the one around the whole call.
func ExampleNamed() {
	query := resilience.WrapWith(resilience.Telemetry{Name: "orders-db"}, queryOrders,
		resilience.Timeout[string](time.Minute),
		resilience.Named("orders-db-attempt", resilience.Timeout[string](10*time.Millisecond)),
	)

	_, err := query(context.Background())
	fmt.Println(err)
	// Output:
	// levee: timeout "orders-db-attempt" exceeded after 10ms
}

// Policies are listed outermost first: Do(ctx, fn, a, b) runs a(b(fn)).
func ExampleDo() {
	trace := func(name string) resilience.Policy[int] {
		return resilience.PolicyFunc[int](func(next resilience.Func[int]) resilience.Func[int] {
			return func(ctx context.Context) (int, error) {
				fmt.Println("enter", name)
				defer fmt.Println("leave", name)
				return next(ctx)
			}
		})
	}
	answer := func(context.Context) (int, error) {
		fmt.Println("call")
		return 42, nil
	}

	v, err := resilience.Do(context.Background(), answer, trace("outer"), trace("inner"))
	fmt.Println(v, err)
	// Output:
	// enter outer
	// enter inner
	// call
	// leave inner
	// leave outer
	// 42 <nil>
}

// A policy of your own is a function from the next Func to a new one.
func ExamplePolicyFunc() {
	calls := 0
	countCalls := resilience.PolicyFunc[string](func(next resilience.Func[string]) resilience.Func[string] {
		return func(ctx context.Context) (string, error) {
			calls++
			return next(ctx)
		}
	})
	hello := resilience.Wrap(func(context.Context) (string, error) { return "hello", nil }, countCalls)

	for range 3 {
		v, _ := hello(context.Background())
		fmt.Println(v)
	}
	fmt.Println("calls:", calls)
	// Output:
	// hello
	// hello
	// hello
	// calls: 3
}

// With ReturnAtDeadline the caller gets its timeout even from a function
// that ignores its context; the function finishes on its own.
func ExampleReturnAtDeadline() {
	unblock := make(chan struct{})
	ignoresContext := func(context.Context) (int, error) {
		<-unblock
		return 1, nil
	}
	get := resilience.WrapWith(resilience.Telemetry{Name: "legacy-client"}, ignoresContext,
		resilience.Timeout[int](10*time.Millisecond, resilience.ReturnAtDeadline()))

	_, err := get(context.Background())
	fmt.Println(err)
	close(unblock)
	// Output: levee: timeout "legacy-client" exceeded after 10ms
}
