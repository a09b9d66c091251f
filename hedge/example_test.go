package hedge_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/levee-go/levee/hedge"
	"github.com/levee-go/levee/resilience"
)

// A replica set where the first replica asked is stuck: the hedge, sent
// after 10ms, answers.
func Example() {
	var asked atomic.Int32
	fetchProfile := func(ctx context.Context) (string, error) {
		if asked.Add(1) == 1 {
			<-ctx.Done() // stuck until the hedge wins and cancels it
			return "", ctx.Err()
		}
		return "profile from replica 2", nil
	}
	getProfile := resilience.Wrap(fetchProfile, hedge.Policy[string](10*time.Millisecond))

	profile, err := getProfile(context.Background())
	fmt.Println(profile, err)
	// Output: profile from replica 2 <nil>
}

// Results that hold resources are released when they lose: here, the body
// of a response that arrived after the winner's.
func ExampleWithRelease() {
	released := make(chan string, 1)
	closeBody := hedge.WithRelease(func(r *http.Response) {
		_ = r.Body.Close()
		released <- r.Status
	})
	var asked atomic.Int32
	get := func(ctx context.Context) (*http.Response, error) {
		if asked.Add(1) == 1 {
			time.Sleep(300 * time.Millisecond) // slow, and deaf to its context
			return &http.Response{Status: "200 OK (late)", Body: io.NopCloser(strings.NewReader(""))}, nil
		}
		return &http.Response{Status: "200 OK (hedge)", Body: io.NopCloser(strings.NewReader(""))}, nil
	}

	resp, err := resilience.Wrap(get, hedge.Policy[*http.Response](10*time.Millisecond, closeBody))(context.Background())
	fmt.Println(resp.Status, err)
	fmt.Println("released:", <-released)
	// Output:
	// 200 OK (hedge) <nil>
	// released: 200 OK (late)
}

func ExampleError() {
	down := errors.New("replica down")
	get := resilience.WrapWith(resilience.Telemetry{Name: "profiles"},
		func(ctx context.Context) (string, error) {
			time.Sleep(200 * time.Millisecond)
			return "", down
		},
		hedge.Policy[string](10*time.Millisecond))

	_, err := get(context.Background())
	var hedgeErr *hedge.Error
	fmt.Println(errors.As(err, &hedgeErr), hedgeErr.Attempts, errors.Is(err, down))
	fmt.Println(err)
	// Output:
	// true 2 true
	// levee: hedge "profiles": all 2 attempts failed: replica down; replica down
}
