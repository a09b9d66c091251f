package leveegrpc_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/leveegrpc"
	"github.com/levee-go/levee/resilience"
)

// streamConn is a client of srv whose streams are established through
// policies, with spy counting the establishments that got past them and
// the extra interceptors chained after it.
func streamConn(t *testing.T, srv *testServer, policies []resilience.Policy[grpc.ClientStream], inner ...grpc.StreamClientInterceptor) (*grpc.ClientConn, *invocations) {
	t.Helper()
	spy := &invocations{}
	chain := append([]grpc.StreamClientInterceptor{leveegrpc.StreamClientInterceptor(policies), spy.streamInterceptor}, inner...)
	return dial(t, srv.addr, grpc.WithChainStreamInterceptor(chain...)), spy
}

// chat opens a Chat stream.
func chat(ctx context.Context, conn *grpc.ClientConn) (grpc.ClientStream, error) {
	return conn.NewStream(ctx, chatDesc, methodChat)
}

// exchange sends text on stream and returns the answer.
func exchange(t *testing.T, stream grpc.ClientStream, text string) string {
	t.Helper()
	require.NoError(t, stream.SendMsg(&wire{Text: text}), "sending %q", text)
	in := new(wire)
	require.NoError(t, stream.RecvMsg(in), "receiving the answer to %q", text)
	return in.Text
}

// closeChat ends stream as a client should: CloseSend, then RecvMsg until
// io.EOF.
func closeChat(t *testing.T, stream grpc.ClientStream) {
	t.Helper()
	require.NoError(t, stream.CloseSend())
	assert.ErrorIs(t, stream.RecvMsg(new(wire)), io.EOF, "the server ends the chat once the client has closed its side")
}

// awaitDone fails the test unless ctx ends within five seconds.
func awaitDone(t *testing.T, ctx context.Context, msg string) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal(msg)
	}
}

func TestStreamClient_BreakerGuardsEstablishmentThroughAnOutage(t *testing.T) {
	srv := startServer(t)
	b := breaker.New("echo", breaker.WithFailureThreshold(3), breaker.WithOpenTimeout(20*time.Millisecond))
	conn, spy := streamConn(t, srv, []resilience.Policy[grpc.ClientStream]{breaker.Policy[grpc.ClientStream](b)})

	stream, err := chat(boundedCtx(t), conn)
	require.NoError(t, err, "the server is up")
	assert.Equal(t, "hello", exchange(t, stream, "hello"))
	closeChat(t, stream)

	srv.stop()
	for i := 0; b.State() == breaker.Closed; i++ {
		require.Less(t, i, 100, "failed establishments must open the breaker")
		stream, err := chat(boundedCtx(t), conn)
		if err == nil {
			// Established on the connection gRPC had not yet seen close:
			// a success for the breaker, and a stream that fails at once.
			assert.Error(t, stream.RecvMsg(new(wire)), "a stream to a server that is down must fail")
			continue
		}
		assert.Equal(t, codes.Unavailable, status.Code(err), "during the outage NewStream fails UNAVAILABLE: %v", err)
		assert.NotErrorIs(t, err, breaker.ErrOpen)
	}

	rejected := 0
	for i := 0; rejected < 3; i++ {
		require.Less(t, i, 1000, "an open breaker must reject new streams")
		before := spy.streams.Load()
		_, err := chat(boundedCtx(t), conn)
		if !errors.Is(err, breaker.ErrOpen) {
			continue
		}
		rejected++
		assert.Equal(t, before, spy.streams.Load(), "a rejected stream must not reach gRPC")
		assert.Equal(t, codes.Unavailable, status.Code(err))
	}

	srv.restart()
	waitFor(t, func() bool {
		if stream, err := chat(boundedCtx(t), conn); err == nil {
			closeChat(t, stream)
		}
		return b.State() == breaker.Closed
	}, "once the server is back, a stream must close the breaker")
	stream, err = chat(boundedCtx(t), conn)
	require.NoError(t, err)
	assert.Equal(t, "welcome back", exchange(t, stream, "welcome back"))
	closeChat(t, stream)
}

func TestStreamClient_AnOpenBreakerLetsTheStreamsAlreadyOpenRun(t *testing.T) {
	srv := startServer(t)
	b := breaker.New("echo", breaker.WithOpenTimeout(time.Hour))
	conn, _ := streamConn(t, srv, []resilience.Policy[grpc.ClientStream]{breaker.Policy[grpc.ClientStream](b)})
	stream, err := chat(boundedCtx(t), conn)
	require.NoError(t, err)

	b.ForceOpen(t.Context())
	_, err = chat(boundedCtx(t), conn)
	require.ErrorIs(t, err, breaker.ErrOpen, "a new stream is rejected")

	assert.Equal(t, "still here", exchange(t, stream, "still here"), "the stream opened before runs on")
	closeChat(t, stream)
}

