package leveegrpc_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/levee-go/levee/bulkhead"
	"github.com/levee-go/levee/ratelimit"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/throttle"
)

// The limits' real rejections, through the interceptors and a real gRPC
// server on loopback: a server answers RESOURCE_EXHAUSTED for a rate limit
// and a full bulkhead, UNAVAILABLE for a throttle; a client returns
// UNAVAILABLE for each, matching the policy's sentinel error.

// holdSay makes the server's Say wait for the returned release, and
// returns once a call is held in the handler.
func holdSay(t *testing.T, srv *testServer, conn *grpc.ClientConn) (release func()) {
	t.Helper()
	held := make(chan struct{})
	released := make(chan struct{})
	srv.setSay(func(ctx context.Context, in *wire) (*wire, error) {
		select {
		case held <- struct{}{}:
		default:
		}
		select {
		case <-released:
		case <-ctx.Done():
		}
		return &wire{Text: in.Text}, nil
	})
	done := make(chan error, 1)
	go func() {
		_, err := say(boundedCtx(t), conn, "held")
		done <- err
	}()
	select {
	case <-held:
	case <-time.After(5 * time.Second):
		require.FailNow(t, "the first call did not reach the handler within 5 s")
	}
	return func() {
		close(released)
		select {
		case err := <-done:
			assert.NoError(t, err, "the held call ends well once released")
		case <-time.After(5 * time.Second):
			assert.Fail(t, "the held call did not return within 5 s of its release")
		}
	}
}

// rejectedStream opens a Chat stream and returns it with the error its
// first receive gets.
func rejectedStream(t *testing.T, conn *grpc.ClientConn) (grpc.ClientStream, error) {
	t.Helper()
	stream, err := chat(boundedCtx(t), conn)
	require.NoError(t, err)
	return stream, stream.RecvMsg(new(wire))
}

func TestServer_ARateLimitsRejectionIsResourceExhaustedWithItsPushback(t *testing.T) {
	quota := ratelimit.New("say-quota", 1, time.Hour)
	srv := guardedServer(t, []resilience.Policy[any]{ratelimit.Policy[any](quota)})
	conn := dial(t, srv.addr)
	_, err := say(boundedCtx(t), conn, "first")
	require.NoError(t, err, "the one token of the hour")

	var trailer metadata.MD
	_, err = say(boundedCtx(t), conn, "second", grpc.Trailer(&trailer))
	s := status.Convert(err)
	assert.Equal(t, codes.ResourceExhausted, s.Code(), "unary: %v", err)
	assert.Equal(t, "levee: rejected: rate_limited", s.Message())
	assert.InDelta(t, time.Hour.Milliseconds(), pushbackOf(t, trailer), float64(time.Minute.Milliseconds()),
		"the pushback is the wait for the next token")
	require.Len(t, s.Details(), 1)
	assert.InDelta(t, time.Hour, s.Details()[0].(*errdetails.RetryInfo).GetRetryDelay().AsDuration(), float64(time.Minute))

	stream, err := rejectedStream(t, conn)
	assert.Equal(t, codes.ResourceExhausted, status.Code(err), "stream: %v", err)
	assert.InDelta(t, time.Hour.Milliseconds(), pushbackOf(t, stream.Trailer()), float64(time.Minute.Milliseconds()))
	assert.Equal(t, int64(1), srv.says.Load(), "only the first call ran its handler")
	assert.Zero(t, srv.chats.Load())
}

func TestServer_AFullBulkheadIsResourceExhausted(t *testing.T) {
	slots := bulkhead.New("handlers", 1)
	srv := guardedServer(t, []resilience.Policy[any]{bulkhead.Policy[any](slots)})
	conn := dial(t, srv.addr)
	release := holdSay(t, srv, conn)
	defer release()

	var trailer metadata.MD
	_, err := say(boundedCtx(t), conn, "second", grpc.Trailer(&trailer))
	s := status.Convert(err)
	assert.Equal(t, codes.ResourceExhausted, s.Code(), "unary: %v", err)
	assert.Equal(t, "levee: rejected: bulkhead_full", s.Message())
	assert.Equal(t, int64(-1), pushbackOf(t, trailer), "a bulkhead does not know when a slot frees")

	_, err = rejectedStream(t, conn)
	assert.Equal(t, codes.ResourceExhausted, status.Code(err), "stream: %v", err)
	assert.Equal(t, int64(1), srv.says.Load(), "only the held call ran its handler")
	assert.Zero(t, srv.chats.Load())
}

