package leveehttp_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/leveehttp"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/retry"
	"github.com/levee-go/levee/telemetry"
)

// payload is a request body large enough to take several writes to send.
var payload = strings.Repeat("levee;", 10_000)

// scripted is a handler that answers its n-th request with the n-th of its
// answers (the last one repeated), with a body saying which attempt it
// answered, and records every request's body as it arrived.
type scripted struct {
	answers []answer

	mu       sync.Mutex
	received []received
}

type answer struct {
	status     int
	retryAfter string // a Retry-After header, if any
}

// received is what the server read of one request's body.
type received struct {
	body          string
	contentLength int64
	err           error
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	s.mu.Lock()
	n := len(s.received)
	s.received = append(s.received, received{body: string(body), contentLength: r.ContentLength, err: err})
	s.mu.Unlock()
	a := s.answers[min(n, len(s.answers)-1)]
	if a.retryAfter != "" {
		w.Header().Set("Retry-After", a.retryAfter)
	}
	w.WriteHeader(a.status)
	fmt.Fprintf(w, "attempt %d", n+1)
}

func (s *scripted) requests() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.received...)
}

func newScriptedServer(t *testing.T, answers ...answer) (*httptest.Server, *scripted) {
	t.Helper()
	s := &scripted{answers: answers}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv, s
}

// countAttempts is a policy that counts the calls that pass it: put inside
// a retry, the attempts the retry made.
func countAttempts(n *int) resilience.Policy[*http.Response] {
	var mu sync.Mutex
	return resilience.PolicyFunc[*http.Response](func(next resilience.Func[*http.Response]) resilience.Func[*http.Response] {
		return func(ctx context.Context) (*http.Response, error) {
			mu.Lock()
			*n++
			mu.Unlock()
			return next(ctx)
		}
	})
}

func post(t *testing.T, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(boundedContext(t), http.MethodPost, url, body)
	require.NoError(t, err)
	return req
}

func TestTransport_RetrySendsTheWholeBodyAgainOnEveryAttempt(t *testing.T) {
	srv, script := newScriptedServer(t, answer{status: 503}, answer{status: 502}, answer{status: 200})
	counter := &closeCounter{next: baseTransport(t)}
	rt := leveehttp.NewTransport(counter, retry.Policy[*http.Response](retry.WithDelay(0)))
	req := post(t, srv.URL, strings.NewReader(payload))
	require.NotNil(t, req.GetBody, "http.NewRequest sets GetBody for a *strings.Reader")

	resp, err := rt.RoundTrip(req)

	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "attempt 3", readAll(t, resp))
	got := script.requests()
	require.Len(t, got, 3)
	for i, r := range got {
		assert.NoError(t, r.err, "attempt %d: the server read the body to its end", i+1)
		assert.Equal(t, int64(len(payload)), r.contentLength, "attempt %d: Content-Length", i+1)
		assert.True(t, r.body == payload, "attempt %d: the server got %d bytes of the %d sent", i+1, len(r.body), len(payload))
	}
	assert.Equal(t, int64(3), counter.bodies.Load())
	assert.Equal(t, int64(3), counter.closes.Load(), "both failed responses closed by the transport, the last by the caller")
}

func TestTransport_RetryOfABodyWithoutGetBodyIsRefusedOnTheFirstRetry(t *testing.T) {
	srv, script := newScriptedServer(t, answer{status: 503})
	counter := &closeCounter{next: baseTransport(t)}
	api := breaker.New("api", breaker.WithFailureThreshold(10))
	var attempts int
	rt := leveehttp.NewTransport(counter,
		retry.Policy[*http.Response](retry.WithMaxAttempts(5), retry.WithDelay(0)),
		breaker.Policy[*http.Response](api),
		countAttempts(&attempts))
	client := &http.Client{Transport: rt}
	req := post(t, srv.URL, io.NopCloser(strings.NewReader(payload)))
	require.Nil(t, req.GetBody)

	resp, err := client.Do(req)

	require.ErrorIs(t, err, leveehttp.ErrBodyNotReplayable)
	assert.Nil(t, resp)
	var retried *retry.Error
	assert.False(t, errors.As(err, &retried), "the refusal is not retried: it comes back as it is, not as %v", retried)
	assert.True(t, retry.IsPermanent(err))
	assert.Equal(t, "body_not_replayable", telemetry.ErrorType(err))
	assert.Equal(t, 2, attempts, "the first attempt, and the first retry, refused")
	got := script.requests()
	require.Len(t, got, 1, "the refused retry sends nothing")
	assert.True(t, got[0].body == payload, "the first attempt's body arrived whole")
	assert.Equal(t, int64(1), counter.closes.Load(), "the failed first response is closed")
	assert.Equal(t, breaker.Counts{Failure: 1, Ignored: 1}, api.Counts(),
		"a body the client cannot send again tells nothing about the server")
}

