package leveegrpc_test

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/fallback"
	"github.com/levee-go/levee/leveegrpc"
	"github.com/levee-go/levee/resilience"
)

// guardedServer is a test server whose unary and streaming handlers are
// guarded by guards.
func guardedServer(t *testing.T, guards []resilience.Policy[any], opts ...leveegrpc.Option) *testServer {
	t.Helper()
	return startServer(t,
		grpc.ChainUnaryInterceptor(leveegrpc.UnaryServerInterceptor(guards, opts...)),
		grpc.ChainStreamInterceptor(leveegrpc.StreamServerInterceptor(guards, opts...)))
}

// pushbackOf returns the grpc-retry-pushback-ms a trailer holds, in
// milliseconds, or -1 when it holds none.
func pushbackOf(t *testing.T, trailer metadata.MD) int64 {
	t.Helper()
	values := trailer.Get(leveegrpc.PushbackKey)
	if len(values) == 0 {
		return -1
	}
	require.Len(t, values, 1)
	ms, err := strconv.ParseInt(values[0], 10, 64)
	require.NoError(t, err, "the pushback %q is whole milliseconds", values[0])
	return ms
}

func TestUnaryServer_ShedsLoadWhileItsBreakerIsOpen(t *testing.T) {
	b := breaker.New("search", breaker.WithFailureThreshold(2), breaker.WithOpenTimeout(time.Hour))
	srv := guardedServer(t, []resilience.Policy[any]{breaker.Policy[any](b)})
	srv.setSay(func(context.Context, *wire) (*wire, error) { return nil, status.Error(codes.Internal, "index on fire") })
	conn := dial(t, srv.addr)

	for range 2 {
		_, err := say(boundedCtx(t), conn, "q")
		assert.Equal(t, "rpc error: code = Internal desc = index on fire", err.Error(), "the handler's error reaches the client unchanged")
	}
	require.Equal(t, breaker.Open, b.State())

	var trailer metadata.MD
	_, err := say(boundedCtx(t), conn, "q", grpc.Trailer(&trailer))

	s := status.Convert(err)
	assert.Equal(t, codes.Unavailable, s.Code())
	assert.Equal(t, "levee: rejected: circuit_open", s.Message(), "the message names the kind of rejection, not the breaker")
	assert.InDelta(t, time.Hour.Milliseconds(), pushbackOf(t, trailer), float64(time.Minute.Milliseconds()),
		"the pushback says when the breaker lets a probe through")
	require.Len(t, s.Details(), 1)
	assert.InDelta(t, time.Hour, s.Details()[0].(*errdetails.RetryInfo).GetRetryDelay().AsDuration(), float64(time.Minute))
	assert.Equal(t, int64(2), srv.says.Load(), "a rejected call must not reach the handler")
}

func TestUnaryServer_ClosesItsBreakerOnceTheHandlerRecovers(t *testing.T) {
	b := breaker.New("search", breaker.WithFailureThreshold(1), breaker.WithOpenTimeout(20*time.Millisecond))
	srv := guardedServer(t, []resilience.Policy[any]{breaker.Policy[any](b)})
	var broken atomic.Bool
	broken.Store(true)
	srv.setSay(func(_ context.Context, in *wire) (*wire, error) {
		if broken.Load() {
			return nil, status.Error(codes.Unavailable, "warming up")
		}
		return &wire{Text: in.Text}, nil
	})
	conn := dial(t, srv.addr)
	_, err := say(boundedCtx(t), conn, "q")
	require.Equal(t, codes.Unavailable, status.Code(err))
	require.Equal(t, breaker.Open, b.State())

	broken.Store(false)
	waitFor(t, func() bool {
		_, _ = say(boundedCtx(t), conn, "q")
		return b.State() == breaker.Closed
	}, "a probe that succeeds must close the breaker")
	out, err := say(boundedCtx(t), conn, "ready")
	require.NoError(t, err)
	assert.Equal(t, "ready", out.Text)
}

