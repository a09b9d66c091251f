package leveehttp_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// loadAnswer is what a client of a load test got.
type loadAnswer struct {
	status     int
	retryAfter string
	body       string
}

// loadClient returns a client for load tests against a local server: a
// connection per concurrent request, each request bounded by a timeout.
func loadClient(t *testing.T) *http.Client {
	t.Helper()
	base := &http.Transport{MaxIdleConnsPerHost: 1000, DisableCompression: true}
	t.Cleanup(base.CloseIdleConnections)
	return &http.Client{Transport: base, Timeout: 20 * time.Second}
}

// hammer sends n requests at once, from n goroutines, made by newRequest,
// and returns what each got. Every request is bounded by the client's
// timeout, and the whole by a minute.
func hammer(t *testing.T, client *http.Client, n int, newRequest func(i int) *http.Request) []loadAnswer {
	t.Helper()
	answers := make([]loadAnswer, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			req := newRequest(i)
			<-start
			resp, err := client.Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			errs[i] = err
			answers[i] = loadAnswer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: string(body)}
		})
	}
	close(start)
	waitGroup(t, &wg, time.Minute, "the load test's requests")
	for i, err := range errs {
		require.NoError(t, err, "request %d", i)
	}
	return answers
}

// waitGroup waits for wg, failing the test after limit.
func waitGroup(t *testing.T, wg *sync.WaitGroup, limit time.Duration, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit):
		t.Fatalf("%s did not end within %v", what, limit)
	}
}

// eventually waits, outside a bubble, until cond holds, failing the test
// with msg after ten seconds.
func eventually(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	require.Eventually(t, cond, 10*time.Second, time.Millisecond, msg)
}

// gauge is a handler that measures how many requests are in it at once.
type gauge struct {
	calls, inFlight, maxInFlight atomic.Int64
	hold                         func(r *http.Request) // while in the handler
}

func (g *gauge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.calls.Add(1)
	n := g.inFlight.Add(1)
	for {
		m := g.maxInFlight.Load()
		if n <= m || g.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	if g.hold != nil {
		g.hold(r)
	}
	g.inFlight.Add(-1)
	_, _ = io.WriteString(w, "served")
}

// get builds a GET of url.
func newGet(t *testing.T, ctx context.Context, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	return req
}

// serveFrom serves one in-memory request from remote with h.
func serveFrom(h http.Handler, remote string, header http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.RemoteAddr = remote
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}
