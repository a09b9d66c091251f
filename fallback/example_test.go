package fallback_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/fallback"
	"github.com/levee-go/levee/resilience"
)

// A fallback outside a breaker: while the breaker is open, callers get the
// fallback's answer instead of an error, and the dependency is left alone.
// Once the open timeout has passed (20 ms here; a test would run it in a
// testing/synctest bubble, where 30 s pass at once), a probe finds the
// dependency back.
func ExampleValue() {
	prices := breaker.New("prices", breaker.WithOpenTimeout(20*time.Millisecond))
	up := false
	fetchPrice := func(context.Context) (int, error) {
		if !up {
			return 0, errors.New("connection refused")
		}
		return 120, nil
	}
	getPrice := resilience.Wrap(fetchPrice,
		fallback.Value(100),         // outermost: the last known price
		breaker.Policy[int](prices), // inside: rejects while the dependency is down
	)
	ctx := context.Background()

	for range 4 {
		price, err := getPrice(ctx)
		fmt.Printf("price %d, error %v, breaker %s\n", price, err, prices.State())
	}
	up = true
	// The breaker's timer makes it half-open once the open timeout has passed.
	for deadline := time.Now().Add(5 * time.Second); prices.State() == breaker.Open && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	price, err := getPrice(ctx)
	fmt.Printf("price %d, error %v, breaker %s\n", price, err, prices.State())
	// Output:
	// price 100, error <nil>, breaker closed
	// price 100, error <nil>, breaker closed
	// price 100, error <nil>, breaker open
	// price 100, error <nil>, breaker open
	// price 120, error <nil>, breaker closed
}

// Func computes the answer from the error: here, a cached value when the
// breaker rejects the call.
func ExampleFunc() {
	cache := map[string]string{"user:7": "Ada (cached)"}
	db := breaker.New("users-db")
	db.ForceOpen(context.Background()) // the database is down for maintenance

	getUser := resilience.Wrap(func(context.Context) (string, error) {
		return "Ada", nil
	},
		fallback.Func(func(_ context.Context, err error) (string, error) {
			fmt.Println("fallback for:", err)
			if name, ok := cache["user:7"]; ok {
				return name, nil
			}
			return "", err
		}),
		breaker.Policy[string](db),
	)

	name, err := getUser(context.Background())
	fmt.Println(name, err)
	// Output:
	// fallback for: levee: circuit breaker "users-db" is forced open
	// Ada (cached) <nil>
}

// If limits a fallback to some errors; the others reach the caller.
func ExampleIf() {
	errNotFound := errors.New("not found")
	get := func(err error) resilience.Func[string] {
		return resilience.Wrap(func(context.Context) (string, error) { return "", err },
			fallback.Value("guest", fallback.If(func(err error) bool { return errors.Is(err, errNotFound) })))
	}

	for _, err := range []error{errNotFound, errors.New("permission denied")} {
		user, err := get(err)(context.Background())
		fmt.Printf("%q %v\n", user, err)
	}
	// Output:
	// "guest" <nil>
	// "" permission denied
}
