package leveehttp_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/bulkhead"
	"github.com/levee-go/levee/internal/testkit"
	"github.com/levee-go/levee/leveehttp"
)

// Real sockets, hundreds of clients at once: the handler never holds more
// than the bulkhead's slots, and every request either reaches it or gets a
// 503 with a Retry-After.
func TestBulkheadHandler_NeverLetsMoreThanNIntoTheHandlerUnderLoad(t *testing.T) {
	const slots, clients, rounds = 8, 300, 3
	g := &gauge{hold: func(*http.Request) {
		for range 50 {
			runtime.Gosched() // stay a while, without sleeping
		}
	}}
	b := bulkhead.New("api", slots)
	srv := httptest.NewServer(leveehttp.BulkheadHandler(g, b))
	t.Cleanup(srv.Close)
	client := loadClient(t)

	var served, rejected int
	for range rounds {
		for _, a := range hammer(t, client, clients, func(int) *http.Request { return newGet(t, context.Background(), srv.URL) }) {
			switch a.status {
			case http.StatusOK:
				served++
				assert.Equal(t, "served", a.body)
			case http.StatusServiceUnavailable:
				rejected++
				assert.Equal(t, "1", a.retryAfter)
				assert.Equal(t, "Service Unavailable\n", a.body)
			default:
				t.Errorf("status %d", a.status)
			}
		}
	}
	t.Logf("served %d, rejected %d, at most %d in the handler", served, rejected, g.maxInFlight.Load())
	assert.LessOrEqual(t, g.maxInFlight.Load(), int64(slots), "more requests in the handler than the bulkhead has slots")
	assert.Equal(t, int64(served), g.calls.Load(), "a rejected request reached the handler")
	assert.Equal(t, clients*rounds, served+rejected)
	assert.Positive(t, served)
	assert.Zero(t, b.InFlight(), "every slot given back")
}

// With every slot held, a burst of requests is refused at once, every one
// of them, and none reaches the handler.
func TestBulkheadHandler_FullBulkheadAnswers503WithoutCallingTheHandler(t *testing.T) {
	const slots, burst = 5, 200
	release := make(chan struct{})
	g := &gauge{hold: func(*http.Request) { <-release }}
	b := bulkhead.New("api", slots)
	srv := httptest.NewServer(leveehttp.BulkheadHandler(g, b))
	t.Cleanup(srv.Close)
	client := loadClient(t)

	var holders sync.WaitGroup
	holderStatus := make(chan int, slots)
	for range slots {
		holders.Go(func() {
			resp, err := client.Do(newGet(t, context.Background(), srv.URL))
			if err != nil {
				holderStatus <- 0
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			holderStatus <- resp.StatusCode
		})
	}
	eventually(t, func() bool { return g.inFlight.Load() == slots }, "the first requests take every slot")

	answers := hammer(t, client, burst, func(int) *http.Request { return newGet(t, context.Background(), srv.URL) })
	close(release)
	waitGroup(t, &holders, 20*time.Second, "the requests holding the slots")
	close(holderStatus)

	for _, a := range answers {
		assert.Equal(t, loadAnswer{status: 503, retryAfter: "1", body: "Service Unavailable\n"}, a)
	}
	for status := range holderStatus {
		assert.Equal(t, http.StatusOK, status)
	}
	assert.Equal(t, int64(slots), g.calls.Load(), "only the requests that held a slot reached the handler")
}

func TestBulkheadHandler_RejectionStatusAndRetryAfter(t *testing.T) {
	cases := []struct {
		name       string
		opts       []leveehttp.HandlerOption
		status     int
		retryAfter string
	}{
		{"default", nil, 503, "1"},
		{"90s", []leveehttp.HandlerOption{leveehttp.WithRetryAfter(90 * time.Second)}, 503, "90"},
		{"rounded up", []leveehttp.HandlerOption{leveehttp.WithRetryAfter(1500 * time.Millisecond)}, 503, "2"},
		{"under a second is 1", []leveehttp.HandlerOption{leveehttp.WithRetryAfter(time.Nanosecond)}, 503, "1"},
		{"none", []leveehttp.HandlerOption{leveehttp.WithRetryAfter(0)}, 503, ""},
		{"another status", []leveehttp.HandlerOption{leveehttp.WithRejectionStatus(http.StatusTooManyRequests)}, 429, "1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := bulkhead.New("api", 1)
			held := make(chan struct{})
			defer close(held)
			require.NoError(t, startHolding(b, held))
			var called bool
			h := leveehttp.BulkheadHandler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true }), b, tc.opts...)
			rec := serve(h)
			assert.Equal(t, tc.status, rec.Code)
			assert.Equal(t, tc.retryAfter, rec.Header().Get("Retry-After"))
			_, hasRetryAfter := rec.Header()["Retry-After"]
			assert.Equal(t, tc.retryAfter != "", hasRetryAfter)
			assert.Equal(t, http.StatusText(tc.status)+"\n", rec.Body.String())
			assert.Equal(t, "text/plain; charset=utf-8", rec.Header().Get("Content-Type"))
			assert.False(t, called, "a rejection must not call the handler")
		})
	}
}

