package leveehttp_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/hedge"
	"github.com/levee-go/levee/leveehttp"
)

// wait fails the test unless ch is closed or sends within requestBound.
func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(requestBound):
		require.FailNow(t, "not within "+requestBound.String()+": "+what)
	}
}

// stuckThenStreaming is a server whose first request hangs until its
// client gives up (loserGone is then closed), and whose second sends its
// headers and the first part of its body at once, and the rest when the
// test closes rest. Every request's body is read and recorded first.
type stuckThenStreaming struct {
	*httptest.Server
	rest      chan struct{}
	loserGone chan struct{}

	mu     sync.Mutex
	n      int
	bodies []string
}

func newStuckThenStreaming(t *testing.T) *stuckThenStreaming {
	t.Helper()
	s := &stuckThenStreaming{rest: make(chan struct{}), loserGone: make(chan struct{})}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.n++
		n := s.n
		s.bodies = append(s.bodies, string(body))
		s.mu.Unlock()
		if n == 1 {
			<-r.Context().Done()
			close(s.loserGone)
			return
		}
		_, _ = io.WriteString(w, "first;")
		http.NewResponseController(w).Flush()
		select {
		case <-s.rest:
			_, _ = io.WriteString(w, "rest")
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *stuckThenStreaming) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.bodies...)
}

// The hedge cancels its attempts' context as soon as the call returns; the
// winner's body must outlive it, as it outlives a Timeout's.
func TestTransport_HedgeWinnersBodyStaysReadableAfterRoundTripReturns(t *testing.T) {
	srv := newStuckThenStreaming(t)
	counter := &closeCounter{next: baseTransport(t)}
	rt := leveehttp.NewTransport(counter, hedge.Policy[*http.Response](5*time.Millisecond))

	resp, err := get(t, rt, srv.URL)
	require.NoError(t, err)
	wait(t, srv.loserGone, "the losing attempt was not cancelled")
	close(srv.rest) // only now is the rest of the winner's body sent

	assert.Equal(t, "first;rest", readAll(t, resp))
	assert.Equal(t, int64(1), counter.bodies.Load(), "the loser, cancelled, got no response")
	assert.Equal(t, int64(1), counter.closes.Load())
}

func TestTransport_HedgeWithNoHedgeStartedKeepsTheBodyReadableAfterRoundTripReturns(t *testing.T) {
	srv, rest := streamingServer(t)
	rt := leveehttp.NewTransport(baseTransport(t), hedge.Policy[*http.Response](time.Minute))

	resp, err := get(t, rt, srv.URL)
	require.NoError(t, err)
	close(rest)

	assert.Equal(t, "first;rest", readAll(t, resp))
}

func TestTransport_HedgeSendsTheWholeBodyAgainThroughGetBody(t *testing.T) {
	srv := newStuckThenStreaming(t)
	close(srv.rest)
	rt := leveehttp.NewTransport(baseTransport(t), hedge.Policy[*http.Response](5*time.Millisecond))
	req := post(t, srv.URL, strings.NewReader(payload))

	resp, err := rt.RoundTrip(req)

	require.NoError(t, err)
	assert.Equal(t, "first;rest", readAll(t, resp))
	wait(t, srv.loserGone, "the losing attempt was not cancelled")
	got := srv.received()
	require.Len(t, got, 2)
	for i, body := range got {
		assert.True(t, body == payload, "request %d: the server got %d bytes of the %d sent", i+1, len(body), len(payload))
	}
}

// ignoringRoundTripper answers its n-th request, after delays[n], with a
// 200 whose body records its closes, whether or not the request's context
// has ended meanwhile: a response already on its way when the attempt is
// cancelled. It runs in a synctest bubble.
type ignoringRoundTripper struct {
	delays []time.Duration

	mu     sync.Mutex
	bodies []*spyBody
}

func (rt *ignoringRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	rt.mu.Lock()
	n := len(rt.bodies)
	body := &spyBody{r: strings.NewReader("attempt " + strconv(n+1))}
	rt.bodies = append(rt.bodies, body)
	rt.mu.Unlock()
	if req.Body != nil {
		req.Body.Close()
	}
	time.Sleep(rt.delays[n])
	return &http.Response{StatusCode: http.StatusOK, Body: body, Request: req}, nil
}

func (rt *ignoringRoundTripper) closes() []int64 {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var closes []int64
	for _, b := range rt.bodies {
		closes = append(closes, b.closes.Load())
	}
	return closes
}

