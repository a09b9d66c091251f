package ratelimit_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/levee-go/levee/ratelimit"
	"github.com/levee-go/levee/resilience"
)

// Three calls a minute: a burst of three passes, the fourth is refused and
// told when the next token comes.
func Example() {
	api := ratelimit.New("geocoder", 3, time.Minute)
	geocode := resilience.Wrap(func(context.Context) (string, error) { return "52.52,13.40", nil },
		ratelimit.Policy[string](api))

	for range 3 {
		v, err := geocode(context.Background())
		fmt.Println(v, err)
	}
	_, err := geocode(context.Background())
	var limited *ratelimit.LimitedError
	if errors.As(err, &limited) {
		fmt.Println("refused:", errors.Is(err, ratelimit.ErrLimited), "- retry after about", limited.RetryAfter().Round(time.Second))
	}
	// Output:
	// 52.52,13.40 <nil>
	// 52.52,13.40 <nil>
	// 52.52,13.40 <nil>
	// refused: true - retry after about 20s
}

type tenantCtxKey struct{}

// One limit per tenant, the tenant taken from the call's context: one
// tenant's burst does not spend another's.
func ExampleWithKey() {
	perTenant := ratelimit.New("api", 1, time.Second,
		ratelimit.WithKey(func(ctx context.Context) string {
			tenant, _ := ctx.Value(tenantCtxKey{}).(string)
			return tenant
		}))
	acme := context.WithValue(context.Background(), tenantCtxKey{}, "acme")
	globex := context.WithValue(context.Background(), tenantCtxKey{}, "globex")
	work := func(context.Context) error { return nil }

	fmt.Println("acme:", perTenant.Call(acme, work) == nil)
	fmt.Println("acme again:", errors.Is(perTenant.Call(acme, work), ratelimit.ErrLimited))
	fmt.Println("globex:", perTenant.Call(globex, work) == nil)
	fmt.Println("keys tracked:", perTenant.Keys())
	// Output:
	// acme: true
	// acme again: true
	// globex: true
	// keys tracked: 2
}

// Smooth spaces calls evenly: sixty an hour is one a minute, never two at
// once, however long the limiter rested.
func ExampleSmooth() {
	api := ratelimit.New("api", 60, time.Hour, ratelimit.Smooth())
	work := func(context.Context) error { return nil }

	fmt.Println("first:", api.Call(context.Background(), work))
	var limited *ratelimit.LimitedError
	if errors.As(api.Call(context.Background(), work), &limited) {
		fmt.Println("second: refused, retry after about", limited.RetryAfter().Round(time.Second))
	}
	// Output:
	// first: <nil>
	// second: refused, retry after about 1m0s
}
