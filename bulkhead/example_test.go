package bulkhead_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/levee-go/levee/bulkhead"
	"github.com/levee-go/levee/resilience"
)

// A bulkhead of two slots: while two calls run, a third is refused at once
// and the guarded function is not called.
func Example() {
	db := bulkhead.New("db", 2)
	running, done := make(chan struct{}), make(chan struct{})
	query := func(context.Context) (string, error) {
		running <- struct{}{}
		<-done
		return "row", nil
	}
	get := resilience.Wrap(query, bulkhead.Policy[string](db))

	results := make(chan string, 2)
	for range 2 {
		go func() {
			v, _ := get(context.Background())
			results <- v
		}()
		<-running
	}
	fmt.Println("in flight:", db.InFlight())

	_, err := get(context.Background())
	fmt.Println("third call:", err, "- full:", errors.Is(err, bulkhead.ErrFull))

	close(done)
	fmt.Println(<-results, <-results, "- in flight:", db.InFlight())
	// Output:
	// in flight: 2
	// third call: levee: bulkhead "db" is full - full: true
	// row row - in flight: 0
}

// With WithMaxWait a call that finds every slot taken queues for one; here
// the slot is freed in time.
func ExampleWithMaxWait() {
	db := bulkhead.New("db", 1, bulkhead.WithMaxWait(time.Minute))
	running, done := make(chan struct{}), make(chan struct{})
	go func() {
		_ = db.Call(context.Background(), func(context.Context) error {
			close(running)
			<-done
			return nil
		})
	}()
	<-running
	time.AfterFunc(10*time.Millisecond, func() { close(done) })

	err := db.Call(context.Background(), func(context.Context) error {
		fmt.Println("got the slot")
		return nil
	})
	fmt.Println("error:", err)
	// Output:
	// got the slot
	// error: <nil>
}
