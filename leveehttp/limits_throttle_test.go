package leveehttp_test

import (
	"context"
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

	"github.com/levee-go/levee/leveehttp"
	"github.com/levee-go/levee/throttle"
)

func newThrottle(name string, opts ...throttle.Option) *throttle.Throttle {
	return throttle.New(name, append([]throttle.Option{throttle.WithSeed(1)}, opts...)...)
}

// failing is a handler that answers 503 "down" while down is set, and 200
// "up" otherwise, counting its calls.
type failing struct {
	calls atomic.Int64
	down  atomic.Bool
}

func (f *failing) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	f.calls.Add(1)
	if f.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	_, _ = io.WriteString(w, "up")
}

// In a bubble, served in memory: while the handler fails, the throttle
// answers a growing share of requests itself, without calling it; once the
// handler has recovered and the window has passed, every request is
// served again.
func TestThrottleHandler_ShedsWhileTheHandlerFailsAndStopsWhenItRecovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := newThrottle("api")
		f := &failing{}
		f.down.Store(true)
		h := leveehttp.ThrottleHandler(f, th)

		shed := 0
		for range 200 {
			rec := serve(h)
			require.Equal(t, http.StatusServiceUnavailable, rec.Code)
			if rec.Body.String() == "down\n" {
				assert.Empty(t, rec.Header().Get("Retry-After"), "the handler's own answer, untouched")
				continue
			}
			shed++
			assert.Equal(t, "Service Unavailable\n", rec.Body.String())
			assert.Equal(t, "1", rec.Header().Get("Retry-After"))
		}
		t.Logf("shed %d of 200, the handler called %d times", shed, f.calls.Load())
		assert.Equal(t, int64(200-shed), f.calls.Load(), "a shed request never reaches the handler")
		assert.Greater(t, shed, 150, "nearly every request shed: the handler accepts none")
		assert.Greater(t, th.Probability(), 0.9)

		f.down.Store(false)
		time.Sleep(throttle.DefaultWindow)
		synctest.Wait()
		assert.Zero(t, th.Probability(), "the window has forgotten the failures")
		for range 50 {
			assert.Equal(t, "up", serve(h).Body.String())
		}
	})
}

// Real sockets, hundreds of requests at once against a failing handler:
// the throttle sheds, answers every shed request with 503 and a
// Retry-After, and the handler sees only the requests it let through.
func TestThrottleHandler_ShedsUnderConcurrentLoadWithoutCallingTheHandler(t *testing.T) {
	f := &failing{}
	f.down.Store(true)
	srv := httptest.NewServer(leveehttp.ThrottleHandler(f, newThrottle("api")))
	t.Cleanup(srv.Close)
	client := loadClient(t)

	var failed, shed int
	for range 3 {
		for _, a := range hammer(t, client, 100, func(int) *http.Request { return newGet(t, context.Background(), srv.URL) }) {
			require.Equal(t, http.StatusServiceUnavailable, a.status)
			if a.body == "down\n" {
				failed++
				continue
			}
			shed++
			assert.Equal(t, loadAnswer{status: 503, retryAfter: "1", body: "Service Unavailable\n"}, a)
		}
	}
	t.Logf("shed %d of 300", shed)
	assert.Equal(t, int64(failed), f.calls.Load(), "a shed request never reaches the handler")
	assert.Greater(t, shed, 100, "the throttle sheds once the handler has failed")
}

func TestThrottleHandler_WhatCountsAsServed(t *testing.T) {
	writeStatus := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(status) }
	}
	cases := []struct {
		name    string
		handler http.Handler
		opts    []leveehttp.HandlerOption
		served  bool
	}{
		{"200", writeStatus(200), nil, true},
		{"writes nothing", http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), nil, true},
		{"writes a body", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }), nil, true},
		{"404", http.NotFoundHandler(), nil, true},
		{"499", writeStatus(499), nil, true},
		{"429", writeStatus(429), nil, false},
		{"500", writeStatus(500), nil, false},
		{"503", writeStatus(503), nil, false},
		{"103 then 500", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(103); w.WriteHeader(500) }), nil, false},
		{"503 counted as served", writeStatus(503), []leveehttp.HandlerOption{leveehttp.WithServed(func(status int) bool { return status != 500 })}, true},
		{"404 counted as not served", http.NotFoundHandler(), []leveehttp.HandlerOption{leveehttp.WithServed(func(status int) bool { return status < 400 })}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			th := newThrottle("api")
			h := leveehttp.ThrottleHandler(tc.handler, th, tc.opts...)
			for range 20 {
				serve(h)
			}
			if tc.served {
				assert.Zero(t, th.Probability(), "served requests: nothing to shed")
			} else {
				assert.Greater(t, th.Probability(), 0.9, "requests not served: the throttle sheds")
			}
		})
	}
}

