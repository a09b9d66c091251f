package leveehttp_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/leveehttp"
)

func serve(h http.Handler) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	return rec
}

func TestHandler_CountsFiveHundredsAndPanicsAsFailures(t *testing.T) {
	cases := []struct {
		name    string
		handler http.HandlerFunc
		status  int
		failure bool
	}{
		{"writes nothing", func(http.ResponseWriter, *http.Request) {}, 200, false},
		{"writes a body", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }, 200, false},
		{"201", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(201) }, 201, false},
		{"404", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, 404, false},
		{"429", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(429) }, 429, false},
		// The recorder keeps the 103 as its Code; a client would see the 500.
		{"103 then 500", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(103); w.WriteHeader(500) }, 103, true},
		{"500", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) }, 500, true},
		{"503 after a body", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(503)
			_, _ = io.WriteString(w, "down")
		}, 503, true},
		{"200 then a late 500 that is ignored", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "ok")
			w.WriteHeader(500) // superfluous: the client got 200
		}, 200, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := breaker.New("server")
			rec := serve(leveehttp.Handler(tc.handler, b))
			assert.Equal(t, tc.status, rec.Code)
			want := breaker.Counts{Success: 1}
			if tc.failure {
				want = breaker.Counts{Failure: 1}
			}
			assert.Equal(t, want, b.Counts())
		})
	}

	t.Run("panic", func(t *testing.T) {
		b := breaker.New("server")
		h := leveehttp.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }), b)
		assert.PanicsWithValue(t, "boom", func() { serve(h) })
		assert.Equal(t, breaker.Counts{Failure: 1}, b.Counts())
	})
}

func TestHandler_FiveHundredsCanBeExemptedThroughTheBreaker(t *testing.T) {
	b := breaker.New("server", breaker.WithIsFailure(func(err error) bool {
		var he *leveehttp.HandlerError
		return !errors.As(err, &he) || he.StatusCode != http.StatusNotImplemented
	}))
	h := leveehttp.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(501) }), b)
	serve(h)
	assert.Equal(t, breaker.Counts{Success: 1}, b.Counts())
}

// In a bubble: the handler is served in memory (a recorder, no socket),
// and the open period passes exactly.
func TestHandler_OpenBreakerAnswers503WithRetryAfterWithoutCallingTheHandler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := breaker.New("server",
			breaker.WithFailureThreshold(2),
			breaker.WithOpenTimeout(10*time.Second))
		var calls atomic.Int64
		var status atomic.Int64
		status.Store(http.StatusInternalServerError)
		h := leveehttp.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			calls.Add(1)
			w.WriteHeader(int(status.Load()))
		}), b)
		serve(h)
		serve(h)
		require.Equal(t, breaker.Open, b.State())

		for _, step := range []struct {
			advance    time.Duration
			retryAfter string
		}{
			{0, "10"},
			{2500 * time.Millisecond, "8"}, // 7.5 s left, rounded up
			{7 * time.Second, "1"},         // 0.5 s left
			{499 * time.Millisecond, "1"},  // 1 ms left: at least 1
		} {
			time.Sleep(step.advance)
			synctest.Wait()
			rec := serve(h)
			assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
			assert.Equal(t, step.retryAfter, rec.Header().Get("Retry-After"), "after %v more", step.advance)
			assert.Equal(t, "Service Unavailable\n", rec.Body.String())
		}
		assert.Equal(t, int64(2), calls.Load(), "an open breaker must not call the handler")
		assert.Equal(t, int64(4), b.Counts().Rejected)

		// The open timeout passes: one probe reaches the handler and closes it.
		status.Store(http.StatusOK)
		time.Sleep(time.Millisecond)
		synctest.Wait()
		require.Equal(t, breaker.HalfOpen, b.State())
		rec := serve(h)
		assert.Equal(t, http.StatusOK, rec.Code)
		assert.Empty(t, rec.Header().Get("Retry-After"))
		assert.Equal(t, int64(3), calls.Load())
		assert.Equal(t, breaker.Closed, b.State())
	})
}