func TestStreamClient_AStreamOutlivesTheTimeoutThatBoundedItsEstablishment(t *testing.T) {
	srv := startServer(t)
	conn, _ := streamConn(t, srv, []resilience.Policy[grpc.ClientStream]{resilience.Timeout[grpc.ClientStream](time.Minute)})
	ctx, cancel := context.WithTimeout(t.Context(), time.Hour)
	defer cancel()

	stream, err := chat(ctx, conn)
	require.NoError(t, err)

	// The Timeout's context ended as soon as NewStream returned.
	assert.Equal(t, "hello", exchange(t, stream, "hello"), "the stream lives on")
	deadline, err := time.Parse(time.RFC3339Nano, exchange(t, stream, "deadline"))
	require.NoError(t, err, "the server's stream has a deadline")
	assert.Greater(t, time.Until(deadline), 50*time.Minute, "the server gets the caller's deadline, not the timeout's")
	closeChat(t, stream)
}

func TestStreamClient_TheCallersCancelEndsAStreamDetachedFromATimeout(t *testing.T) {
	srv := startServer(t)
	serverCtx := make(chan context.Context, 1)
	srv.setChat(func(stream grpc.ServerStream) error {
		serverCtx <- stream.Context()
		return chatLoop(stream)
	})
	conn, _ := streamConn(t, srv, []resilience.Policy[grpc.ClientStream]{resilience.Timeout[grpc.ClientStream](time.Minute)})
	ctx, cancel := context.WithCancel(boundedCtx(t))
	stream, err := chat(ctx, conn)
	require.NoError(t, err)
	assert.Equal(t, "hello", exchange(t, stream, "hello"))

	cancel()

	assert.Equal(t, codes.Canceled, status.Code(stream.RecvMsg(new(wire))))
	awaitDone(t, <-serverCtx, "the server's side of the stream must end")
}

func TestStreamClient_AStreamThePoliciesDoNotReturnIsCancelled(t *testing.T) {
	srv := startServer(t)
	serverCtxs := make(chan context.Context, 2)
	srv.setChat(func(stream grpc.ServerStream) error {
		serverCtxs <- stream.Context()
		return chatLoop(stream)
	})
	// A hedge-like policy: two streams, the second wins.
	secondWins := resilience.PolicyFunc[grpc.ClientStream](func(next resilience.Func[grpc.ClientStream]) resilience.Func[grpc.ClientStream] {
		return func(ctx context.Context) (grpc.ClientStream, error) {
			if _, err := next(ctx); err != nil {
				return nil, err
			}
			return next(ctx)
		}
	})
	conn, _ := streamConn(t, srv, []resilience.Policy[grpc.ClientStream]{secondWins})

	stream, err := chat(boundedCtx(t), conn)
	require.NoError(t, err)

	assert.Equal(t, "hello", exchange(t, stream, "hello"))
	first, second := <-serverCtxs, <-serverCtxs
	if first.Err() == nil && second.Err() == nil {
		// Which one the server saw first is the network's business: the
		// answered one is the winner.
		select {
		case <-first.Done():
		case <-second.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("the stream the policies dropped must be cancelled")
		}
	}
	closeChat(t, stream)
}

func TestStreamClient_AStreamEstablishedAfterItsCallReturnedIsCancelled(t *testing.T) {
	srv := startServer(t)
	serverCtx := make(chan context.Context, 1)
	srv.setChat(func(stream grpc.ServerStream) error {
		serverCtx <- stream.Context()
		return chatLoop(stream)
	})
	entered, returned := make(chan struct{}), make(chan struct{})
	established := make(chan error, 1)
	errGaveUp := errors.New("the policy gave up")
	// The attempt starts before the call returns, and reaches gRPC after.
	gaveUp := resilience.PolicyFunc[grpc.ClientStream](func(next resilience.Func[grpc.ClientStream]) resilience.Func[grpc.ClientStream] {
		return func(ctx context.Context) (grpc.ClientStream, error) {
			go func() {
				_, err := next(ctx)
				established <- err
			}()
			<-entered
			return nil, errGaveUp
		}
	})
	holdUntilReturned := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		close(entered)
		<-returned
		return streamer(ctx, desc, cc, method, opts...)
	}
	conn, _ := streamConn(t, srv, []resilience.Policy[grpc.ClientStream]{gaveUp}, holdUntilReturned)

	_, err := chat(boundedCtx(t), conn)
	close(returned)

	assert.ErrorIs(t, err, errGaveUp)
	select {
	case err := <-established:
		assert.ErrorContains(t, err, "already returned")
	case <-time.After(5 * time.Second):
		t.Fatal("the late attempt must end")
	}
	select {
	case ctx := <-serverCtx:
		awaitDone(t, ctx, "the late stream must be cancelled")
	case <-time.After(5 * time.Second):
		t.Fatal("the late stream must reach the server")
	}
}

func TestStreamClient_AStreamThatStartsAfterItsCallReturnedSendsNothing(t *testing.T) {
	srv := startServer(t)
	returned := make(chan struct{})
	late := make(chan error, 1)
	lateStarter := resilience.PolicyFunc[grpc.ClientStream](func(next resilience.Func[grpc.ClientStream]) resilience.Func[grpc.ClientStream] {
		return func(ctx context.Context) (grpc.ClientStream, error) {
			go func() {
				<-returned
				_, err := next(context.WithoutCancel(ctx))
				late <- err
			}()
			return nil, errors.New("gave up")
		}
	})
	conn, spy := streamConn(t, srv, []resilience.Policy[grpc.ClientStream]{lateStarter})

	_, err := chat(boundedCtx(t), conn)
	close(returned)

	require.Error(t, err)
	select {
	case err := <-late:
		assert.ErrorContains(t, err, "already returned")
	case <-time.After(5 * time.Second):
		t.Fatal("the late attempt must end")
	}
	assert.Zero(t, spy.streams.Load())
}

