package leveehttp_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/leveehttp"
	"github.com/levee-go/levee/ratelimit"
)

func newLimiter(name string, n int, per time.Duration, opts ...ratelimit.Option) *ratelimit.Limiter {
	return ratelimit.New(name, n, per, opts...)
}

// byClientHeader keys a limiter by the X-Client header.
var byClientHeader = ratelimit.WithKey(leveehttp.RequestKey(func(r *http.Request) string { return r.Header.Get("X-Client") }))

// Real sockets, hundreds of requests at once from many clients: every
// client gets exactly its burst (the hour's refill is 20 minutes away),
// whatever the others send, and the rest are told when its next token
// comes.
func TestRateLimitHandler_KeyedLimitAdmitsTheBurstPerKeyAndIsolatesKeysUnderLoad(t *testing.T) {
	const burst = 4
	g := &gauge{}
	l := newLimiter("api", 3, time.Hour, ratelimit.WithBurst(burst), byClientHeader)
	srv := httptest.NewServer(leveehttp.RateLimitHandler(g, l))
	t.Cleanup(srv.Close)

	// 20 clients sending 10 each, one noisy client sending 100, and 10
	// quiet ones sending exactly their burst: 340 requests at once.
	var clients []string
	for i := range 20 {
		for range 10 {
			clients = append(clients, fmt.Sprint("busy-", i))
		}
	}
	for range 100 {
		clients = append(clients, "noisy")
	}
	for i := range 10 {
		for range burst {
			clients = append(clients, fmt.Sprint("quiet-", i))
		}
	}
	answers := hammer(t, loadClient(t), len(clients), func(i int) *http.Request {
		req := newGet(t, context.Background(), srv.URL)
		req.Header.Set("X-Client", clients[i])
		return req
	})

	admitted := map[string]int{}
	for i, a := range answers {
		switch a.status {
		case http.StatusOK:
			admitted[clients[i]]++
		case http.StatusTooManyRequests:
			assert.Equal(t, "Too Many Requests\n", a.body)
			var seconds int
			_, err := fmt.Sscan(a.retryAfter, &seconds)
			require.NoError(t, err, "Retry-After %q", a.retryAfter)
			// The next token is 20 minutes after the burst was taken,
			// less the test's own time so far.
			assert.InDelta(t, 1200, seconds, 10, "Retry-After")
		default:
			t.Errorf("status %d", a.status)
		}
	}
	for _, client := range clients {
		assert.Equal(t, burst, admitted[client], "client %s", client)
	}
	assert.Len(t, admitted, 31)
	assert.Equal(t, int64(31*burst), g.calls.Load(), "only admitted requests reach the handler")
}

// In a bubble, served in memory: the Retry-After of a refused request is
// the time until its key's next token, rounded up to whole seconds, and a
// client that waits that long is served.
func TestRateLimitHandler_RetryAfterIsTheTimeUntilTheKeysNextToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		h := leveehttp.RateLimitHandler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { calls.Add(1) }),
			newLimiter("api", 3, 10*time.Second, byClientHeader)) // a token every 3.333…s
		from := func(client string) *httptest.ResponseRecorder {
			return serveFrom(h, "192.0.2.1:1234", http.Header{"X-Client": {client}})
		}
		for range 3 {
			require.Equal(t, http.StatusOK, from("a").Code)
		}
		for _, step := range []struct {
			advance    time.Duration
			retryAfter string
		}{
			{0, "4"},                      // 3.333 s to wait
			{3 * time.Second, "1"},        // 0.333 s
			{333 * time.Millisecond, "1"}, // 0.333… ms
		} {
			time.Sleep(step.advance)
			rec := from("a")
			assert.Equal(t, http.StatusTooManyRequests, rec.Code)
			assert.Equal(t, step.retryAfter, rec.Header().Get("Retry-After"), "after %v more", step.advance)
		}
		assert.Equal(t, http.StatusOK, from("b").Code, "another key has its own bucket")
		assert.Equal(t, int64(4), calls.Load(), "refused requests never reach the handler")

		time.Sleep(time.Millisecond)
		assert.Equal(t, http.StatusOK, from("a").Code, "served once the advised time has passed")
		rec := from("a")
		assert.Equal(t, http.StatusTooManyRequests, rec.Code)
		assert.Equal(t, "4", rec.Header().Get("Retry-After"), "a whole interval to the next token")
	})
}