// startHolding takes one of b's slots until held is closed.
func startHolding(b *bulkhead.Bulkhead, held chan struct{}) error {
	in := make(chan struct{})
	go func() {
		_ = b.Call(context.Background(), func(context.Context) error {
			close(in)
			<-held
			return nil
		})
	}()
	<-in
	return nil
}

// The response of an admitted request is the handler's, byte for byte: it
// gets the server's own ResponseWriter and request.
func TestLimitHandlers_AdmittedRequestReachesTheHandlerUntouched(t *testing.T) {
	for name, wrap := range map[string]func(http.Handler) http.Handler{
		"bulkhead": func(h http.Handler) http.Handler { return leveehttp.BulkheadHandler(h, bulkhead.New("api", 1)) },
		"rate limit": func(h http.Handler) http.Handler {
			return leveehttp.RateLimitHandler(h, newLimiter("api", 1, time.Hour))
		},
	} {
		t.Run(name, func(t *testing.T) {
			var gotW http.ResponseWriter
			var gotR *http.Request
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				gotW, gotR = w, r
				w.Header().Set("X-Answer", "42")
				w.WriteHeader(http.StatusTeapot)
				_, _ = io.WriteString(w, "short and stout")
			})
			req := httptest.NewRequest(http.MethodPost, "/brew", nil)
			rec := httptest.NewRecorder()
			wrap(h).ServeHTTP(rec, req)
			assert.Same(t, rec, gotW, "the server's own ResponseWriter")
			assert.Same(t, req, gotR, "the server's own request")

			bare := httptest.NewRecorder()
			h.ServeHTTP(bare, httptest.NewRequest(http.MethodPost, "/brew", nil))
			assert.Equal(t, bare.Code, rec.Code)
			assert.Equal(t, bare.Header(), rec.Header())
			assert.Equal(t, bare.Body.String(), rec.Body.String())
		})
	}
}