func TestUnaryServer_CountsTheHandlersErrorsByTheirCode(t *testing.T) {
	b := breaker.New("search", breaker.WithFailureThreshold(1000))
	srv := guardedServer(t, []resilience.Policy[any]{breaker.Policy[any](b)})
	conn := dial(t, srv.addr)
	for code := codes.OK; code <= codes.Unauthenticated; code++ {
		t.Run(code.String(), func(t *testing.T) {
			srv.setSay(func(context.Context, *wire) (*wire, error) {
				if code == codes.OK {
					return &wire{Text: "ok"}, nil
				}
				return nil, status.Error(code, "as the test asked")
			})
			before := b.Counts()

			_, err := say(boundedCtx(t), conn, "q")

			assert.Equal(t, code, status.Code(err))
			after := b.Counts()
			switch code {
			case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Internal, codes.Unknown:
				assert.Equal(t, before.Failure+1, after.Failure, "%v is a failure", code)
			case codes.Canceled:
				assert.Equal(t, before.Ignored+1, after.Ignored, "CANCELLED is neither")
			default:
				assert.Equal(t, before.Success+1, after.Success, "%v proves the handler works", code)
			}
		})
	}
	t.Run("an error that is not a status", func(t *testing.T) {
		srv.setSay(func(context.Context, *wire) (*wire, error) { return nil, errors.New("plain") })
		before := b.Counts()

		_, err := say(boundedCtx(t), conn, "q")

		assert.Equal(t, codes.Unknown, status.Code(err), "gRPC sends it as UNKNOWN")
		assert.Equal(t, before.Failure+1, b.Counts().Failure)
	})
}

func TestUnaryServer_WithIsFailureDecidesWhichErrorsFail(t *testing.T) {
	b := breaker.New("search", breaker.WithFailureThreshold(1000))
	srv := guardedServer(t, []resilience.Policy[any]{breaker.Policy[any](b)},
		leveegrpc.WithIsFailure(func(s *status.Status) bool { return s.Code() == codes.DataLoss }))
	conn := dial(t, srv.addr)

	srv.setSay(func(context.Context, *wire) (*wire, error) { return nil, status.Error(codes.DataLoss, "lost") })
	_, _ = say(boundedCtx(t), conn, "q")
	srv.setSay(func(context.Context, *wire) (*wire, error) { return nil, status.Error(codes.Internal, "boom") })
	_, _ = say(boundedCtx(t), conn, "q")

	assert.Equal(t, breaker.Counts{Failure: 1, Success: 1}, b.Counts())
}

func TestUnaryServer_AClientThatWentAwayIsNeitherSuccessNorFailure(t *testing.T) {
	b := breaker.New("search", breaker.WithFailureThreshold(1))
	srv := guardedServer(t, []resilience.Policy[any]{breaker.Policy[any](b)})
	entered := make(chan struct{})
	srv.setSay(func(ctx context.Context, _ *wire) (*wire, error) {
		close(entered)
		<-ctx.Done()
		return nil, errors.New("gave up: " + ctx.Err().Error()) // an UNKNOWN, were the client still there
	})
	conn := dial(t, srv.addr)
	ctx, cancel := context.WithCancel(boundedCtx(t))
	go func() {
		<-entered
		cancel()
	}()

	_, err := say(ctx, conn, "q")

	assert.Equal(t, codes.Canceled, status.Code(err))
	waitFor(t, func() bool { return b.Counts() != breaker.Counts{} }, "the handler must return")
	assert.Equal(t, breaker.Counts{Ignored: 1}, b.Counts())
	assert.Equal(t, breaker.Closed, b.State())
}

// refuseWith is a guard that refuses every call with err.
func refuseWith(err error) resilience.Policy[any] {
	return resilience.PolicyFunc[any](func(resilience.Func[any]) resilience.Func[any] {
		return func(context.Context) (any, error) { return nil, err }
	})
}

func TestServer_AGuardsOwnStatusIsSentAsItIs(t *testing.T) {
	srv := guardedServer(t, []resilience.Policy[any]{refuseWith(status.Error(codes.PermissionDenied, "no token"))})
	conn := dial(t, srv.addr)

	_, err := say(boundedCtx(t), conn, "q")
	assert.Equal(t, "rpc error: code = PermissionDenied desc = no token", err.Error(), "unary")

	stream, err := chat(boundedCtx(t), conn)
	require.NoError(t, err)
	err = stream.RecvMsg(new(wire))
	assert.Equal(t, "rpc error: code = PermissionDenied desc = no token", err.Error(), "stream")
}