func TestTransport_RetryClosesEachFailedResponseAndHandsTheLastOneOverWhole(t *testing.T) {
	srv, _ := newScriptedServer(t, answer{status: 503})
	counter := &closeCounter{next: baseTransport(t)}
	rt := leveehttp.NewTransport(counter, retry.Policy[*http.Response](retry.WithMaxAttempts(3), retry.WithDelay(0)))

	resp, err := get(t, rt, srv.URL)

	require.NoError(t, err, "as without a retry, a failing response reaches the caller as a response")
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, int64(3), counter.bodies.Load())
	assert.Equal(t, int64(2), counter.closes.Load(), "the two responses the retry superseded are closed, the last is not")
	assert.Equal(t, "attempt 3", readAll(t, resp))
	assert.Equal(t, int64(3), counter.closes.Load())
}

// A failed response is closed as soon as the retry has decided to try
// again, so that it does not hold its connection through the delay.
func TestTransport_RetryClosesAFailedResponseBeforeWaitingToTryAgain(t *testing.T) {
	srv, _ := newScriptedServer(t, answer{status: 503}, answer{status: 500}, answer{status: 200})
	counter := &closeCounter{next: baseTransport(t)}
	var closedAtStart []int64
	recordCloses := resilience.PolicyFunc[*http.Response](func(next resilience.Func[*http.Response]) resilience.Func[*http.Response] {
		return func(ctx context.Context) (*http.Response, error) {
			closedAtStart = append(closedAtStart, counter.closes.Load())
			return next(ctx)
		}
	})
	rt := leveehttp.NewTransport(counter, retry.Policy[*http.Response](retry.WithDelay(0)), recordCloses)

	resp, err := get(t, rt, srv.URL)

	require.NoError(t, err)
	assert.Equal(t, []int64{0, 1, 2}, closedAtStart, "responses closed when each attempt started")
	assert.Equal(t, "attempt 3", readAll(t, resp))
	assert.Equal(t, int64(3), counter.closes.Load(), "each response closed once")
}

// The same on the clock of a bubble: closed at the start of the delay, not
// at its end.
func TestTransport_RetryClosesAFailedResponseAtTheStartOfTheDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		script := &scripted{answers: []answer{{status: 503, retryAfter: "2"}, {status: 200}}}
		counter := &closeCounter{next: inMemory{script}}
		rt := leveehttp.NewTransport(counter, retry.Policy[*http.Response]())
		done := make(chan *http.Response)
		go func() {
			resp, err := get(t, rt, "http://api.example/")
			assert.NoError(t, err)
			done <- resp
		}()

		time.Sleep(time.Second)
		synctest.Wait()
		assert.Equal(t, int64(1), counter.bodies.Load(), "the retry waits for the hint")
		assert.Equal(t, int64(1), counter.closes.Load(), "the 503 is closed while the retry waits")

		resp := <-done
		require.NotNil(t, resp)
		assert.Equal(t, "attempt 2", readAll(t, resp))
		assert.Equal(t, int64(2), counter.closes.Load())
	})
}

// A policy of the user's own that releases a failure and still returns it
// gets its error through to the caller: a closed response never is.
func TestTransport_NeverHandsOverAReleasedResponse(t *testing.T) {
	srv, _ := newScriptedServer(t, answer{status: 503})
	counter := &closeCounter{next: baseTransport(t)}
	releaseAndReturn := resilience.PolicyFunc[*http.Response](func(next resilience.Func[*http.Response]) resilience.Func[*http.Response] {
		return func(ctx context.Context) (*http.Response, error) {
			resp, err := next(ctx)
			var failed *leveehttp.ResponseError
			if errors.As(err, &failed) {
				failed.Release()
				failed.Release() // a second time does nothing
			}
			return resp, err
		}
	})
	rt := leveehttp.NewTransport(counter, releaseAndReturn)

	resp, err := get(t, rt, srv.URL)

	var failed *leveehttp.ResponseError
	require.ErrorAs(t, err, &failed)
	assert.Nil(t, resp)
	assert.Equal(t, int64(1), counter.closes.Load(), "closed once, by the release")
}