// Real sockets: clients that give up, while in the handler or queued for a
// slot, give their slots and places back, and the next request is served.
func TestBulkheadHandler_CancelledClientsFreeTheirSlots(t *testing.T) {
	const slots, queued = 3, 4
	g := &gauge{hold: func(r *http.Request) {
		if r.URL.Path == "/hold" {
			<-r.Context().Done() // until the client goes
		}
	}}
	b := bulkhead.New("api", slots, bulkhead.WithMaxWait(time.Hour))
	srv := httptest.NewServer(leveehttp.BulkheadHandler(g, b))
	t.Cleanup(srv.Close)
	client := loadClient(t)

	holding, cancelHolding := context.WithCancel(context.Background())
	defer cancelHolding()
	waiting, cancelWaiting := context.WithCancel(context.Background())
	defer cancelWaiting()
	var holders, waiters sync.WaitGroup
	giveUp := func(ctx context.Context) {
		resp, err := client.Do(newGet(t, ctx, srv.URL+"/hold"))
		if err == nil {
			resp.Body.Close()
			t.Errorf("a client that gave up got %d", resp.StatusCode)
		}
	}
	for range slots {
		holders.Go(func() { giveUp(holding) })
	}
	eventually(t, func() bool { return b.InFlight() == slots }, "three requests in the handler")
	for range queued {
		waiters.Go(func() { giveUp(waiting) })
	}
	eventually(t, func() bool { return b.Queued() == queued }, "four requests queued")

	cancelWaiting()
	waitGroup(t, &waiters, 20*time.Second, "the queued clients that gave up")
	eventually(t, func() bool { return b.Queued() == 0 }, "the queued requests leave the queue")
	assert.Equal(t, slots, b.InFlight())
	cancelHolding()
	waitGroup(t, &holders, 20*time.Second, "the clients in the handler that gave up")
	eventually(t, func() bool { return b.InFlight() == 0 }, "every slot given back")
	assert.Equal(t, int64(slots), g.calls.Load(), "queued requests whose clients went away never reach the handler")

	resp, err := client.Do(newGet(t, context.Background(), srv.URL))
	require.NoError(t, err)
	assert.Equal(t, "served", readAll(t, resp))
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

// In a bubble, served in memory: a queued request gets the slot the moment
// it is free, and one whose wait runs out is refused after exactly the
// bulkhead's maximum wait.
func TestBulkheadHandler_QueuedRequestWaitsAtMostTheMaximumWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := bulkhead.New("api", 1, bulkhead.WithMaxWait(100*time.Millisecond))
		release := make(chan struct{})
		h := leveehttp.BulkheadHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				<-release
			}
			_, _ = io.WriteString(w, r.URL.Path)
		}), b)
		slow := make(chan *httptest.ResponseRecorder)
		serveAt := func(path string) *httptest.ResponseRecorder {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
			return rec
		}
		go func() { slow <- serveAt("/slow") }()
		synctest.Wait()

		start := time.Now()
		rec := serveAt("/late")
		assert.Equal(t, 100*time.Millisecond, time.Since(start), "refused when its wait ran out")
		assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
		assert.Equal(t, "1", rec.Header().Get("Retry-After"))

		waiter := make(chan *httptest.ResponseRecorder)
		go func() { waiter <- serveAt("/waiter") }()
		time.Sleep(30 * time.Millisecond)
		close(release)
		assert.Equal(t, "/slow", (<-slow).Body.String())
		rec = <-waiter
		assert.Equal(t, http.StatusOK, rec.Code)
		assert.Equal(t, "/waiter", rec.Body.String())
		assert.Equal(t, 130*time.Millisecond, time.Since(start), "served as the slot was freed")
	})
}

func TestBulkheadHandler_PanicGivesTheSlotBackAndPropagates(t *testing.T) {
	for _, value := range []any{"boom", http.ErrAbortHandler} {
		b := bulkhead.New("api", 1)
		h := leveehttp.BulkheadHandler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(value) }), b)
		assert.PanicsWithValue(t, value, func() { serve(h) })
		assert.Zero(t, b.InFlight(), "the slot is given back")
		assert.Panics(t, func() { serve(h) }, "the next request takes the slot and reaches the handler")
	}
}

