package leveehttp_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/bulkhead"
	"github.com/levee-go/levee/leveehttp"
	"github.com/levee-go/levee/ratelimit"
	"github.com/levee-go/levee/throttle"
)

// discard is a ResponseWriter that keeps nothing, so that a benchmark
// measures the handlers and not a recorder.
type discard struct{ header http.Header }

func (d *discard) Header() http.Header         { return d.header }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(int)             {}

var okBody = []byte("ok")

// BenchmarkServerMiddleware is the cost of an admitted request through
// each load-shedding handler, beside the bare handler it guards: go test
// -run='^$' -bench=ServerMiddleware -benchmem ./leveehttp
func BenchmarkServerMiddleware(b *testing.B) {
	bare := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(okBody) })
	plenty := func() *ratelimit.Limiter { return ratelimit.New("bench", 1<<30, time.Second) } // never out of tokens
	handlers := []struct {
		name string
		h    http.Handler
	}{
		{"bare", bare},
		{"Handler(breaker)", leveehttp.Handler(bare, breaker.New("bench"))},
		{"BulkheadHandler", leveehttp.BulkheadHandler(bare, bulkhead.New("bench", 1000))},
		{"RateLimitHandler", leveehttp.RateLimitHandler(bare, plenty())},
		{"RateLimitHandler(ClientIP)", leveehttp.RateLimitHandler(bare, ratelimit.New("bench", 1<<30, time.Second,
			ratelimit.WithKey(leveehttp.RequestKey(leveehttp.ClientIP))))},
		{"ThrottleHandler", leveehttp.ThrottleHandler(bare, throttle.New("bench"))},
	}
	for _, tc := range handlers {
		b.Run(tc.name, func(b *testing.B) {
			w := &discard{header: http.Header{}}
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			b.ReportAllocs()
			for b.Loop() {
				tc.h.ServeHTTP(w, r)
			}
		})
	}
}