func TestHandler_RejectsWhileTheHalfOpenProbeIsInFlightWithRetryAfterOne(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := breaker.New("server", breaker.WithOpenTimeout(time.Second))
		for range 3 {
			_ = b.Call(context.Background(), func(context.Context) error { return errors.New("down") })
		}
		require.Equal(t, breaker.Open, b.State())
		time.Sleep(time.Second)
		synctest.Wait()
		require.Equal(t, breaker.HalfOpen, b.State())

		inHandler := make(chan struct{})
		release := make(chan struct{})
		h := leveehttp.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			close(inHandler)
			<-release
		}), b)
		probeDone := make(chan *httptest.ResponseRecorder)
		go func() { probeDone <- serve(h) }()
		<-inHandler

		rec := serve(h)
		close(release)

		assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
		assert.Equal(t, "1", rec.Header().Get("Retry-After"))
		assert.Equal(t, http.StatusOK, (<-probeDone).Code)
		assert.Equal(t, breaker.Closed, b.State())
	})
}

// In a bubble: a breaker whose open period grows on each reopening
// (breaker.WithOpenBackoff) advises the period it is in.
func TestHandler_RetryAfterGrowsWithTheBreakersOpenBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := breaker.New("server",
			breaker.WithFailureThreshold(1),
			breaker.WithOpenTimeout(10*time.Second),
			breaker.WithOpenBackoff(3, time.Minute, 0))
		h := leveehttp.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
		}), b)
		require.Equal(t, http.StatusInternalServerError, serve(h).Code) // opens

		for _, open := range []time.Duration{10 * time.Second, 30 * time.Second, time.Minute, time.Minute} { // 90s is capped at 1m
			rec := serve(h)
			require.Equal(t, http.StatusServiceUnavailable, rec.Code)
			assert.Equal(t, fmt.Sprint(int(open.Seconds())), rec.Header().Get("Retry-After"))
			time.Sleep(open)
			synctest.Wait()
			require.Equal(t, breaker.HalfOpen, b.State(), "half-open once the advised time has passed")
			require.Equal(t, http.StatusInternalServerError, serve(h).Code, "the probe fails: reopened for longer")
		}
	})
}

func TestHandler_ForcedOpenBreakerAdvisesTheOpenTimeout(t *testing.T) {
	b := breaker.New("server", breaker.WithOpenTimeout(90*time.Second))
	b.ForceOpen(context.Background())
	rec := serve(leveehttp.Handler(http.NotFoundHandler(), b))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Equal(t, "90", rec.Header().Get("Retry-After"))
}

func TestHandler_WriterKeepsFlushAndUnwrap(t *testing.T) {
	var unwrapped http.ResponseWriter
	var isFlusher bool
	h := leveehttp.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, isFlusher = w.(http.Flusher)
		_, _ = io.WriteString(w, "chunk")
		require.NoError(t, http.NewResponseController(w).Flush())
		unwrapped = w.(interface{ Unwrap() http.ResponseWriter }).Unwrap()
	}), breaker.New("server"))
	rec := serve(h)
	assert.True(t, isFlusher)
	assert.True(t, rec.Flushed)
	assert.Same(t, rec, unwrapped)
}

func TestHandler_PanicsOnNilArguments(t *testing.T) {
	assert.Panics(t, func() { leveehttp.Handler(nil, breaker.New("server")) })
	assert.Panics(t, func() { leveehttp.Handler(http.NotFoundHandler(), nil) })
}

// Both sides together: a server shedding load with Handler, and a client
// whose breaker honours the server's Retry-After. Real sockets, so real
// time: the server's 40 s open period has barely begun when the client
// reads it.
func TestHandlerAndTransport_ClientBreakerHonoursTheServersRetryAfter(t *testing.T) {
	serverBreaker := breaker.New("server",
		breaker.WithFailureThreshold(2),
		breaker.WithOpenTimeout(40*time.Second))
	var handled atomic.Int64
	srv := httptest.NewServer(leveehttp.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		handled.Add(1)
		http.Error(w, "database down", http.StatusInternalServerError)
	}), serverBreaker))
	t.Cleanup(srv.Close)

	clientBreaker := breaker.New("client",
		breaker.WithFailureThreshold(3),
		breaker.WithOpenTimeout(5*time.Second),
		breaker.WithRetryAfter(time.Minute))
	rt := leveehttp.NewTransport(baseTransport(t), breaker.Policy[*http.Response](clientBreaker))

	var statuses []int
	for range 3 {
		resp, err := get(t, rt, srv.URL)
		require.NoError(t, err)
		readAll(t, resp)
		statuses = append(statuses, resp.StatusCode)
	}
	_, err := get(t, rt, srv.URL)

	assert.Equal(t, []int{500, 500, 503}, statuses)
	assert.Equal(t, int64(2), handled.Load())
	var rejected *breaker.OpenError
	require.ErrorAs(t, err, &rejected)
	assert.Equal(t, "client", rejected.Name())
	// Not the client's own 5 s, nor its 1 min limit: the 40 s the server
	// asked for, less the little real time since.
	assert.LessOrEqual(t, rejected.RetryAfter(), 40*time.Second)
	assert.Greater(t, rejected.RetryAfter(), 30*time.Second, "the client stays open as long as the server asked")
}

