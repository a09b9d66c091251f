// Command retry shows levee retrying HTTP calls in a pipeline: a real price
// server on loopback that follows a script (a 503 with Retry-After, an answer
// too slow, an outage), and a client whose leveehttp.Transport sends every
// request through a retry with a budget, outside a circuit breaker, outside
// a timeout. It prints each attempt the retry makes and each call's outcome.
//
//	go run ./examples/retry
//
// It runs in about two seconds, on real time: the server's Retry-After is
// one second (the header counts whole seconds), and the retry waits it.
// The story is the same every run; only the times printed vary a little.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/leveehttp"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/retry"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "retry:", err)
		os.Exit(1)
	}
}

const (
	// attemptTimeout bounds each attempt, inside the breaker: a slow
	// answer is a failure the breaker counts and the retry retries.
	attemptTimeout = 200 * time.Millisecond
	// maxDelay is the longest the retry waits before an attempt, a
	// Retry-After hint included: a breaker open for longer stops it.
	maxDelay = 2 * time.Second
	// callBound bounds each call, retries and all, so that the demo can
	// never hang.
	callBound = 10 * time.Second
)

// What the price server does with each request it gets, in order. Requests
// the breaker rejects never reach it.
var script = []step{
	{status: http.StatusServiceUnavailable, retryAfter: "1"}, // call 1: "come back in a second"
	{status: http.StatusOK, price: "42.00"},
	{slow: true}, // call 2: too slow, the timeout gives up
	{status: http.StatusOK, price: "42.10"},
	{status: http.StatusServiceUnavailable}, // call 3: an outage
	{status: http.StatusServiceUnavailable},
	{status: http.StatusServiceUnavailable}, // the third failure in a row opens the breaker
}

type step struct {
	status     int
	retryAfter string
	price      string
	slow       bool // it answers only once its client has given up
}

// priceServer serves the script, one step per request.
type priceServer struct {
	mu    sync.Mutex
	steps int
}

func (s *priceServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	st := script[min(s.steps, len(script)-1)]
	s.steps++
	s.mu.Unlock()
	if st.slow {
		<-r.Context().Done()
		return
	}
	if st.retryAfter != "" {
		w.Header().Set("Retry-After", st.retryAfter)
	}
	if st.status != http.StatusOK {
		http.Error(w, http.StatusText(st.status), st.status)
		return
	}
	fmt.Fprintln(w, st.price)
}

func (s *priceServer) requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.steps
}

// attempts is a policy that prints each attempt the retry makes and what it
// came to. It sits just inside the retry, so that it sees the attempts the
// breaker rejects too.
type attempts struct {
	w     io.Writer
	n     int
	start time.Time
}

// newCall starts counting the attempts of the next call.
func (a *attempts) newCall() { a.n, a.start = 0, time.Now() }

func (a *attempts) Apply(next resilience.Func[*http.Response]) resilience.Func[*http.Response] {
	return func(ctx context.Context) (*http.Response, error) {
		a.n++
		at := time.Since(a.start).Seconds()
		resp, err := next(ctx)
		fmt.Fprintf(a.w, "  attempt %d  +%.1fs  %s\n", a.n, at, describe(resp, err))
		return resp, err
	}
}

// describe says what an attempt came to, as the retry sees it.
func describe(resp *http.Response, err error) string {
	var failed *leveehttp.ResponseError
	switch {
	case err == nil:
		return resp.Status
	case errors.As(err, &failed):
		if hint := failed.RetryAfter(); hint > 0 {
			return fmt.Sprintf("%s, Retry-After %v", failed.Response.Status, hint)
		}
		return failed.Response.Status
	case errors.Is(err, resilience.ErrTimeout):
		return "timed out after " + attemptTimeout.String()
	case errors.Is(err, breaker.ErrOpen):
		return "rejected: the breaker is open"
	}
	return err.Error()
}

// run plays the demo and writes it to w.
func run(ctx context.Context, w io.Writer) error {
	server := &priceServer{}
	url, stop, err := serve(server)
	if err != nil {
		return err
	}
	defer stop()

	// The client. One budget per dependency, shared by every pipeline that
	// calls it: during an outage, retries add at most 20% to the load
	// (plus 10 a second). The breaker inside the retry counts every
	// attempt; the timeout inside the breaker bounds each one.
	budget := retry.NewBudget(0.2, 10)
	prices := breaker.New("prices", breaker.WithFailureThreshold(3), breaker.WithOpenTimeout(30*time.Second))
	log := &attempts{w: w}
	base := http.DefaultTransport.(*http.Transport).Clone()
	client := &http.Client{Transport: leveehttp.NewTransport(base,
		retry.Policy[*http.Response](
			retry.WithMaxAttempts(3),
			retry.WithBackoff(100*time.Millisecond, maxDelay),
			retry.WithBudget(budget)),
		log,
		breaker.Policy[*http.Response](prices),
		resilience.Timeout[*http.Response](attemptTimeout),
	)}
	defer client.CloseIdleConnections()

	fmt.Fprintln(w, "levee retry: a price server on loopback, a client with retry -> breaker -> timeout")
	fmt.Fprintf(w, "  retry: 3 attempts, backoff 100ms..%v with jitter, Retry-After honoured, budget 20%% + 10/s\n", maxDelay)
	fmt.Fprintf(w, "  breaker %q: opens after 3 consecutive failures; timeout: %v an attempt\n", prices.Name(), attemptTimeout)

	for n := 1; n <= 4; n++ {
		fmt.Fprintf(w, "\ncall %d: GET /price\n", n)
		log.newCall()
		outcome, err := get(ctx, client, url+"/price")
		if err != nil {
			return fmt.Errorf("call %d: %w", n, err)
		}
		fmt.Fprintf(w, "  => after %s: %s\n", plural(log.n, "attempt"), outcome)
	}
	c := prices.Counts()
	fmt.Fprintf(w, "\nthe server got %s; the breaker is %s, it counted %d successes, %d failures, %d rejected\n",
		plural(server.requests(), "request"), prices.State(), c.Success, c.Failure, c.Rejected)
	return nil
}

// get makes one call and says how it ended. An error is returned only when
// the demo itself went wrong.
func get(ctx context.Context, client *http.Client, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, callBound)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if errors.Is(err, breaker.ErrOpen) {
		// The retry saw the breaker's rejection ask to wait longer than
		// its maximum delay, and stopped at once.
		var stopped *retry.Error
		if errors.As(err, &stopped) {
			return "error: " + stopped.Error(), nil
		}
		return "error: " + err.Error(), nil
	}
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		// When the retries run out, the last response reaches the caller
		// whole, as it would without levee.
		return resp.Status + ", the retries ran out: " + strings.TrimSpace(string(body)), nil
	}
	return resp.Status + ": " + strings.TrimSpace(string(body)), nil
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// serve serves h on a free loopback port until stop is called, and returns
// its base URL.
func serve(h http.Handler) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	stop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			_ = srv.Close()
		}
		<-done
	}
	return "http://" + ln.Addr().String(), stop, nil
}
