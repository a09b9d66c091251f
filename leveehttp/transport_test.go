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
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/fallback"
	"github.com/levee-go/levee/leveehttp"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/telemetry"
)

// requestBound is how long any request of these tests may take: a server
// that hangs, or a policy that fails to end a call, fails the test instead
// of hanging it.
const requestBound = 10 * time.Second

// boundedContext is the test's context, ended after requestBound.
func boundedContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), requestBound)
	t.Cleanup(cancel)
	return ctx
}

func get(t *testing.T, rt http.RoundTripper, url string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(boundedContext(t), http.MethodGet, url, nil)
	require.NoError(t, err)
	return rt.RoundTrip(req)
}

func TestTransport_CountsTransportErrors5xxAnd429AsFailuresAndNothingElse(t *testing.T) {
	cases := []struct {
		status  int
		failure bool
	}{
		{http.StatusOK, false},
		{http.StatusNoContent, false},
		{http.StatusMovedPermanently, false},
		{http.StatusBadRequest, false},
		{http.StatusNotFound, false},
		{http.StatusTooManyRequests, true},
		{http.StatusInternalServerError, true},
		{http.StatusNotImplemented, true},
		{http.StatusServiceUnavailable, true},
	}
	for _, tc := range cases {
		t.Run(strconv(tc.status), func(t *testing.T) {
			srv := newFlakyServer(t)
			srv.status.Store(int64(tc.status))
			b := breaker.New("api", breaker.WithFailureThreshold(100))
			rt := leveehttp.NewTransport(baseTransport(t), breaker.Policy[*http.Response](b))

			resp, err := get(t, rt, srv.URL)

			require.NoError(t, err, "a response reaches the caller as a response, whatever its status")
			assert.Equal(t, tc.status, resp.StatusCode)
			assert.Equal(t, "flaky", resp.Header.Get("X-Served-By"))
			if tc.status != http.StatusNoContent {
				assert.Equal(t, http.StatusText(tc.status), readAll(t, resp))
			} else {
				readAll(t, resp)
			}
			want := breaker.Counts{Success: 1}
			if tc.failure {
				want = breaker.Counts{Failure: 1}
			}
			assert.Equal(t, want, b.Counts())
		})
	}

	t.Run("transport error", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close() // nothing listens there any more
		b := breaker.New("api")
		rt := leveehttp.NewTransport(baseTransport(t), breaker.Policy[*http.Response](b))

		resp, err := get(t, rt, url)

		require.Error(t, err)
		assert.Nil(t, resp)
		assert.NotErrorIs(t, err, breaker.ErrOpen)
		assert.Equal(t, breaker.Counts{Failure: 1}, b.Counts())
	})
}

func strconv(status int) string { return fmt.Sprintf("%d", status) }

func TestTransport_FailingResponseReachesTheCallerWholeAndIsClosedOnce(t *testing.T) {
	srv := newFlakyServer(t)
	srv.status.Store(http.StatusServiceUnavailable)
	srv.header.Store("Retry-After", "7")
	counter := &closeCounter{next: baseTransport(t)}
	b := breaker.New("api")
	rt := leveehttp.NewTransport(counter, breaker.Policy[*http.Response](b))

	resp, err := get(t, rt, srv.URL)

	require.NoError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "7", resp.Header.Get("Retry-After"))
	assert.Zero(t, counter.closes.Load(), "the transport must not close the body it hands the caller")
	assert.Equal(t, "Service Unavailable", readAll(t, resp))
	assert.Equal(t, int64(1), counter.closes.Load())
	assert.Equal(t, breaker.Counts{Failure: 1}, b.Counts())
}

func TestTransport_IsFailureDecidesWhichResponsesFail(t *testing.T) {
	srv := newFlakyServer(t)
	b := breaker.New("api", breaker.WithFailureThreshold(100))
	rt := leveehttp.NewTransport(baseTransport(t), breaker.Policy[*http.Response](b))
	rt.IsFailure = func(resp *http.Response) bool { return resp.StatusCode == http.StatusNotFound }

	srv.status.Store(http.StatusNotFound)
	resp, err := get(t, rt, srv.URL)
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, breaker.Counts{Failure: 1}, b.Counts())

	srv.status.Store(http.StatusServiceUnavailable)
	resp, err = get(t, rt, srv.URL)
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, breaker.Counts{Failure: 1, Success: 1}, b.Counts())
}