func TestUnaryServer_AFallbackAnswersForARejectedCall(t *testing.T) {
	b := breaker.New("search", breaker.WithOpenTimeout(time.Hour))
	b.ForceOpen(t.Context())
	stale := fallback.Func(func(_ context.Context, err error) (any, error) {
		if !errors.Is(err, breaker.ErrOpen) {
			return nil, err
		}
		return &wire{Text: "stale results"}, nil
	})
	srv := startServer(t, grpc.ChainUnaryInterceptor(leveegrpc.UnaryServerInterceptor([]resilience.Policy[any]{stale, breaker.Policy[any](b)})))
	conn := dial(t, srv.addr)

	out, err := say(boundedCtx(t), conn, "q")

	require.NoError(t, err)
	assert.Equal(t, "stale results", out.Text)
	assert.Zero(t, srv.says.Load())
}

func TestUnaryServer_APanicIsAFailureAndPropagatesUnchanged(t *testing.T) {
	b := breaker.New("search", breaker.WithFailureThreshold(1))
	intercept := leveegrpc.UnaryServerInterceptor([]resilience.Policy[any]{breaker.Policy[any](b)})
	info := &grpc.UnaryServerInfo{FullMethod: methodSay}

	assert.PanicsWithValue(t, "handler bug", func() {
		_, _ = intercept(t.Context(), &wire{}, info, func(context.Context, any) (any, error) { panic("handler bug") })
	})
	assert.Equal(t, breaker.Counts{Failure: 1}, b.Counts())
	assert.Equal(t, breaker.Open, b.State())

	// Called without a gRPC stream in its context (as here), a rejection
	// still answers, without its trailer.
	_, err := intercept(t.Context(), &wire{}, info, func(context.Context, any) (any, error) { return &wire{}, nil })
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.ErrorIs(t, err, breaker.ErrOpen, "a Go caller of the interceptor can test for the levee error")
}

func TestStreamServer_ShedsLoadWhileItsBreakerIsOpen(t *testing.T) {
	b := breaker.New("chat", breaker.WithFailureThreshold(1), breaker.WithOpenTimeout(time.Hour))
	srv := guardedServer(t, []resilience.Policy[any]{breaker.Policy[any](b)})
	srv.setChat(func(grpc.ServerStream) error { return status.Error(codes.Unavailable, "no chats today") })
	conn := dial(t, srv.addr)

	stream, err := chat(boundedCtx(t), conn)
	require.NoError(t, err)
	err = stream.RecvMsg(new(wire))
	assert.Equal(t, "rpc error: code = Unavailable desc = no chats today", err.Error(), "the handler's error, unchanged")
	require.Equal(t, breaker.Open, b.State())

	stream, err = chat(boundedCtx(t), conn)
	require.NoError(t, err)
	err = stream.RecvMsg(new(wire))

	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.Equal(t, "levee: rejected: circuit_open", status.Convert(err).Message())
	assert.InDelta(t, time.Hour.Milliseconds(), pushbackOf(t, stream.Trailer()), float64(time.Minute.Milliseconds()))
	assert.Equal(t, int64(1), srv.chats.Load(), "a rejected stream must not reach the handler")
}

func TestStreamServer_CountsTheHandlersErrorAndIgnoresAClientThatWentAway(t *testing.T) {
	b := breaker.New("chat", breaker.WithFailureThreshold(1000))
	srv := guardedServer(t, []resilience.Policy[any]{breaker.Policy[any](b)})
	conn := dial(t, srv.addr)

	srv.setChat(func(grpc.ServerStream) error { return status.Error(codes.NotFound, "no such room") })
	stream, err := chat(boundedCtx(t), conn)
	require.NoError(t, err)
	assert.Equal(t, codes.NotFound, status.Code(stream.RecvMsg(new(wire))))
	waitFor(t, func() bool { return b.Counts() == breaker.Counts{Success: 1} }, "NOT_FOUND is a success: %+v", b.Counts())

	srv.setChat(func(grpc.ServerStream) error { return status.Error(codes.Internal, "boom") })
	stream, err = chat(boundedCtx(t), conn)
	require.NoError(t, err)
	assert.Equal(t, codes.Internal, status.Code(stream.RecvMsg(new(wire))))
	waitFor(t, func() bool { return b.Counts() == breaker.Counts{Success: 1, Failure: 1} }, "INTERNAL is a failure: %+v", b.Counts())

	srv.setChat(chatLoop)
	ctx, cancel := context.WithCancel(boundedCtx(t))
	stream, err = chat(ctx, conn)
	require.NoError(t, err)
	assert.Equal(t, "hi", exchange(t, stream, "hi"))
	cancel()
	waitFor(t, func() bool { return b.Counts() == breaker.Counts{Success: 1, Failure: 1, Ignored: 1} },
		"a client that went away is neither: %+v", b.Counts())
}