func TestStreamClient_ReleasesAStreamsContextOnceTheStreamEnds(t *testing.T) {
	for _, tc := range []struct {
		name     string
		policies []resilience.Policy[grpc.ClientStream]
	}{
		{"under the caller's context", nil},
		{"detached from a timeout's", []resilience.Policy[grpc.ClientStream]{resilience.Timeout[grpc.ClientStream](time.Minute)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, end := range []struct {
				name string
				end  func(t *testing.T, stream grpc.ClientStream)
			}{
				{"RecvMsg reads io.EOF", closeChat},
				{"SendMsg fails", func(t *testing.T, stream grpc.ClientStream) {
					assert.Error(t, stream.SendMsg(new(int)), "the codec cannot marshal an *int")
				}},
			} {
				t.Run(end.name, func(t *testing.T) {
					srv := startServer(t)
					attemptCtx := make(chan context.Context, 1)
					capture := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
						attemptCtx <- ctx
						return streamer(ctx, desc, cc, method, opts...)
					}
					conn, _ := streamConn(t, srv, tc.policies, capture)
					stream, err := chat(t.Context(), conn) // lives as long as the test
					require.NoError(t, err)
					assert.Equal(t, "hello", exchange(t, stream, "hello"))
					ctx := <-attemptCtx
					require.NoError(t, ctx.Err(), "the stream's context lives while the stream does")

					end.end(t, stream)

					awaitDone(t, ctx, "the interceptor must release the stream's context once the stream ended")
				})
			}
		})
	}
}

func TestStreamClient_ReleasesTheContextOfAStreamTheServerDoesNotStreamAtItsOneReply(t *testing.T) {
	srv := startServer(t)
	attemptCtx := make(chan context.Context, 1)
	capture := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		attemptCtx <- ctx
		return streamer(ctx, desc, cc, method, opts...)
	}
	conn, _ := streamConn(t, srv, nil, capture)
	stream, err := conn.NewStream(t.Context(), collectDesc, methodCollect)
	require.NoError(t, err)
	require.NoError(t, stream.SendMsg(&wire{Text: "one"}))
	require.NoError(t, stream.SendMsg(&wire{Text: "two"}))
	require.NoError(t, stream.CloseSend())

	reply := new(wire)
	require.NoError(t, stream.RecvMsg(reply), "the one reply")

	assert.Equal(t, "one two", reply.Text)
	awaitDone(t, <-attemptCtx, "the one reply ends the stream: the interceptor must release its context")
}

func TestStreamClient_ANonFailureErrorReachesTheCallerAndIsASuccessForThePolicies(t *testing.T) {
	srv := startServer(t)
	attemptCtx := make(chan context.Context, 1)
	refuse := func(ctx context.Context, _ *grpc.StreamDesc, _ *grpc.ClientConn, _ string, _ grpc.Streamer, _ ...grpc.CallOption) (grpc.ClientStream, error) {
		attemptCtx <- ctx
		return nil, status.Error(codes.PermissionDenied, "no chats for you")
	}
	b := breaker.New("echo", breaker.WithFailureThreshold(1))
	conn, _ := streamConn(t, srv, []resilience.Policy[grpc.ClientStream]{breaker.Policy[grpc.ClientStream](b)}, refuse)

	stream, err := chat(boundedCtx(t), conn)

	assert.Nil(t, stream)
	assert.Equal(t, "rpc error: code = PermissionDenied desc = no chats for you", err.Error())
	assert.Equal(t, breaker.Counts{Success: 1}, b.Counts())
	awaitDone(t, <-attemptCtx, "a stream that failed to establish must not hold its context")
}

func TestStreamClient_ATimeoutBoundsTheEstablishment(t *testing.T) {
	srv := startServer(t)
	b := breaker.New("echo", breaker.WithFailureThreshold(1), breaker.WithOpenTimeout(time.Hour))
	conn, _ := streamConn(t, srv, []resilience.Policy[grpc.ClientStream]{
		breaker.Policy[grpc.ClientStream](b),
		resilience.Timeout[grpc.ClientStream](20 * time.Millisecond),
	})
	srv.stop()
	start := time.Now()

	// WaitForReady: NewStream waits for a server that does not come.
	_, err := conn.NewStream(boundedCtx(t), chatDesc, methodChat, grpc.WaitForReady(true))

	assert.Equal(t, codes.DeadlineExceeded, status.Code(err), "%v", err)
	assert.Less(t, time.Since(start), 5*time.Second, "the timeout, not the caller's context, ended the wait")
	assert.Equal(t, breaker.Open, b.State(), "a stream that takes too long to establish is a failure")
}