// In a bubble: a client sending 20 requests a second to a limit of 10 per
// 5 s (burst 10) is never let through more than burst + n in any 5 s, and
// gets all the limit gives.
func TestRateLimitHandler_NeverAdmitsMoreThanBurstPlusNInAnyPeriod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n, burst, per = 10, 10, 5 * time.Second
		admittedAt := map[string][]time.Duration{}
		start := time.Now()
		h := leveehttp.RateLimitHandler(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			client := r.Header.Get("X-Client")
			admittedAt[client] = append(admittedAt[client], time.Since(start))
		}), newLimiter("api", n, per, byClientHeader))
		for range 1200 { // 60 s, two clients as greedy
			for _, client := range []string{"greedy", "other"} {
				rec := serveFrom(h, "192.0.2.1:1234", http.Header{"X-Client": {client}})
				if rec.Code != http.StatusOK {
					require.Equal(t, http.StatusTooManyRequests, rec.Code)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		require.Len(t, admittedAt, 2)
		for client, times := range admittedAt {
			most := 0
			for i, at := range times {
				inPeriod := 0
				for _, later := range times[i:] {
					if later-at < per {
						inPeriod++
					}
				}
				most = max(most, inPeriod)
			}
			assert.LessOrEqual(t, most, burst+n, "%s: at most burst + n in any period", client)
			assert.GreaterOrEqual(t, most, burst+n-1, "%s: and all the limit gives", client)
			// Over 60 s: the burst, then one every 0.5 s.
			assert.InDelta(t, burst+120, len(times), 1, client)
		}
	})
}

// In a bubble: with ratelimit.WithMaxWait a request whose token comes soon
// waits for it, and is served.
func TestRateLimitHandler_RequestWaitsForAToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := leveehttp.RateLimitHandler(http.NotFoundHandler(),
			newLimiter("api", 1, 500*time.Millisecond, ratelimit.WithMaxWait(time.Second)))
		require.Equal(t, http.StatusNotFound, serve(h).Code)
		start := time.Now()
		assert.Equal(t, http.StatusNotFound, serve(h).Code, "served, after waiting")
		assert.Equal(t, 500*time.Millisecond, time.Since(start))
	})
}

func TestRateLimitHandler_HugeRetryAfterIsWholeSeconds(t *testing.T) {
	h := leveehttp.RateLimitHandler(http.NotFoundHandler(), newLimiter("api", 1, 100_000*time.Hour))
	serve(h)
	rec := serve(h)
	assert.Equal(t, http.StatusTooManyRequests, rec.Code)
	var seconds int64
	_, err := fmt.Sscan(rec.Header().Get("Retry-After"), &seconds)
	require.NoError(t, err)
	assert.InDelta(t, 360_000_000, seconds, 1)
}

func TestRateLimitHandler_RejectionStatusCanBe503ForALimitSharedByAll(t *testing.T) {
	h := leveehttp.RateLimitHandler(http.NotFoundHandler(), newLimiter("api", 1, time.Minute),
		leveehttp.WithRejectionStatus(http.StatusServiceUnavailable))
	serve(h)
	rec := serve(h)
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Equal(t, "Service Unavailable\n", rec.Body.String())
	assert.Equal(t, "60", rec.Header().Get("Retry-After"))
}

type tenantKey struct{}

// A limiter keyed by a function of the context (set by a middleware
// before) sees the request's context.
func TestRateLimitHandler_ContextKeyedLimiterSeesTheRequestsContext(t *testing.T) {
	l := newLimiter("api", 1, time.Hour, ratelimit.WithKey(func(ctx context.Context) string {
		tenant, _ := ctx.Value(tenantKey{}).(string)
		return tenant
	}))
	h := leveehttp.RateLimitHandler(http.NotFoundHandler(), l)
	withTenant := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tenantKey{}, r.Header.Get("X-Tenant"))))
	})
	var codes []int
	for _, tenant := range []string{"acme", "acme", "globex", "globex", "acme"} {
		codes = append(codes, serveFrom(withTenant, "192.0.2.1:1", http.Header{"X-Tenant": {tenant}}).Code)
	}
	assert.Equal(t, []int{404, 429, 404, 429, 429}, codes)
	assert.Equal(t, 2, l.Keys())
}

func TestRequestKey_SeesTheRequestOnlyThroughRateLimitHandler(t *testing.T) {
	var seen []string
	key := leveehttp.RequestKey(func(r *http.Request) string {
		seen = append(seen, r.URL.Path)
		return r.URL.Path
	})
	assert.Equal(t, "", key(context.Background()), "no request: the empty key")
	assert.Empty(t, seen, "key is not called without a request")

	l := newLimiter("api", 1, time.Hour, ratelimit.WithKey(key))
	h := leveehttp.RateLimitHandler(http.NotFoundHandler(), l)
	for _, path := range []string{"/a", "/b", "/a"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, path, nil))
	}
	assert.Equal(t, []string{"/a", "/b", "/a"}, seen)
	assert.Equal(t, 2, l.Keys())
}

func ExampleRateLimitHandler() {
	perClient := ratelimit.New("api-per-client", 2, time.Minute,
		ratelimit.WithKey(leveehttp.RequestKey(leveehttp.ClientIP)))
	h := leveehttp.RateLimitHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello")
	}), perClient)

	for _, client := range []string{"192.0.2.1:50000", "192.0.2.1:50001", "192.0.2.1:50002", "198.51.100.7:40000"} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.RemoteAddr = client
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		fmt.Printf("%s: %d Retry-After: %q\n", client, rec.Code, rec.Header().Get("Retry-After"))
	}
	// Output:
	// 192.0.2.1:50000: 200 Retry-After: ""
	// 192.0.2.1:50001: 200 Retry-After: ""
	// 192.0.2.1:50002: 429 Retry-After: "30"
	// 198.51.100.7:40000: 200 Retry-After: ""
}