func TestTransport_RejectedRequestIsNotSentAndItsBodyIsClosedUnread(t *testing.T) {
	srv := newFlakyServer(t)
	srv.status.Store(http.StatusInternalServerError)
	b := breaker.New("api", breaker.WithFailureThreshold(1))
	rt := leveehttp.NewTransport(baseTransport(t), breaker.Policy[*http.Response](b))
	resp, err := get(t, rt, srv.URL)
	require.NoError(t, err)
	readAll(t, resp)
	require.Equal(t, breaker.Open, b.State())

	body := &spyBody{r: strings.NewReader("payload")}
	req, err := http.NewRequestWithContext(boundedContext(t), http.MethodPost, srv.URL, body)
	require.NoError(t, err)
	resp, err = rt.RoundTrip(req)

	require.ErrorIs(t, err, breaker.ErrOpen)
	assert.Nil(t, resp)
	assert.Zero(t, body.reads.Load(), "a rejected request's body must not be read")
	assert.Equal(t, int64(1), body.closes.Load(), "a rejected request's body must be closed once")
	assert.Equal(t, int64(1), srv.hits.Load())

	// Through an http.Client the rejection arrives wrapped in a *url.Error.
	client := &http.Client{Transport: rt}
	_, err = client.Post(srv.URL, "text/plain", strings.NewReader("payload"))
	require.ErrorIs(t, err, breaker.ErrOpen)
	assert.Equal(t, int64(1), srv.hits.Load())
}

func TestTransport_FallbackOutsideTheBreakerSeesTheFailureAndItsResponse(t *testing.T) {
	srv := newFlakyServer(t)
	srv.status.Store(http.StatusServiceUnavailable)
	counter := &closeCounter{next: baseTransport(t)}
	b := breaker.New("api", breaker.WithFailureThreshold(2))
	var seen []string
	cached := func(_ context.Context, err error) (*http.Response, error) {
		var failed *leveehttp.ResponseError
		if errors.As(err, &failed) {
			seen = append(seen, failed.Response.Status)
		} else {
			seen = append(seen, err.Error())
		}
		return &http.Response{
			StatusCode: http.StatusOK,
			Header:     http.Header{"X-Cache": {"hit"}},
			Body:       io.NopCloser(strings.NewReader("cached")),
		}, nil
	}
	rt := leveehttp.NewTransport(counter,
		fallback.Func(cached),
		breaker.Policy[*http.Response](b))

	for range 3 {
		resp, err := get(t, rt, srv.URL)
		require.NoError(t, err)
		assert.Equal(t, "hit", resp.Header.Get("X-Cache"))
		assert.Equal(t, "cached", readAll(t, resp))
	}

	assert.Equal(t, []string{
		"503 Service Unavailable",
		"503 Service Unavailable",
		`levee: circuit breaker "api" is open`,
	}, seen)
	assert.Equal(t, int64(2), srv.hits.Load())
	assert.Equal(t, breaker.Counts{Failure: 2, Rejected: 1}, b.Counts())
	assert.Equal(t, int64(2), counter.bodies.Load())
	assert.Equal(t, int64(2), counter.closes.Load(), "the transport closes each response a fallback replaced, once")
}

func TestTransport_ResponseErrorNamesItsStatusForTelemetry(t *testing.T) {
	srv := newFlakyServer(t)
	srv.status.Store(http.StatusTooManyRequests)
	var got error
	capture := resilience.PolicyFunc[*http.Response](func(next resilience.Func[*http.Response]) resilience.Func[*http.Response] {
		return func(ctx context.Context) (*http.Response, error) {
			resp, err := next(ctx)
			got = err
			return resp, err
		}
	})
	rt := leveehttp.NewTransport(baseTransport(t), capture)

	resp, err := get(t, rt, srv.URL)

	require.NoError(t, err)
	readAll(t, resp)
	var failed *leveehttp.ResponseError
	require.ErrorAs(t, got, &failed)
	assert.Same(t, resp, failed.Response)
	assert.Equal(t, "429", telemetry.ErrorType(got))
	assert.Equal(t, "leveehttp: GET "+strings.TrimPrefix(srv.URL, "http://")+": 429 Too Many Requests", got.Error())
}

func TestTransport_PolicyAnsweringNothingIsAnError(t *testing.T) {
	srv := newFlakyServer(t)
	srv.status.Store(http.StatusInternalServerError)
	rt := leveehttp.NewTransport(baseTransport(t),
		fallback.Func(func(context.Context, error) (*http.Response, error) { return nil, nil }))

	resp, err := get(t, rt, srv.URL)

	require.Error(t, err)
	assert.Nil(t, resp)
}

