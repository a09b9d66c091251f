package leveehttp_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"time"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/bulkhead"
	"github.com/levee-go/levee/fallback"
	"github.com/levee-go/levee/leveehttp"
	"github.com/levee-go/levee/retry"
	"github.com/levee-go/levee/throttle"
)

// A client whose breaker opens after two failing answers: the caller still
// sees the server's 503s, then fast rejections that never reach the server.
func ExampleNewTransport() {
	var down atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "hello")
	}))
	defer srv.Close()

	api := breaker.New("api", breaker.WithFailureThreshold(2))
	client := &http.Client{Transport: leveehttp.NewTransport(nil, breaker.Policy[*http.Response](api))}
	defer client.CloseIdleConnections()

	get := func() {
		resp, err := client.Get(srv.URL)
		if errors.Is(err, breaker.ErrOpen) {
			fmt.Println("rejected: the breaker is", api.State())
			return
		} else if err != nil {
			fmt.Println("error:", err)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		fmt.Println(resp.Status, "-", strings.TrimSpace(string(body)))
	}
	get()
	down.Store(true)
	get()
	get()
	get()
	// Output:
	// 200 OK - hello
	// 503 Service Unavailable - down for maintenance
	// 503 Service Unavailable - down for maintenance
	// rejected: the breaker is open
}

// A fallback outside the breaker answers from a cache both when the server
// fails and when the breaker rejects the call.
func ExampleNewTransport_fallback() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "overloaded", http.StatusTooManyRequests)
	}))
	defer srv.Close()

	fromCache := func(_ context.Context, err error) (*http.Response, error) {
		var failed *leveehttp.ResponseError
		if errors.As(err, &failed) {
			fmt.Println("fallback for a", failed.Response.Status) // the failing response, closed for us
		} else {
			fmt.Println("fallback for:", err)
		}
		return &http.Response{
			StatusCode: http.StatusOK,
			Header:     http.Header{"X-Cache": {"stale"}},
			Body:       io.NopCloser(strings.NewReader("yesterday's prices")),
		}, nil
	}
	prices := breaker.New("prices", breaker.WithFailureThreshold(1))
	client := &http.Client{Transport: leveehttp.NewTransport(nil,
		fallback.Func(fromCache),
		breaker.Policy[*http.Response](prices),
	)}
	defer client.CloseIdleConnections()

	for range 2 {
		resp, err := client.Get(srv.URL)
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, resp.Header.Get("X-Cache"), string(body))
	}
	// Output:
	// fallback for a 429 Too Many Requests
	// 200 stale yesterday's prices
	// fallback for: levee: circuit breaker "prices" is open
	// 200 stale yesterday's prices
}

// A retry outside the breaker sends a POST again, body and all, when the
// server fails: the request's body is a *strings.Reader, so http.NewRequest
// gives it the GetBody every attempt after the first needs.
func ExampleNewTransport_retry() {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		n := requests.Add(1)
		fmt.Printf("server: request %d, body %q\n", n, body)
		if n == 1 {
			http.Error(w, "restarting", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "order accepted")
	}))
	defer srv.Close()

	orders := breaker.New("orders")
	client := &http.Client{Transport: leveehttp.NewTransport(nil,
		retry.Policy[*http.Response](retry.WithMaxAttempts(3), retry.WithDelay(10*time.Millisecond)),
		breaker.Policy[*http.Response](orders),
	)}
	defer client.CloseIdleConnections()

	resp, err := client.Post(srv.URL, "text/plain", strings.NewReader("2 baguettes"))
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(resp.Status, " - ", string(body))
	fmt.Println("breaker counted", orders.Counts().Failure, "failure")
	// Output:
	// server: request 1, body "2 baguettes"
	// server: request 2, body "2 baguettes"
	// 200 OK - order accepted
	// breaker counted 1 failure
}

// A server sheds load while its handler fails: once the breaker opens,
// requests get 503 and a Retry-After header without reaching the handler.
func ExampleHandler() {
	search := breaker.New("search", breaker.WithFailureThreshold(1)) // open timeout: 30s
	var handled int
	h := leveehttp.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handled++
		http.Error(w, "index unavailable", http.StatusInternalServerError)
	}), search)

	for range 3 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/search?q=levee", nil))
		fmt.Printf("%d Retry-After: %q\n", rec.Code, rec.Header().Get("Retry-After"))
	}
	fmt.Println("handler calls:", handled)
	// Output:
	// 500 Retry-After: ""
	// 503 Retry-After: "30"
	// 503 Retry-After: "30"
	// handler calls: 1
}

// A server that lets at most one request into its handler at a time: a
// second request arriving meanwhile gets 503 and a Retry-After, without
// reaching the handler.
func ExampleBulkheadHandler() {
	inHandler, release := make(chan struct{}), make(chan struct{})
	h := leveehttp.BulkheadHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(inHandler)
		<-release
		fmt.Fprintln(w, "report ready")
	}), bulkhead.New("reports", 1))

	first := make(chan *httptest.ResponseRecorder)
	go func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/report", nil))
		first <- rec
	}()
	<-inHandler

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/report", nil))
	fmt.Printf("second: %d Retry-After: %q %q\n", rec.Code, rec.Header().Get("Retry-After"), rec.Body.String())
	close(release)
	rec = <-first
	fmt.Printf("first: %d %q\n", rec.Code, rec.Body.String())
	// Output:
	// second: 503 Retry-After: "1" "Service Unavailable\n"
	// first: 200 "report ready\n"
}

// A server whose handler's database refuses most work: the throttle learns
// it from the handler's 503s and answers most requests itself.
func ExampleThrottleHandler() {
	var handled int
	h := leveehttp.ThrottleHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handled++
		http.Error(w, "database overloaded", http.StatusServiceUnavailable)
	}), throttle.New("search", throttle.WithSeed(7)))

	shed := 0
	for range 100 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/search?q=levee", nil))
		if rec.Header().Get("Retry-After") != "" {
			shed++
		}
	}
	fmt.Println("handler calls:", handled, "shed:", shed)
	// Output:
	// handler calls: 5 shed: 95
}
