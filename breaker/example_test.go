package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/resilience"
)

// A breaker goes closed -> open -> half-open -> closed. The open timeout is
// a few milliseconds so that the example runs at once; a test lets a real
// 30s timeout pass at once with testing/synctest (docs/testing.md).
func Example() {
	b := breaker.New("payments", breaker.WithOpenTimeout(5*time.Millisecond))
	ctx := context.Background()
	down := func(context.Context) error { return errors.New("connection refused") }
	up := func(context.Context) error { return nil }

	fmt.Println("start:", b.State())
	for range 3 {
		_ = b.Call(ctx, down)
	}
	fmt.Println("after 3 failures:", b.State())
	fmt.Println("rejected:", b.Call(ctx, up))

	// The open timer half-opens the breaker; wait for it, a second at most.
	for deadline := time.Now().Add(time.Second); b.State() == breaker.Open && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	fmt.Println("after the open timeout:", b.State())

	err := b.Call(ctx, up) // the probe
	fmt.Println("probe:", err, "- state", b.State())
	// Output:
	// start: closed
	// after 3 failures: open
	// rejected: levee: circuit breaker "payments" is open
	// after the open timeout: half-open
	// probe: <nil> - state closed
}

func ExampleNew() {
	b := breaker.New("inventory",
		breaker.WithFailureThreshold(5),
		breaker.WithOpenTimeout(10*time.Second),
	)
	fmt.Println(b.Name(), b.State())
	// Output: inventory closed
}

// Listeners run on a goroutine of the breaker's, after the change: no call
// waits for them, and they hear of every change in order.
func ExampleWithStateChangeListener() {
	changes := make(chan breaker.StateChange, 8)
	b := breaker.New("payments",
		breaker.WithFailureThreshold(1),
		breaker.WithOpenTimeout(5*time.Millisecond),
		breaker.WithStateChangeListener(func(c breaker.StateChange) { changes <- c }),
	)
	ctx := context.Background()
	printNext := func() {
		select {
		case c := <-changes:
			fmt.Printf("%s: %s -> %s\n", c.Name, c.From, c.To)
		case <-time.After(time.Second):
			fmt.Println("no change within a second")
		}
	}

	_ = b.Call(ctx, func(context.Context) error { return errors.New("timeout") })
	printNext() // the failure opened the breaker
	printNext() // its open timer half-opened it
	_ = b.Call(ctx, func(context.Context) error { return nil })
	printNext() // the probe closed it
	// Output:
	// payments: closed -> open
	// payments: open -> half-open
	// payments: half-open -> closed
}

// One breaker guards every call to one dependency, whatever each returns.
func ExamplePolicy() {
	db := breaker.New("db", breaker.WithFailureThreshold(2))
	getName := resilience.Wrap(func(context.Context) (string, error) {
		return "", errors.New("db down")
	}, breaker.Policy[string](db))
	countRows := resilience.Wrap(func(context.Context) (int, error) {
		return 0, errors.New("db down")
	}, breaker.Policy[int](db))
	ctx := context.Background()

	_, _ = getName(ctx)
	_, _ = countRows(ctx)
	_, err := getName(ctx)
	fmt.Println(errors.Is(err, breaker.ErrOpen))
	// Output: true
}

func ExampleBreaker_ForceOpen() {
	b := breaker.New("search")
	ctx := context.Background()

	b.ForceOpen(ctx) // an operator isolates the dependency
	fmt.Println(b.Call(ctx, func(context.Context) error { return nil }))

	b.Reset(ctx) // the dependency is back
	fmt.Println(b.State())
	// Output:
	// levee: circuit breaker "search" is forced open
	// closed
}

// A rejection says which breaker refused the call and how long until it
// lets a probe through: for a Retry-After header, or a client's back-off.
func ExampleOpenError() {
	b := breaker.New("payments", breaker.WithFailureThreshold(1), breaker.WithOpenTimeout(time.Minute))
	ctx := context.Background()
	_ = b.Call(ctx, func(context.Context) error { return errors.New("connection refused") })

	err := b.Call(ctx, func(context.Context) error { return nil })
	if openErr, ok := errors.AsType[*breaker.OpenError](err); ok {
		fmt.Println(openErr.Name(), openErr.State(), "- retry after", openErr.RetryAfter().Round(time.Second))
	}
	b.Reset(ctx)
	// Output: payments open - retry after 1m0s
}

// LogStateChanges logs each transition, at a level that says how bad it is.
func ExampleLogStateChanges() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // keep the output stable
			}
			return a
		},
	}))
	logged := make(chan struct{})
	b := breaker.New("payments",
		breaker.WithFailureThreshold(1),
		breaker.WithStateChangeListener(breaker.LogStateChanges(logger)),
		// Listeners run in order on a goroutine of the breaker's: this one
		// says when the last change has been logged.
		breaker.WithStateChangeListener(func(c breaker.StateChange) {
			if c.To == breaker.Closed {
				close(logged)
			}
		}))

	_ = b.Call(context.Background(), func(context.Context) error { return errors.New("down") })
	b.Reset(context.Background())
	select {
	case <-logged:
	case <-time.After(time.Second):
		fmt.Println("not logged within a second")
	}
	// Output:
	// level=ERROR msg="levee: circuit breaker opened" levee.policy.name=payments levee.circuit_breaker.from=closed levee.circuit_breaker.to=open levee.circuit_breaker.consecutive_failures=1 levee.circuit_breaker.forced=false levee.circuit_breaker.trip_rule=consecutive_failures
	// level=INFO msg="levee: circuit breaker closed" levee.policy.name=payments levee.circuit_breaker.from=open levee.circuit_breaker.to=closed levee.circuit_breaker.consecutive_failures=0 levee.circuit_breaker.forced=true
}
