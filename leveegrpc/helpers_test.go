package leveegrpc_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
)

// The tests talk to a real gRPC server on loopback, through a service
// written by hand (levee.test.Echo) whose messages are plain strings, sent
// as their bytes by a codec of the tests' own: no generated code, no protoc.

// wire is the one message of the test service.
type wire struct{ Text string }

// codecName is the content-subtype under which the test codec is
// registered; every test client asks for it.
const codecName = "levee-test"

type wireCodec struct{}

func (wireCodec) Marshal(v any) ([]byte, error) {
	w, ok := v.(*wire)
	if !ok {
		return nil, fmt.Errorf("wireCodec: cannot marshal a %T", v)
	}
	return []byte(w.Text), nil
}

func (wireCodec) Unmarshal(data []byte, v any) error {
	w, ok := v.(*wire)
	if !ok {
		return fmt.Errorf("wireCodec: cannot unmarshal into a %T", v)
	}
	w.Text = string(data)
	return nil
}

func (wireCodec) Name() string { return codecName }

func init() { encoding.RegisterCodec(wireCodec{}) }

const (
	methodSay     = "/levee.test.Echo/Say"
	methodChat    = "/levee.test.Echo/Chat"
	methodCollect = "/levee.test.Echo/Collect"
)

// echo is the test service. Say answers with its request's text unless
// the test set a behaviour; Chat answers each message it receives, and
// "deadline" with the deadline of its stream's context; Collect, a stream
// the server does not stream, answers once with the messages it received,
// joined.
type echo struct {
	says  atomic.Int64 // calls of Say that reached the service
	chats atomic.Int64 // streams of Chat that reached the service
	say   atomic.Pointer[func(ctx context.Context, in *wire) (*wire, error)]
	chat  atomic.Pointer[func(stream grpc.ServerStream) error]
}

func (e *echo) setSay(f func(ctx context.Context, in *wire) (*wire, error)) { e.say.Store(&f) }

func (e *echo) setChat(f func(stream grpc.ServerStream) error) { e.chat.Store(&f) }

var echoDesc = grpc.ServiceDesc{
	ServiceName: "levee.test.Echo",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Say",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := new(wire)
			if err := dec(in); err != nil {
				return nil, err
			}
			handler := func(ctx context.Context, req any) (any, error) { return srv.(*echo).handleSay(ctx, req.(*wire)) }
			if interceptor == nil {
				return handler(ctx, in)
			}
			return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: methodSay}, handler)
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "Chat",
		ServerStreams: true,
		ClientStreams: true,
		Handler:       func(srv any, stream grpc.ServerStream) error { return srv.(*echo).handleChat(stream) },
	}, {
		StreamName:    "Collect",
		ClientStreams: true,
		Handler:       func(_ any, stream grpc.ServerStream) error { return collect(stream) },
	}},
}

var (
	chatDesc    = &echoDesc.Streams[0]
	collectDesc = &echoDesc.Streams[1]
)

func (e *echo) handleSay(ctx context.Context, in *wire) (*wire, error) {
	e.says.Add(1)
	if f := e.say.Load(); f != nil {
		return (*f)(ctx, in)
	}
	return &wire{Text: in.Text}, nil
}

func (e *echo) handleChat(stream grpc.ServerStream) error {
	e.chats.Add(1)
	if f := e.chat.Load(); f != nil {
		return (*f)(stream)
	}
	return chatLoop(stream)
}

// chatLoop answers each message of stream until the client closes it.
func chatLoop(stream grpc.ServerStream) error {
	for {
		in := new(wire)
		if err := stream.RecvMsg(in); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		out := &wire{Text: in.Text}
		if in.Text == "deadline" {
			out.Text = "none"
			if d, ok := stream.Context().Deadline(); ok {
				out.Text = d.Format(time.RFC3339Nano)
			}
		}
		if err := stream.SendMsg(out); err != nil {
			return err
		}
	}
}

// collect answers the messages of stream, once the client has closed its
// side, with their texts joined.
func collect(stream grpc.ServerStream) error {
	var all []string
	for {
		in := new(wire)
		if err := stream.RecvMsg(in); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return err
		}
		all = append(all, in.Text)
	}
	return stream.SendMsg(&wire{Text: strings.Join(all, " ")})
}

// testServer is a gRPC server on a loopback port that the test can stop
// and start again on the same address.
type testServer struct {
	*echo
	t    *testing.T
	addr string
	opts []grpc.ServerOption

	mu  sync.Mutex
	srv *grpc.Server
}

func startServer(t *testing.T, opts ...grpc.ServerOption) *testServer {
	t.Helper()
	s := &testServer{echo: &echo{}, t: t, opts: opts}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err, "listening on loopback")
	s.addr = lis.Addr().String()
	s.serve(lis)
	t.Cleanup(s.stop)
	return s
}

func (s *testServer) serve(lis net.Listener) {
	srv := grpc.NewServer(s.opts...)
	srv.RegisterService(&echoDesc, s.echo)
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go func() { _ = srv.Serve(lis) }()
}

// stop takes the server down: its listener and every connection close.
func (s *testServer) stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
}

// restart brings the server back on its address.
func (s *testServer) restart() {
	s.t.Helper()
	var lis net.Listener
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if lis, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
	}
	require.NoError(s.t, err, "listening again on %s", s.addr)
	s.serve(lis)
}

// dial returns a client of s whose reconnection backoff is a few
// milliseconds, so that a server that comes back is reached at once.
func dial(t *testing.T, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+addr, append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.CallContentSubtype(codecName)),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 2 * time.Millisecond, Multiplier: 1.5, MaxDelay: 10 * time.Millisecond},
			MinConnectTimeout: 2 * time.Second,
		}),
	}, opts...)...)
	require.NoError(t, err, "creating the client")
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// say calls Say.
func say(ctx context.Context, conn *grpc.ClientConn, text string, opts ...grpc.CallOption) (*wire, error) {
	out := new(wire)
	err := conn.Invoke(ctx, methodSay, &wire{Text: text}, out, opts...)
	return out, err
}

// boundedCtx is a context for one call of a test: long enough for any
// loopback call, short enough that a hanging call fails the test.
func boundedCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// invocations counts the calls that passed the levee interceptor and went
// on to gRPC: chained after it, it sees no rejected call.
type invocations struct{ unary, streams atomic.Int64 }

func (n *invocations) unaryInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	n.unary.Add(1)
	return invoker(ctx, method, req, reply, cc, opts...)
}

func (n *invocations) streamInterceptor(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	n.streams.Add(1)
	return streamer(ctx, desc, cc, method, opts...)
}

// waitFor polls cond every millisecond until it holds, failing the test
// with msg after five seconds.
func waitFor(t *testing.T, cond func() bool, msg string, args ...any) {
	t.Helper()
	require.Eventually(t, cond, 5*time.Second, time.Millisecond, append([]any{msg}, args...)...)
}