// A client that went away, and a handler that aborts with
// http.ErrAbortHandler (httputil.ReverseProxy on a client disconnect), prove
// nothing about the handler: the breaker counts neither a success nor a
// failure (issue 10, point 3).
func TestHandler_ClientGoneAwayOrAbortedHandlerCountsNeither(t *testing.T) {
	t.Run("request context ended while handling", func(t *testing.T) {
		b := breaker.New("server")
		ctx, cancel := context.WithCancel(context.Background())
		h := leveehttp.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			cancel() // the client goes away; the handler returns without writing
		}), b)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx))
		assert.Equal(t, breaker.Counts{Ignored: 1}, b.Counts(), "not a success")
	})
	t.Run("request context ended before the handler", func(t *testing.T) {
		b := breaker.New("server")
		called := false
		h := leveehttp.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true }), b)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx))
		assert.False(t, called, "the handler does not run for a client already gone")
		assert.Equal(t, http.StatusServiceUnavailable, rec.Code, "never an empty 200 in the server's logs")
		assert.Empty(t, rec.Header().Get("Retry-After"), "only an open breaker knows when to come back")
		assert.Equal(t, breaker.Counts{Ignored: 1}, b.Counts())
	})
	t.Run("a 500 written for a client that went away", func(t *testing.T) {
		b := breaker.New("server", breaker.WithFailureThreshold(1))
		ctx, cancel := context.WithCancel(context.Background())
		h := leveehttp.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			cancel()
			w.WriteHeader(http.StatusInternalServerError)
		}), b)
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx))
		assert.Equal(t, breaker.Counts{Ignored: 1}, b.Counts(), "not a failure")
		assert.Equal(t, breaker.Closed, b.State())
	})
	t.Run("panic(http.ErrAbortHandler)", func(t *testing.T) {
		b := breaker.New("server", breaker.WithFailureThreshold(1))
		h := leveehttp.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }), b)
		assert.PanicsWithValue(t, http.ErrAbortHandler, func() { serve(h) }, "net/http still gets the abort")
		assert.Equal(t, breaker.Counts{Ignored: 1}, b.Counts(), "not a failure")
		assert.Equal(t, breaker.Closed, b.State())
	})
}

// As the half-open probe, a request whose client went away frees the probe
// slot without closing the breaker: the next request is the probe.
func TestHandler_ProbeWhoseClientWentAwayLeavesTheBreakerHalfOpen(t *testing.T) {
	for name, abandon := range map[string]func(w http.ResponseWriter, cancel context.CancelFunc){
		"request context ended": func(w http.ResponseWriter, cancel context.CancelFunc) {
			cancel()
			w.WriteHeader(http.StatusOK)
		},
		"ErrAbortHandler": func(http.ResponseWriter, context.CancelFunc) { panic(http.ErrAbortHandler) },
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := breaker.New("server", breaker.WithFailureThreshold(1), breaker.WithOpenTimeout(time.Second))
				_ = b.Call(context.Background(), func(context.Context) error { return errors.New("down") })
				time.Sleep(time.Second)
				synctest.Wait()
				require.Equal(t, breaker.HalfOpen, b.State())

				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				probe := leveehttp.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { abandon(w, cancel) }), b)
				func() {
					defer func() { _ = recover() }()
					probe.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx))
				}()
				assert.Equal(t, breaker.HalfOpen, b.State(), "a request that proved nothing does not close the breaker")

				var handled bool
				next := leveehttp.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { handled = true }), b)
				rec := serve(next)
				assert.True(t, handled, "the probe slot is free: the next request is the probe")
				assert.Equal(t, http.StatusOK, rec.Code)
				assert.Equal(t, breaker.Closed, b.State())
			})
		})
	}
}