func TestTransport_HedgeClosesTheLosersResponses(t *testing.T) {
	withRelease := hedge.WithRelease(func(r *http.Response) { r.Body.Close() })
	cases := []struct {
		name   string
		delays []time.Duration
		opts   []hedge.Option
		// the response the caller gets, when RoundTrip returns, and the
		// closes of each attempt's body then and once every attempt ended
		winner                     string
		returnedAt                 time.Duration
		closesAtReturn, closesLast []int64
	}{
		{
			name:   "a first attempt that answers after the hedge won",
			delays: []time.Duration{30 * time.Millisecond, 5 * time.Millisecond}, // the hedge starts at 10ms
			// RoundTrip cannot return before the first attempt does
			winner: "attempt 2", returnedAt: 30 * time.Millisecond,
			closesAtReturn: []int64{1, 0}, closesLast: []int64{1, 0},
		},
		{
			name:   "a hedge that answers after the first attempt won",
			delays: []time.Duration{15 * time.Millisecond, 30 * time.Millisecond},
			winner: "attempt 1", returnedAt: 15 * time.Millisecond,
			closesAtReturn: []int64{0, 0}, closesLast: []int64{0, 1},
		},
		{
			name:   "with WithRelease closing them too, each body is closed once",
			delays: []time.Duration{30 * time.Millisecond, 5 * time.Millisecond},
			opts:   []hedge.Option{withRelease},
			winner: "attempt 2", returnedAt: 30 * time.Millisecond,
			closesAtReturn: []int64{1, 0}, closesLast: []int64{1, 0},
		},
		{
			name:   "with WithRelease, a hedge that answers late",
			delays: []time.Duration{15 * time.Millisecond, 30 * time.Millisecond},
			opts:   []hedge.Option{withRelease},
			winner: "attempt 1", returnedAt: 15 * time.Millisecond,
			closesAtReturn: []int64{0, 0}, closesLast: []int64{0, 1},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				base := &ignoringRoundTripper{delays: tc.delays}
				rt := leveehttp.NewTransport(base, hedge.Policy[*http.Response](10*time.Millisecond, tc.opts...))
				start := time.Now()

				resp, err := get(t, rt, "http://api.example/")

				require.NoError(t, err)
				assert.Equal(t, tc.returnedAt, time.Since(start))
				assert.Equal(t, tc.closesAtReturn, base.closes(), "closes when RoundTrip returns")
				time.Sleep(time.Second)
				synctest.Wait()
				assert.Equal(t, tc.closesLast, base.closes(), "closes once every attempt has ended")
				assert.Equal(t, tc.winner, readAll(t, resp), "the winner's body is readable")
			})
		})
	}
}

func TestTransport_HedgeOfABodyWithoutGetBodyIsNotSent(t *testing.T) {
	t.Run("the first attempt answers", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			base := &ignoringRoundTripper{delays: []time.Duration{30 * time.Millisecond}}
			rt := leveehttp.NewTransport(base, hedge.Policy[*http.Response](10*time.Millisecond))
			req := post(t, "http://api.example/", io.NopCloser(strings.NewReader(payload)))

			resp, err := rt.RoundTrip(req)

			require.NoError(t, err)
			assert.Equal(t, "attempt 1", readAll(t, resp))
			assert.Len(t, base.closes(), 1, "the hedge sent nothing")
		})
	})
	t.Run("the first attempt fails", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			errReset := errors.New("connection reset")
			var sent atomic.Int64
			base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
				sent.Add(1)
				req.Body.Close()
				time.Sleep(30 * time.Millisecond)
				return nil, errReset
			})
			rt := leveehttp.NewTransport(base, hedge.Policy[*http.Response](10*time.Millisecond))
			req := post(t, "http://api.example/", io.NopCloser(strings.NewReader(payload)))

			resp, err := rt.RoundTrip(req)

			assert.Nil(t, resp)
			require.ErrorIs(t, err, errReset)
			require.ErrorIs(t, err, leveehttp.ErrBodyNotReplayable, "the hedge that could not be sent says why")
			var hedged *hedge.Error
			require.ErrorAs(t, err, &hedged)
			assert.Equal(t, 2, hedged.Attempts)
			assert.Equal(t, int64(1), sent.Load())
		})
	})
}

// On real sockets, many hedged calls whose attempts race: every response
// the next RoundTripper returned is closed exactly once, the winners' by
// their callers and every other by the Transport, whoever won.
func TestTransport_HedgedCallsLeaveNoResponseOpen(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Every other request answers after a few ms: about half the
		// calls hedge, and their attempts answer close together.
		if n.Add(1)%2 == 1 {
			select {
			case <-time.After(3 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	counter := &closeCounter{next: baseTransport(t)}
	rt := leveehttp.NewTransport(counter,
		hedge.Policy[*http.Response](2*time.Millisecond, hedge.WithMaxHedges(2)))

	for range 40 {
		resp, err := get(t, rt, srv.URL)
		require.NoError(t, err)
		require.Equal(t, "ok", readAll(t, resp))
	}

	assert.Eventually(t, func() bool { return counter.closes.Load() == counter.bodies.Load() }, requestBound, time.Millisecond,
		"some responses were never closed")
	assert.Equal(t, counter.bodies.Load(), counter.closes.Load(), "responses returned and closed")
	assert.GreaterOrEqual(t, counter.bodies.Load(), int64(40))
}

func TestTransport_CallerContextStillEndsTheBodyUnderAHedge(t *testing.T) {
	srv, _ := streamingServer(t)
	rt := leveehttp.NewTransport(baseTransport(t), hedge.Policy[*http.Response](time.Minute))
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