// A request that the policy refused because its own context had ended
// (the client went away, a deadline passed) is answered 503, without a
// Retry-After: nobody should be told to come back for that.
func TestLimitHandlers_RequestWhoseContextEndedIsAnswered503WithoutRetryAfter(t *testing.T) {
	handlers := map[string]func(http.Handler) http.Handler{
		"bulkhead": func(h http.Handler) http.Handler { return leveehttp.BulkheadHandler(h, bulkhead.New("api", 1)) },
		"rate limit": func(h http.Handler) http.Handler {
			return leveehttp.RateLimitHandler(h, newLimiter("api", 1, time.Hour))
		},
		"throttle": func(h http.Handler) http.Handler { return leveehttp.ThrottleHandler(h, newThrottle("api")) },
	}
	for name, wrap := range handlers {
		t.Run(name, func(t *testing.T) {
			var called bool
			h := wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true }))
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx))
			assert.False(t, called)
			assert.Equal(t, http.StatusServiceUnavailable, rec.Code, "never an empty 200")
			assert.Empty(t, rec.Header().Get("Retry-After"))
		})
	}
}

func TestLimitHandlers_PanicOnBadSettingsNamingThem(t *testing.T) {
	ok := http.NotFoundHandler()
	b := bulkhead.New("api", 1)
	l := newLimiter("api", 1, time.Second)
	th := newThrottle("api")
	cases := []struct {
		name string
		make func()
		msg  string
	}{
		{"nil handler", func() { leveehttp.BulkheadHandler(nil, b) }, "levee: leveehttp.BulkheadHandler: handler must not be nil"},
		{"nil bulkhead", func() { leveehttp.BulkheadHandler(ok, nil) }, "levee: leveehttp.BulkheadHandler: bulkhead must not be nil"},
		{"nil limiter", func() { leveehttp.RateLimitHandler(ok, nil) }, "levee: leveehttp.RateLimitHandler: limiter must not be nil"},
		{"nil throttle", func() { leveehttp.ThrottleHandler(ok, nil) }, "levee: leveehttp.ThrottleHandler: throttle must not be nil"},
		{"nil option", func() { leveehttp.ThrottleHandler(ok, th, nil) }, "levee: leveehttp.ThrottleHandler: option 0 is nil"},
		{"status 200", func() { leveehttp.BulkheadHandler(ok, b, leveehttp.WithRejectionStatus(200)) }, "WithRejectionStatus: must be a known 4xx or 5xx status, got 200"},
		{"status 599", func() { leveehttp.BulkheadHandler(ok, b, leveehttp.WithRejectionStatus(599)) }, "WithRejectionStatus: must be a known 4xx or 5xx status, got 599"},
		{"negative Retry-After", func() { leveehttp.ThrottleHandler(ok, th, leveehttp.WithRetryAfter(-time.Second)) }, "WithRetryAfter: must not be negative, got -1s"},
		{"Retry-After of a rate limit", func() { leveehttp.RateLimitHandler(ok, l, leveehttp.WithRetryAfter(time.Second)) }, "levee: leveehttp.RateLimitHandler: WithRetryAfter: a rate limit's Retry-After is the time until its next token"},
		{"served of a bulkhead", func() { leveehttp.BulkheadHandler(ok, b, leveehttp.WithServed(leveehttp.DefaultServed)) }, "levee: leveehttp.BulkheadHandler: WithServed: only ThrottleHandler counts what its handler served"},
		{"served of a rate limit", func() { leveehttp.RateLimitHandler(ok, l, leveehttp.WithServed(leveehttp.DefaultServed)) }, "levee: leveehttp.RateLimitHandler: WithServed: only ThrottleHandler"},
		{"nil served", func() { leveehttp.ThrottleHandler(ok, th, leveehttp.WithServed(nil)) }, "WithServed: served must not be nil"},
		{"all problems at once", func() { leveehttp.ThrottleHandler(nil, nil, leveehttp.WithServed(nil)) }, "levee: leveehttp.ThrottleHandler: handler must not be nil; throttle must not be nil; WithServed: served must not be nil"},
		{"nil request key", func() { leveehttp.RequestKey(nil) }, "levee: leveehttp.RequestKey: key must not be nil"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msg := testkit.PanicMessage(t, tc.make)
			assert.Contains(t, msg, tc.msg)
		})
	}
}
