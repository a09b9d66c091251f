package leveehttp_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/bulkhead"
	"github.com/levee-go/levee/internal/testkit"
	"github.com/levee-go/levee/leveehttp"
	"github.com/levee-go/levee/ratelimit"
	"github.com/levee-go/levee/telemetry"
	"github.com/levee-go/levee/telemetry/telemetrytest"
	"github.com/levee-go/levee/throttle"
)

// A rejection is reported by the policy itself, as a rejected call and an
// event on the request's span (which a tracing middleware outside put in
// its context): the middleware passes the request's context on.
func TestLimitHandlers_RejectionsAreReportedOnTheRequestsSpan(t *testing.T) {
	h := telemetrytest.New(t)
	l := ratelimit.New("api", 1, time.Hour, ratelimit.WithKey(leveehttp.RequestKey(leveehttp.ClientIP)),
		ratelimit.WithMeterProvider(h.MeterProvider), ratelimit.WithTracerProvider(h.TracerProvider))
	limited := leveehttp.RateLimitHandler(http.NotFoundHandler(), l)

	for range 2 {
		ctx, span := h.StartSpan(context.Background(), "GET /")
		rec := httptest.NewRecorder()
		limited.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx))
		span.End()
	}

	h.AssertInt64(telemetry.MetricRateLimitCalls, 1, telemetry.KeyPolicyName.String("api"), telemetry.KeyOutcome.String(telemetry.OutcomeRejected))
	h.AssertInt64(telemetry.MetricRateLimitCalls, 1, telemetry.KeyPolicyName.String("api"), telemetry.KeyOutcome.String(telemetry.OutcomeAdmitted))
	spans := h.Spans("GET /")
	require.Len(t, spans, 2)
	assert.Empty(t, telemetrytest.EventsOn(spans[0], telemetry.EventRateLimitRejected), "the admitted request")
	assert.Len(t, telemetrytest.EventsOn(spans[1], telemetry.EventRateLimitRejected), 1, "the rejected request's own span")
}

// problem is an RFC 9457 problem, as a JSON API answers a rejection.
type problem struct {
	Status int    `json:"status"`
	Title  string `json:"title"`
	Kind   string `json:"kind"`
}

func writeProblem(w http.ResponseWriter, _ *http.Request, status int, err error) {
	kind := "canceled"
	switch {
	case errors.Is(err, bulkhead.ErrFull):
		kind = "full"
	case errors.Is(err, ratelimit.ErrLimited):
		kind = "limited"
	case errors.Is(err, throttle.ErrThrottled):
		kind = "throttled"
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(problem{Status: status, Title: http.StatusText(status), Kind: kind})
}

func TestLimitHandlers_WithRejectionWritesTheAnswer(t *testing.T) {
	failing := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	full := bulkhead.New("api", 1)
	held := make(chan struct{})
	defer close(held)
	require.NoError(t, startHolding(full, held))
	cases := []struct {
		name       string
		handler    http.Handler
		warmUp     int // requests before the one refused
		want       problem
		retryAfter string
	}{
		{"bulkhead", leveehttp.BulkheadHandler(failing, full, leveehttp.WithRejection(writeProblem)), 0,
			problem{503, "Service Unavailable", "full"}, "1"},
		{"rate limit", leveehttp.RateLimitHandler(failing, ratelimit.New("api", 1, time.Minute), leveehttp.WithRejection(writeProblem)), 1,
			problem{429, "Too Many Requests", "limited"}, "60"},
		{"throttle, another status", leveehttp.ThrottleHandler(failing, newThrottle("api"),
			leveehttp.WithRejection(writeProblem), leveehttp.WithRejectionStatus(http.StatusTooManyRequests), leveehttp.WithRetryAfter(0)), 1,
			problem{429, "Too Many Requests", "throttled"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for range tc.warmUp {
				require.Equal(t, http.StatusInternalServerError, serve(tc.handler).Code)
			}
			rec := serve(tc.handler)
			for i := 0; rec.Code == http.StatusInternalServerError && i < 100; i++ { // the throttle's draw let it through
				rec = serve(tc.handler)
			}
			assert.Equal(t, tc.want.Status, rec.Code)
			assert.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
			assert.Equal(t, tc.retryAfter, rec.Header().Get("Retry-After"))
			var got problem
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
			assert.Equal(t, tc.want, got)
		})
	}
	t.Run("a request whose context ended", func(t *testing.T) {
		var got error
		h := leveehttp.RateLimitHandler(failing, ratelimit.New("api", 1, time.Minute),
			leveehttp.WithRejection(func(w http.ResponseWriter, r *http.Request, status int, err error) {
				got = err
				writeProblem(w, r, status, err)
			}))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx))
		assert.ErrorIs(t, got, context.Canceled)
		assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
		assert.Empty(t, rec.Header().Get("Retry-After"))
	})
	assert.Contains(t, testkit.PanicMessage(t, func() { leveehttp.BulkheadHandler(failing, full, leveehttp.WithRejection(nil)) }),
		"levee: leveehttp.BulkheadHandler: WithRejection: reject must not be nil")
}

// The order docs/limits.md advises: a client over its limit is refused by
// the rate limit and never takes one of the bulkhead's slots.
func TestLimitHandlers_ClientOverItsLimitTakesNoSlot(t *testing.T) {
	slots := bulkhead.New("api", 1)
	perClient := ratelimit.New("api-per-client", 1, time.Hour, ratelimit.WithKey(leveehttp.RequestKey(leveehttp.ClientIP)))
	release := make(chan struct{})
	var releaseOnce sync.Once
	defer releaseOnce.Do(func() { close(release) })
	h := leveehttp.RateLimitHandler(leveehttp.BulkheadHandler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		<-release
	}), slots), perClient)

	first := make(chan int)
	go func() { first <- serveFrom(h, "192.0.2.1:1000", nil).Code }()
	eventually(t, func() bool { return slots.InFlight() == 1 }, "the first client's request holds the slot")
	assert.Equal(t, http.StatusTooManyRequests, serveFrom(h, "192.0.2.1:1001", nil).Code, "over its limit")
	assert.Equal(t, http.StatusServiceUnavailable, serveFrom(h, "198.51.100.7:1000", nil).Code, "another client finds the slot taken")
	releaseOnce.Do(func() { close(release) })
	assert.Equal(t, http.StatusOK, <-first)
}
