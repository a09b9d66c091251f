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

// A steady error rate trips a failure-rate breaker even though failures
// never come three in a row: here half of the last 10 calls failed.
func ExampleWithFailureRate() {
	b := breaker.New("search",
		breaker.WithCountWindow(10),  // the last 10 calls
		breaker.WithMinCalls(10),     // and no verdict before there are 10
		breaker.WithFailureRate(0.5), // open when half of them failed
	)
	ctx := context.Background()
	down := errors.New("503")
	for i := range 10 {
		_ = b.Call(ctx, func(context.Context) error {
			if i%2 == 1 {
				return down
			}
			return nil
		})
	}
	fmt.Println(b.State(), b.Window().Failures, "of", b.Window().Calls)
	b.Reset(ctx)
	// Output: open 5 of 10
}

// A time window counts the calls of the last minute, in buckets of 6s; no
// call reads the clock for it.
func ExampleWithTimeWindow() {
	b := breaker.New("inventory",
		breaker.WithTimeWindow(time.Minute, 10),
		breaker.WithMinCalls(20),
		breaker.WithFailureRate(0.25),
	)
	ctx := context.Background()
	for i := range 30 {
		_ = b.Call(ctx, func(context.Context) error {
			if i%5 == 0 {
				return errors.New("timeout")
			}
			return nil
		})
	}
	c := b.Window()
	fmt.Printf("%s: %d failures in %d calls (%.0f%%)\n", b.State(), c.Failures, c.Calls, 100*c.FailureRate())
	// Output: closed: 6 failures in 30 calls (20%)
}

// A slow-call rate opens the breaker on a dependency that answers, but too
// slowly, before its callers' deadlines turn the slowness into failures.
func ExampleWithSlowCallRate() {
	b := breaker.New("pricing",
		breaker.WithCountWindow(4),
		breaker.WithMinCalls(4),
		breaker.WithSlowCallDuration(50*time.Millisecond),
		breaker.WithSlowCallRate(0.5),
	)
	ctx := context.Background()
	for i := range 4 {
		_ = b.Call(ctx, func(context.Context) error {
			if i >= 2 {
				time.Sleep(60 * time.Millisecond) // answers, slowly
			}
			return nil
		})
	}
	fmt.Println(b.State(), b.Window().SlowCalls, "slow of", b.Window().Calls, "- failures:", b.Window().Failures)
	b.Reset(ctx)
	// Output: open 2 slow of 4 - failures: 0
}

// A trip rule of your own: failures or slow calls, whichever comes first.
func ExampleWithTripRule() {
	b := breaker.New("payments",
		breaker.WithCountWindow(20),
		breaker.WithSlowCallDuration(time.Second),
		breaker.WithTripRule(func(c breaker.WindowCounts) bool {
			return c.Calls >= 4 && (c.FailureRate() >= 0.5 || c.SlowCallRate() >= 0.8)
		}),
	)
	ctx := context.Background()
	for _, failed := range []bool{false, true, false, true} {
		_ = b.Call(ctx, func(context.Context) error {
			if failed {
				return errors.New("declined by the bank")
			}
			return nil
		})
	}
	fmt.Println(b.State())
	b.Reset(ctx)
	// Output: open
}

// Several probes at once, and several successes to close: the breaker
// waits for more than one lucky call before sending all its traffic back.
func ExampleWithHalfOpen() {
	b := breaker.New("db",
		breaker.WithFailureThreshold(1),
		breaker.WithOpenTimeout(5*time.Millisecond),
		breaker.WithHalfOpen(3, 2), // up to 3 probes in flight, 2 successes close it
	)
	ctx := context.Background()
	_ = b.Call(ctx, func(context.Context) error { return errors.New("connection reset") })
	for deadline := time.Now().Add(time.Second); b.State() == breaker.Open && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	up := func(context.Context) error { return nil }
	_ = b.Call(ctx, up)
	fmt.Println("after one probe:", b.State())
	_ = b.Call(ctx, up)
	fmt.Println("after two:", b.State())
	// Output:
	// after one probe: half-open
	// after two: closed
}

// Each reopening without a close in between lasts longer: 5ms, then 10ms,
// then 20ms, capped at 30ms; here without jitter, to print them.
func ExampleWithOpenBackoff() {
	opened := make(chan time.Duration, 8)
	b := breaker.New("ledger",
		breaker.WithFailureThreshold(1),
		breaker.WithOpenTimeout(5*time.Millisecond),
		breaker.WithOpenBackoff(2, 30*time.Millisecond, 0),
		breaker.WithStateChangeListener(func(c breaker.StateChange) {
			if c.To == breaker.Open {
				opened <- c.OpenFor
			}
		}),
	)
	ctx := context.Background()
	down := func(context.Context) error { return errors.New("down") }
	_ = b.Call(ctx, down)
	for range 4 {
		for deadline := time.Now().Add(time.Second); b.State() != breaker.HalfOpen && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		_ = b.Call(ctx, down) // the probe fails: open again, for longer
	}
	for range 5 {
		fmt.Print(<-opened, " ")
	}
	fmt.Println()
	b.Reset(ctx)
	// Output: 5ms 10ms 20ms 30ms 30ms
}

// Shadow mode tries a breaker's settings on live traffic: it opens, and
// reports it, but every call still runs, and the ones it would have
// rejected are counted apart.
func ExampleBreaker_SetShadowMode() {
	b := breaker.New("recommendations", breaker.WithFailureThreshold(2), breaker.WithShadowMode())
	ctx := context.Background()
	for range 2 {
		_ = b.Call(ctx, func(context.Context) error { return errors.New("timeout") })
	}
	err := b.Call(ctx, func(context.Context) error { return nil })
	fmt.Println(b.State(), err, b.Counts().ShadowRejected)

	b.SetShadowMode(false) // enforce it
	fmt.Println(errors.Is(b.Call(ctx, func(context.Context) error { return nil }), breaker.ErrOpen))
	b.Reset(ctx)
	// Output:
	// open <nil> 1
	// true
}
