package leveeredis_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/levee-go/levee/leveeredis"
	"github.com/levee-go/levee/ratelimit"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/retry"
)

// A fleet rate limit whose Redis cannot be reached goes on as its share of
// the limit at once: here 30 calls a minute for a fleet expected to be 3
// instances, so 10 a minute on this one. With Redis up the 30 hold for the
// sum of the instances (docs/fleet-limits.md).
func ExampleNewLimiter() {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, ContextTimeoutEnabled: true}) // no Redis there
	defer client.Close()
	fleet := leveeredis.NewFleet(client, leveeredis.WithOpTimeout(100*time.Millisecond))
	defer fleet.Close()

	partner := leveeredis.NewLimiter(fleet, "partner-api", 30, time.Minute,
		leveeredis.WithLimitExpectedInstances(3))
	call := resilience.Wrap(func(context.Context) (string, error) { return "ok", nil },
		leveeredis.LimiterPolicy[string](partner))
	for !partner.LocalOnly() { // the first lease fails in the background
		time.Sleep(time.Millisecond)
	}
	admitted, limited := 0, 0
	for range 15 {
		_, err := call(context.Background())
		switch {
		case err == nil:
			admitted++
		case errors.Is(err, ratelimit.ErrLimited):
			limited++
		}
	}
	fmt.Println("local:", partner.LocalOnly(), "admitted:", admitted, "limited:", limited)
	// Output: local: true admitted: 10 limited: 5
}

// A fleet retry budget is given to retry (and hedge) as any retry.Budget.
// With Redis unreachable it decides on this instance's counts alone: here
// the floor of 2 retries, as no first attempt has earned any yet.
func ExampleNewBudget() {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, ContextTimeoutEnabled: true}) // no Redis there
	defer client.Close()
	fleet := leveeredis.NewFleet(client, leveeredis.WithOpTimeout(100*time.Millisecond))
	defer fleet.Close()

	profiles := leveeredis.NewBudget(fleet, "profiles", 0.2, 2)
	attempts := 0
	get := resilience.Wrap(func(context.Context) (string, error) {
		attempts++
		return "", errors.New("profiles: unavailable")
	}, retry.Policy[string](retry.WithMaxAttempts(5), retry.WithDelay(0), retry.WithBudget(profiles.Retry())))
	_, err := get(context.Background())
	fmt.Println("attempts:", attempts, "budget exhausted:", errors.Is(err, retry.ErrBudgetExhausted))
	// Output: attempts: 3 budget exhausted: true
}