// blockingServer answers once the test releases it, or when the request's
// context ends; started tells the test a request has arrived.
func blockingServer(t *testing.T) (srv *httptest.Server, started <-chan struct{}, release chan<- struct{}) {
	t.Helper()
	startedCh := make(chan struct{}, 16)
	releaseCh := make(chan struct{})
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		startedCh <- struct{}{}
		select {
		case <-releaseCh:
			_, _ = io.WriteString(w, "late")
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(releaseCh) })
	return srv, startedCh, releaseCh
}

func TestTransport_CallerGivingUpIsNeitherSuccessNorFailure(t *testing.T) {
	srv, started, _ := blockingServer(t)
	b := breaker.New("api")
	rt := leveehttp.NewTransport(baseTransport(t), breaker.Policy[*http.Response](b))
	ctx, cancel := context.WithCancel(boundedContext(t))
	go func() {
		select {
		case <-started:
		case <-ctx.Done(): // bounded: the request never arrived
		}
		cancel()
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	require.NoError(t, err)

	resp, err := rt.RoundTrip(req)

	require.ErrorIs(t, err, context.Canceled)
	assert.Nil(t, resp)
	assert.Equal(t, breaker.Counts{Ignored: 1}, b.Counts())
}

func TestTransport_TimeoutInsideTheBreakerCountsASlowServerAsFailing(t *testing.T) {
	srv, _, _ := blockingServer(t)
	b := breaker.New("api")
	rt := leveehttp.NewTransport(baseTransport(t),
		breaker.Policy[*http.Response](b),
		resilience.Timeout[*http.Response](5*time.Millisecond))

	resp, err := get(t, rt, srv.URL)

	require.ErrorIs(t, err, resilience.ErrTimeout)
	assert.Nil(t, resp)
	assert.Equal(t, breaker.Counts{Failure: 1}, b.Counts())
}

// streamingServer sends its headers and the first part of the body at once,
// and the rest when the test says so.
func streamingServer(t *testing.T) (*httptest.Server, chan<- struct{}) {
	t.Helper()
	rest := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "first;")
		http.NewResponseController(w).Flush()
		select {
		case <-rest:
			_, _ = io.WriteString(w, "rest")
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	return srv, rest
}

func TestTransport_TimeoutBoundsTheHeadersNotTheBodyTheCallerReads(t *testing.T) {
	srv, rest := streamingServer(t)
	rt := leveehttp.NewTransport(baseTransport(t), resilience.Timeout[*http.Response](time.Minute))

	resp, err := get(t, rt, srv.URL)
	require.NoError(t, err)
	// The Timeout's context is cancelled now that the call returned; the
	// body must still arrive.
	close(rest)

	assert.Equal(t, "first;rest", readAll(t, resp))
}

func TestTransport_CallerContextStillEndsTheBodyUnderATimeout(t *testing.T) {
	srv, _ := streamingServer(t)
	rt := leveehttp.NewTransport(baseTransport(t), resilience.Timeout[*http.Response](time.Minute))
	ctx, cancel := context.WithCancel(boundedContext(t))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	require.NoError(t, err)

	resp, err := rt.RoundTrip(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	first := make([]byte, len("first;"))
	_, err = io.ReadFull(resp.Body, first)
	require.NoError(t, err)
	cancel()

	_, err = io.ReadAll(resp.Body)
	require.ErrorIs(t, err, context.Canceled)
}

// roundTripFunc adapts a function to http.RoundTripper.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// In a bubble (the RoundTripper is in memory): the deadline cannot fire
// before the attempt has started, as it could on real time with a 1 ms
// timeout, which left the test waiting forever (issue 10, point 11).
func TestTransport_ClosesTheResponseOfAnAttemptATimeoutAbandoned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		started := make(chan struct{})
		body := &spyBody{r: strings.NewReader("late")}
		ignoresItsContext := roundTripFunc(func(req *http.Request) (*http.Response, error) {
			close(started)
			<-release
			return &http.Response{StatusCode: http.StatusOK, Body: body, Request: req}, nil
		})
		rt := leveehttp.NewTransport(ignoresItsContext,
			resilience.Timeout[*http.Response](time.Millisecond, resilience.ReturnAtDeadline()))

		resp, err := get(t, rt, "http://example.invalid/")
		require.ErrorIs(t, err, resilience.ErrTimeout)
		assert.Nil(t, resp)
		synctest.Wait()
		select {
		case <-started:
		default:
			require.Fail(t, "the attempt never started")
		}
		assert.Zero(t, body.closes.Load(), "the attempt has not returned yet")

		close(release)
		synctest.Wait() // the abandoned attempt has returned, and its response been dealt with
		assert.Equal(t, int64(1), body.closes.Load(), "the abandoned attempt's response is closed, once")
		assert.Zero(t, body.reads.Load())
	})
}