func TestDefaultServed(t *testing.T) {
	for status, served := range map[int]bool{200: true, 204: true, 301: true, 400: true, 404: true, 428: true, 429: false, 430: true, 499: true, 500: false, 503: false, 599: false} {
		assert.Equal(t, served, leveehttp.DefaultServed(status), "status %d", status)
	}
}

// A request whose client went away says nothing about the handler, even
// when the handler served it: it must not count as served, or a handler
// failing every client that waits would look healthy.
func TestThrottleHandler_ClientGoneAwayCountsNeither(t *testing.T) {
	th := newThrottle("api")
	var status atomic.Int64
	h := leveehttp.ThrottleHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cancel, ok := r.Context().Value(cancelKey{}).(context.CancelFunc); ok {
			cancel()
		}
		w.WriteHeader(int(status.Load()))
	}), th)
	serveGone := func() {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		ctx = context.WithValue(ctx, cancelKey{}, cancel)
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx))
	}

	status.Store(http.StatusOK)
	for range 100 {
		serveGone()
	}
	status.Store(http.StatusInternalServerError)
	for range 100 {
		serveGone()
	}
	assert.Zero(t, th.Probability(), "gone clients count neither as served nor as failed")

	shed := 0
	for range 20 {
		if serve(h).Body.String() == "Service Unavailable\n" {
			shed++
		}
	}
	assert.Positive(t, shed, "twenty failures and no accepts: the throttle sheds")
}

type cancelKey struct{}

func TestThrottleHandler_PanicsCountAsNotServedAndPropagate(t *testing.T) {
	serveRecovering := func(h http.Handler, ctx context.Context) (panicked any) {
		defer func() { panicked = recover() }()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx))
		return nil
	}
	for _, value := range []any{"boom", http.ErrAbortHandler} {
		t.Run(fmt.Sprint(value), func(t *testing.T) {
			th := newThrottle("api")
			var calls int
			h := leveehttp.ThrottleHandler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
				calls++
				panic(value)
			}), th)
			panics := 0
			for range 20 {
				if v := serveRecovering(h, context.Background()); v != nil {
					assert.Equal(t, value, v, "the panic reaches net/http unchanged")
					panics++
				}
			}
			assert.Equal(t, calls, panics)
			assert.Greater(t, th.Probability(), 0.9, "a panic is a request not served")
		})
	}
	t.Run("ErrAbortHandler for a client that went away", func(t *testing.T) {
		th := newThrottle("api")
		h := leveehttp.ThrottleHandler(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			r.Context().Value(cancelKey{}).(context.CancelFunc)()
			panic(http.ErrAbortHandler)
		}), th)
		for range 20 {
			ctx, cancel := context.WithCancel(context.Background())
			assert.Equal(t, http.ErrAbortHandler, serveRecovering(h, context.WithValue(ctx, cancelKey{}, cancel)))
			cancel()
		}
		assert.Zero(t, th.Probability(), "neither served nor failed")
	})
}

func TestThrottleHandler_WriterKeepsFlushAndUnwrap(t *testing.T) {
	var unwrapped http.ResponseWriter
	h := leveehttp.ThrottleHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "chunk")
		require.NoError(t, http.NewResponseController(w).Flush())
		unwrapped = w.(interface{ Unwrap() http.ResponseWriter }).Unwrap()
	}), newThrottle("api"))
	rec := serve(h)
	assert.True(t, rec.Flushed)
	assert.Same(t, rec, unwrapped)
	assert.Equal(t, "chunk", rec.Body.String())
}