// In a bubble, served in memory, so that the delays are exact.
func TestTransport_RetryWaitsAtLeastTheServersRetryAfter(t *testing.T) {
	for _, status := range []int{http.StatusServiceUnavailable, http.StatusTooManyRequests} {
		t.Run(strconv(status), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				script := &scripted{answers: []answer{{status: status, retryAfter: "2"}, {status: 200}}}
				rt := leveehttp.NewTransport(inMemory{script},
					retry.Policy[*http.Response](retry.WithDelay(10*time.Millisecond)))
				start := time.Now()

				resp, err := get(t, rt, "http://api.example/")

				require.NoError(t, err)
				assert.Equal(t, http.StatusOK, resp.StatusCode)
				assert.Equal(t, "attempt 2", readAll(t, resp))
				assert.Equal(t, 2*time.Second, time.Since(start), "the hint, not the 10ms delay")
			})
		})
	}
}

func TestTransport_RetryAfterPastTheCallersDeadlineStopsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		script := &scripted{answers: []answer{{status: 503, retryAfter: "5"}, {status: 200}}}
		rt := leveehttp.NewTransport(inMemory{script}, retry.Policy[*http.Response](retry.WithDelay(0)))
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://api.example/", nil)
		require.NoError(t, err)
		start := time.Now()

		resp, err := rt.RoundTrip(req)

		require.NoError(t, err)
		assert.Zero(t, time.Since(start), "no wait for a retry that could not start before the deadline")
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		assert.Equal(t, "5", resp.Header.Get("Retry-After"))
		assert.Equal(t, "attempt 1", readAll(t, resp))
		assert.Len(t, script.requests(), 1)
	})
}

// The same on real sockets: a 30-second hint against a 10-second deadline.
func TestTransport_RetryAfterPastTheCallersDeadlineStopsAtOnceOnRealSockets(t *testing.T) {
	srv, script := newScriptedServer(t, answer{status: 503, retryAfter: "30"}, answer{status: 200})
	counter := &closeCounter{next: baseTransport(t)}
	rt := leveehttp.NewTransport(counter, retry.Policy[*http.Response](retry.WithBackoff(time.Millisecond, time.Minute)))
	start := time.Now()

	resp, err := get(t, rt, srv.URL) // its deadline is requestBound, 10 s away

	require.NoError(t, err)
	assert.Less(t, time.Since(start), requestBound/2, "the retry returned without waiting for the hint")
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "attempt 1", readAll(t, resp))
	assert.Len(t, script.requests(), 1)
	assert.Equal(t, int64(1), counter.closes.Load())
}

// A caller that gives up while the retry waits gets its context's error,
// not the response the retry was waiting to replace: that response is
// closed.
func TestTransport_CallerGivingUpDuringARetryDelayGetsItsContextsError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		script := &scripted{answers: []answer{{status: 503, retryAfter: "5"}}}
		counter := &closeCounter{next: inMemory{script}}
		rt := leveehttp.NewTransport(counter, retry.Policy[*http.Response]())
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		time.AfterFunc(time.Second, cancel)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://api.example/", nil)
		require.NoError(t, err)
		start := time.Now()

		resp, err := rt.RoundTrip(req)

		require.ErrorIs(t, err, context.Canceled)
		var failed *leveehttp.ResponseError
		assert.ErrorAs(t, err, &failed, "the last attempt's failure is still reachable")
		assert.Nil(t, resp)
		assert.Equal(t, time.Second, time.Since(start))
		assert.Equal(t, int64(1), counter.closes.Load(), "the failed response nobody gets is closed")
	})
}

func TestTransport_RetryWithABudgetHandsOverTheLastResponseWhenTheBudgetRefuses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		script := &scripted{answers: []answer{{status: 503}}}
		budget := retry.NewBudget(0.1, 1) // one retry in the first second
		rt := leveehttp.NewTransport(inMemory{script},
			retry.Policy[*http.Response](retry.WithDelay(0), retry.WithBudget(budget)))

		resp, err := get(t, rt, "http://api.example/") // attempts 1 and 2
		require.NoError(t, err)
		assert.Equal(t, "attempt 2", readAll(t, resp))
		resp, err = get(t, rt, "http://api.example/") // attempt 3; its retry is refused

		require.NoError(t, err)
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		assert.Equal(t, "attempt 3", readAll(t, resp))
		assert.Len(t, script.requests(), 3)
	})
}