// retryOnce is a minimal retry policy: it runs the call again once when
// it fails.
var retryOnce = resilience.PolicyFunc[*http.Response](func(next resilience.Func[*http.Response]) resilience.Func[*http.Response] {
	return func(ctx context.Context) (*http.Response, error) {
		resp, err := next(ctx)
		if err == nil {
			return resp, nil
		}
		return next(ctx)
	}
})

func TestTransport_ARetryResendsTheBodyAndClosesTheResponseItReplaced(t *testing.T) {
	var hits atomic.Int64
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(data))
		if hits.Add(1) == 1 {
			w.WriteHeader(http.StatusBadGateway)
		}
		_, _ = io.WriteString(w, "attempt "+strconv(int(hits.Load())))
	}))
	t.Cleanup(srv.Close)
	counter := &closeCounter{next: baseTransport(t)}
	rt := leveehttp.NewTransport(counter, retryOnce)
	req, err := http.NewRequestWithContext(boundedContext(t), http.MethodPost, srv.URL, strings.NewReader("payload"))
	require.NoError(t, err)

	resp, err := rt.RoundTrip(req)

	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, int64(1), counter.closes.Load(), "the first, failing response is closed by the transport")
	assert.Equal(t, "attempt 2", readAll(t, resp))
	assert.Equal(t, []string{"payload", "payload"}, bodies)
	assert.Equal(t, int64(2), counter.closes.Load())
}

func TestTransport_ARetryOfABodyThatCannotBeReplayedFails(t *testing.T) {
	srv := newFlakyServer(t)
	srv.status.Store(http.StatusBadGateway)
	counter := &closeCounter{next: baseTransport(t)}
	rt := leveehttp.NewTransport(counter, retryOnce)
	req, err := http.NewRequestWithContext(boundedContext(t), http.MethodPost, srv.URL, io.NopCloser(strings.NewReader("payload")))
	require.NoError(t, err)
	require.Nil(t, req.GetBody)

	resp, err := rt.RoundTrip(req)

	require.ErrorIs(t, err, leveehttp.ErrBodyNotReplayable)
	assert.Nil(t, resp)
	assert.Equal(t, int64(1), srv.hits.Load())
	assert.Equal(t, int64(1), counter.closes.Load(), "the failing first response is closed")
}

// The scenario the package exists for: a dependency that goes down and
// comes back, watched by a breaker with a 30-second open timeout. An
// http.Client sends every request through the Transport to the flaky
// handler, served in memory so that the test runs in a synctest bubble and
// the open timeout passes at once and exactly (the tests above cover real
// sockets).
func TestTransport_ServerThatGoesDownAndComesBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newFlaky()
		var changes []string
		b := breaker.New("api",
			breaker.WithFailureThreshold(3),
			breaker.WithOpenTimeout(30*time.Second),
			breaker.WithStateChangeListener(func(c breaker.StateChange) {
				changes = append(changes, c.From.String()+"->"+c.To.String())
			}))
		client := &http.Client{Transport: leveehttp.NewTransport(inMemory{srv}, breaker.Policy[*http.Response](b))}
		call := func() (int, error) {
			resp, err := client.Get("http://api.example/")
			if err != nil {
				return 0, err
			}
			readAll(t, resp)
			return resp.StatusCode, nil
		}

		// Up.
		for range 5 {
			status, err := call()
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, status)
		}
		require.Equal(t, int64(5), srv.hits.Load())

		// Down: three failures reach the server and open the breaker.
		srv.status.Store(http.StatusServiceUnavailable)
		for range 3 {
			status, err := call()
			require.NoError(t, err, "the caller still sees the server's 503")
			require.Equal(t, http.StatusServiceUnavailable, status)
		}
		require.Equal(t, breaker.Open, b.State())
		require.Equal(t, int64(8), srv.hits.Load())

		// Open: calls are rejected without reaching the server.
		for range 10 {
			_, err := call()
			require.ErrorIs(t, err, breaker.ErrOpen)
		}
		assert.Equal(t, int64(8), srv.hits.Load(), "an open breaker must not let calls reach the server")

		// Half-open while still down: one probe reaches the server and fails.
		time.Sleep(30 * time.Second)
		synctest.Wait()
		require.Equal(t, breaker.HalfOpen, b.State())
		status, err := call()
		require.NoError(t, err)
		assert.Equal(t, http.StatusServiceUnavailable, status)
		assert.Equal(t, breaker.Open, b.State())
		assert.Equal(t, int64(9), srv.hits.Load())
		_, err = call()
		require.ErrorIs(t, err, breaker.ErrOpen)
		assert.Equal(t, int64(9), srv.hits.Load())

		// Back up: the next probe succeeds and closes the breaker.
		srv.status.Store(http.StatusOK)
		time.Sleep(30 * time.Second)
		synctest.Wait()
		for range 3 {
			status, err := call()
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, status)
		}
		assert.Equal(t, breaker.Closed, b.State())
		assert.Equal(t, int64(12), srv.hits.Load())
		assert.Equal(t, breaker.Counts{Success: 8, Failure: 4, Rejected: 11}, b.Counts())
		synctest.Wait() // the listener has been told of every change
		assert.Equal(t, []string{
			"closed->open", "open->half-open", "half-open->open", "open->half-open", "half-open->closed",
		}, changes)
	})
}