func TestStreamServer_TheHandlerRunsUnderThePoliciesContext(t *testing.T) {
	srv := guardedServer(t, []resilience.Policy[any]{resilience.Timeout[any](time.Hour)})
	conn := dial(t, srv.addr)
	stream, err := chat(t.Context(), conn) // no deadline of the client's
	require.NoError(t, err)

	deadline, err := time.Parse(time.RFC3339Nano, exchange(t, stream, "deadline"))

	require.NoError(t, err, "the handler's stream has the timeout's deadline")
	assert.InDelta(t, time.Hour, time.Until(deadline), float64(time.Minute))
	closeChat(t, stream)
}

func TestStreamServer_RunsTheHandlerOnceAtMost(t *testing.T) {
	var second error
	twice := resilience.PolicyFunc[any](func(next resilience.Func[any]) resilience.Func[any] {
		return func(ctx context.Context) (any, error) {
			v, err := next(ctx)
			_, second = next(ctx)
			return v, err
		}
	})
	srv := guardedServer(t, []resilience.Policy[any]{twice})
	conn := dial(t, srv.addr)

	stream, err := chat(boundedCtx(t), conn)
	require.NoError(t, err)
	assert.Equal(t, "hi", exchange(t, stream, "hi"))
	closeChat(t, stream)

	waitFor(t, func() bool { return srv.chats.Load() == 1 }, "the handler runs once")
	assert.ErrorContains(t, second, "cannot run twice")
	assert.Equal(t, int64(1), srv.chats.Load())
}

func TestLeveeOnBothSides_TheServersPushbackHoldsTheClientsBreakerOpen(t *testing.T) {
	serverBreaker := breaker.New("search", breaker.WithOpenTimeout(time.Hour))
	serverBreaker.ForceOpen(t.Context())
	srv := guardedServer(t, []resilience.Policy[any]{breaker.Policy[any](serverBreaker)})
	clientBreaker := breaker.New("search-client", breaker.WithFailureThreshold(1),
		breaker.WithOpenTimeout(20*time.Millisecond), breaker.WithRetryAfter(2*time.Hour))
	conn, _ := guardedConn(t, srv, []resilience.Policy[any]{breaker.Policy[any](clientBreaker)})

	_, err := say(boundedCtx(t), conn, "q")
	require.Equal(t, codes.Unavailable, status.Code(err), "the server sheds the call")
	assert.NotErrorIs(t, err, breaker.ErrOpen, "the client's breaker was closed: this is the server's answer")

	_, err = say(boundedCtx(t), conn, "q")
	var open *breaker.OpenError
	require.ErrorAs(t, err, &open, "now the client's own breaker rejects")
	assert.Equal(t, "search-client", open.Name())
	assert.Greater(t, open.RetryAfter(), 59*time.Minute, "for as long as the server asked, not 20ms")
}

func TestServerInterceptors_RefuseNilPoliciesAndOptions(t *testing.T) {
	assert.PanicsWithValue(t, "levee: resilience.WrapWith: policies[0] is nil", func() {
		leveegrpc.UnaryServerInterceptor([]resilience.Policy[any]{nil})
	})
	assert.PanicsWithValue(t, "levee: leveegrpc.StreamServerInterceptor: an Option is nil", func() {
		leveegrpc.StreamServerInterceptor(nil, nil)
	})
	assert.PanicsWithValue(t, "levee: leveegrpc.StreamClientInterceptor: WithIsFailure: isFailure must not be nil", func() {
		leveegrpc.StreamClientInterceptor(nil, leveegrpc.WithIsFailure(nil))
	})
}