func TestServer_AThrottlesRejectionIsUnavailable(t *testing.T) {
	shedder := throttle.New("db", throttle.WithSeed(7))
	srv := guardedServer(t, []resilience.Policy[any]{throttle.Policy[any](shedder)})
	srv.setSay(func(context.Context, *wire) (*wire, error) {
		return nil, status.Error(codes.Unavailable, "the database is overloaded")
	})
	srv.setChat(func(grpc.ServerStream) error { return status.Error(codes.Unavailable, "the database is overloaded") })
	conn := dial(t, srv.addr)

	rejected := func(call func() error, ran func() int64) bool {
		before := ran()
		err := call()
		s := status.Convert(err)
		require.Equal(t, codes.Unavailable, s.Code(), "the handler's answer or the throttle's: %v", err)
		if s.Message() != "levee: rejected: throttled" {
			require.Equal(t, "the database is overloaded", s.Message())
			return false
		}
		assert.Equal(t, before, ran(), "a throttled call runs no handler")
		return true
	}
	unary := func() error { _, err := say(boundedCtx(t), conn, "q"); return err }
	streamed := func() error { _, err := rejectedStream(t, conn); return err }
	for name, call := range map[string]func() error{"unary": unary, "stream": streamed} {
		ran := srv.says.Load
		if name == "stream" {
			ran = srv.chats.Load
		}
		throttled := false
		for range 100 {
			if throttled = rejected(call, ran); throttled {
				break
			}
		}
		assert.True(t, throttled, "%s: the throttle refused none of 100 calls the handler failed", name)
	}
}

func TestClient_TheLimitsRejectionsAreUnavailableAndMatchTheirSentinels(t *testing.T) {
	t.Run("a rate limit", func(t *testing.T) {
		srv := startServer(t)
		conn, spy := guardedConn(t, srv, []resilience.Policy[any]{ratelimit.Policy[any](ratelimit.New("out", 1, time.Hour))})
		_, err := say(boundedCtx(t), conn, "first")
		require.NoError(t, err)

		_, err = say(boundedCtx(t), conn, "second")
		require.ErrorIs(t, err, ratelimit.ErrLimited)
		var limited *ratelimit.LimitedError
		require.ErrorAs(t, err, &limited)
		s := status.Convert(err)
		assert.Equal(t, codes.Unavailable, s.Code())
		assert.Equal(t, limited.Error(), s.Message(), "a client's status says which policy refused")
		require.Len(t, s.Details(), 1)
		assert.InDelta(t, time.Hour, s.Details()[0].(*errdetails.RetryInfo).GetRetryDelay().AsDuration(), float64(time.Minute))
		assert.Equal(t, int64(1), spy.unary.Load(), "the refused call never reached gRPC")
	})
	t.Run("a full bulkhead", func(t *testing.T) {
		srv := startServer(t)
		conn, spy := guardedConn(t, srv, []resilience.Policy[any]{bulkhead.Policy[any](bulkhead.New("out", 1))})
		release := holdSay(t, srv, conn)
		defer release()

		_, err := say(boundedCtx(t), conn, "second")
		require.ErrorIs(t, err, bulkhead.ErrFull)
		assert.Equal(t, codes.Unavailable, status.Code(err))
		assert.Empty(t, status.Convert(err).Details(), "no RetryInfo: a bulkhead does not know when a slot frees")
		assert.Equal(t, int64(1), spy.unary.Load(), "only the held call reached gRPC")
	})
	t.Run("a throttle", func(t *testing.T) {
		srv := startServer(t)
		srv.setSay(func(context.Context, *wire) (*wire, error) {
			return nil, status.Error(codes.Unavailable, "overloaded")
		})
		conn, spy := guardedConn(t, srv, []resilience.Policy[any]{throttle.Policy[any](throttle.New("out", throttle.WithSeed(7)))})
		for range 100 {
			before := spy.unary.Load()
			_, err := say(boundedCtx(t), conn, "q")
			require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
			if errors.Is(err, throttle.ErrThrottled) {
				assert.Equal(t, before, spy.unary.Load(), "a throttled call never reaches gRPC")
				return
			}
		}
		assert.Fail(t, "the throttle refused none of 100 calls the server failed")
	})
}