// In a bubble, the handler served in memory: the open period is exact to
// the millisecond, and its Date header is the bubble's clock.
func TestTransport_RetryAfterLengthensTheOpenPeriodWhenTheBreakerAsks(t *testing.T) {
	cases := []struct {
		name       string
		status     int
		retryAfter func(now time.Time) string
		options    []breaker.Option
		wantOpen   time.Duration
	}{
		{"503 asking longer than the open timeout", 503, seconds("20"), []breaker.Option{breaker.WithRetryAfter(time.Minute)}, 20 * time.Second},
		{"429 asking longer than the open timeout", 429, seconds("45"), []breaker.Option{breaker.WithRetryAfter(time.Minute)}, 45 * time.Second},
		{"capped at the limit", 503, seconds("3600"), []breaker.Option{breaker.WithRetryAfter(time.Minute)}, time.Minute},
		{"never shorter than the open timeout", 503, seconds("2"), []breaker.Option{breaker.WithRetryAfter(time.Minute)}, 10 * time.Second},
		{"as an HTTP date", 503, func(now time.Time) string { return now.Add(25 * time.Second).Format(http.TimeFormat) },
			[]breaker.Option{breaker.WithRetryAfter(time.Minute)}, 25 * time.Second},
		{"ignored on a 500", 500, seconds("20"), []breaker.Option{breaker.WithRetryAfter(time.Minute)}, 10 * time.Second},
		{"ignored without WithRetryAfter", 503, seconds("20"), nil, 10 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					now := time.Now()
					w.Header().Set("Date", now.Format(http.TimeFormat))
					w.Header().Set("Retry-After", tc.retryAfter(now))
					w.WriteHeader(tc.status)
				})
				opts := append([]breaker.Option{
					breaker.WithFailureThreshold(1),
					breaker.WithOpenTimeout(10 * time.Second),
				}, tc.options...)
				b := breaker.New("api", opts...)
				rt := leveehttp.NewTransport(inMemory{srv}, breaker.Policy[*http.Response](b))
				resp, err := get(t, rt, "http://api.example/")
				require.NoError(t, err)
				readAll(t, resp)

				_, err = get(t, rt, "http://api.example/")

				var rejected *breaker.OpenError
				require.ErrorAs(t, err, &rejected)
				assert.Equal(t, tc.wantOpen, rejected.RetryAfter())
				time.Sleep(tc.wantOpen - time.Millisecond)
				synctest.Wait()
				assert.Equal(t, breaker.Open, b.State(), "a millisecond before the open period ends")
				time.Sleep(time.Millisecond)
				synctest.Wait()
				assert.Equal(t, breaker.HalfOpen, b.State())
			})
		})
	}
}

// seconds returns a Retry-After value of v, whatever the time.
func seconds(v string) func(time.Time) string { return func(time.Time) string { return v } }

func TestTransport_IsFailureThatPanicsLeavesNoResponseOpen(t *testing.T) {
	srv := newFlakyServer(t)
	counter := &closeCounter{next: baseTransport(t)}
	rt := leveehttp.NewTransport(counter)
	rt.IsFailure = func(*http.Response) bool { panic("no verdict") }

	assert.PanicsWithValue(t, "no verdict", func() { _, _ = get(t, rt, srv.URL) })

	assert.Equal(t, int64(1), counter.bodies.Load())
	assert.Equal(t, int64(1), counter.closes.Load())
}
