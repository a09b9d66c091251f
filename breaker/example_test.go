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

// A breaker goes closed -> open -> half-open -> closed. The clock is a plain
// variable so that the example runs in no time; leave WithClock out in real
// code.
func Example() {
	now := time.Date(2026, time.January, 1, 12, 0, 0, 0, time.UTC)
	b := breaker.New("payments", breaker.WithClock(func() time.Time { return now }))
	ctx := context.Background()
	down := func(context.Context) error { return errors.New("connection refused") }
	up := func(context.Context) error { return nil }

	fmt.Println("start:", b.State())
	for range 3 {
		_ = b.Call(ctx, down)
	}
	fmt.Println("after 3 failures:", b.State())

	err := b.Call(ctx, up)
	var openErr *breaker.OpenError
	if errors.As(err, &openErr) {
		fmt.Println("rejected:", err, "- retry after", openErr.RetryAfter())
	}

	now = now.Add(30 * time.Second)
	fmt.Println("30s later:", b.State())

	err = b.Call(ctx, up) // the probe
	fmt.Println("probe:", err, "- state", b.State())
	// Output:
	// start: closed
	// after 3 failures: open
	// rejected: levee: circuit breaker "payments" is open - retry after 30s
	// 30s later: half-open
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

func ExampleWithStateChangeListener() {
	now := time.Date(2026, time.January, 1, 12, 0, 0, 0, time.UTC)
	b := breaker.New("payments",
		breaker.WithClock(func() time.Time { return now }),
		breaker.WithFailureThreshold(1),
		breaker.WithStateChangeListener(func(c breaker.StateChange) {
			fmt.Printf("%s: %s -> %s\n", c.Name, c.From, c.To)
		}),
	)
	ctx := context.Background()

	_ = b.Call(ctx, func(context.Context) error { return errors.New("timeout") })
	now = now.Add(30 * time.Second)
	_ = b.Call(ctx, func(context.Context) error { return nil })
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
	b := breaker.New("payments",
		breaker.WithFailureThreshold(1),
		breaker.WithStateChangeListener(breaker.LogStateChanges(logger)))

	_ = b.Call(context.Background(), func(context.Context) error { return errors.New("down") })
	b.Reset(context.Background())
	// Output:
	// level=ERROR msg="levee: circuit breaker opened" levee.policy.name=payments levee.circuit_breaker.from=closed levee.circuit_breaker.to=open levee.circuit_breaker.consecutive_failures=1 levee.circuit_breaker.forced=false
	// level=INFO msg="levee: circuit breaker closed" levee.policy.name=payments levee.circuit_breaker.from=open levee.circuit_breaker.to=closed levee.circuit_breaker.consecutive_failures=0 levee.circuit_breaker.forced=true
}
