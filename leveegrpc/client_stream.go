package leveegrpc

import (
	"context"
	"errors"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/levee-go/levee/resilience"
)

// StreamClientInterceptor returns an interceptor that sends the
// establishment of each stream of a ClientConn through policies, listed
// outermost first as for resilience.Wrap. The pipeline is built here, once.
//
// What the policies guard is NewStream: a stream whose establishment fails
// with a failure status (UNAVAILABLE while the server is down, say) is a
// failure, counted and retried as for a unary call; a stream that is
// established is a success, and what happens on it afterwards (its messages,
// the status it ends with) is the caller's business, not the policies'. An
// open breaker therefore rejects new streams at once, and lets the streams
// already open run. A rejected stream returns a gRPC status error as
// UnaryClientInterceptor describes (UNAVAILABLE, matching breaker.ErrOpen),
// and sends nothing.
//
// Contexts: establishment runs under the context the policies give it, so
// a resilience.Timeout bounds how long NewStream may take; the stream then
// lives as long as the caller's context (and its deadline), not the
// timeout's. No stream leaks: one that the policies do not return (a
// timeout abandoned it, a hedge lost, a fallback answered instead) is
// cancelled, and the interceptor releases its own hold on a stream as soon
// as the stream ends (RecvMsg returns an error, SendMsg an error other than
// io.EOF, or the one reply of a stream that the server does not stream
// arrives). The caller's duties are gRPC's own: end the stream that
// way, or cancel its context.
//
// The interceptor is safe for concurrent use, as the policies are. A nil
// policy or option panics here, naming it.
func StreamClientInterceptor(policies []resilience.Policy[grpc.ClientStream], opts ...Option) grpc.StreamClientInterceptor {
	c := newConfig(opts)
	c.check("StreamClientInterceptor")
	s := &streamClient{isFailure: c.isFailure}
	s.pipeline = resilience.WrapWith(pipelineTelemetry(c, policies, "leveegrpc.client"),
		resilience.Func[grpc.ClientStream](s.attempt), policies...)
	return s.intercept
}

type streamClient struct {
	isFailure func(*status.Status) bool
	pipeline  resilience.Func[grpc.ClientStream]
}

func (s *streamClient) intercept(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	c := &streamCall{desc: desc, cc: cc, method: method, streamer: streamer, opts: opts}
	c.ctx = context.WithValue(ctx, callKey{}, c)
	cs, err := s.pipeline(c.ctx)
	return c.finish(cs, err)
}

// attempt is the function the policies guard: one NewStream.
func (s *streamClient) attempt(ctx context.Context) (grpc.ClientStream, error) {
	c, _ := ctx.Value(callKey{}).(*streamCall)
	if c == nil {
		return nil, errForeignContext
	}
	if c.hasEnded() {
		return nil, errCallEnded
	}
	streamCtx, release, established := c.streamContext(ctx)
	cs, err := c.streamer(streamCtx, c.desc, c.cc, c.method, c.opts...)
	established()
	if err != nil {
		release()
		err = asIfUnder(ctx, err)
		if failure, pass := verdict(ctx, s.isFailure, err, c.method); !pass {
			return nil, failure
		}
		return &passedStream{err: err}, nil
	}
	gs := &guardedStream{ClientStream: cs, release: release, serverStreams: c.desc.ServerStreams}
	if !c.produced(gs) {
		gs.end()
		return nil, errCallEnded
	}
	return gs, nil
}

// streamCall is one NewStream: what the streamer needs, and the streams
// its attempts established, so that those the caller does not get are
// cancelled.
type streamCall struct {
	ctx      context.Context // the caller's, with the call in it
	desc     *grpc.StreamDesc
	cc       *grpc.ClientConn
	method   string
	streamer grpc.Streamer
	opts     []grpc.CallOption

	mu      sync.Mutex
	streams []*guardedStream
	ended   bool
}

// streamContext returns the context an attempt establishes its stream
// under, the function that cancels it, and the one to call once NewStream
// has returned. When the policies gave the attempt the caller's context,
// the stream's is a child of it. When they gave it one of their own (a
// Timeout's, which ends as soon as the pipeline returns), that context
// bounds the establishment only: the stream keeps its values, and from then
// on ends with the caller's context, under the caller's deadline.
func (c *streamCall) streamContext(ctx context.Context) (streamCtx context.Context, release, established func()) {
	if ctx == c.ctx {
		streamCtx, cancel := context.WithCancel(ctx)
		return streamCtx, cancel, func() {}
	}
	base, stopDeadline := context.WithoutCancel(ctx), context.CancelFunc(func() {})
	if deadline, ok := c.ctx.Deadline(); ok {
		base, stopDeadline = context.WithDeadline(base, deadline)
	}
	streamCtx, cancel := context.WithCancelCause(base)
	stopPolicy := context.AfterFunc(ctx, func() { cancel(context.Cause(ctx)) })
	stopCaller := context.AfterFunc(c.ctx, func() { cancel(context.Cause(c.ctx)) })
	release = func() {
		stopPolicy()
		stopCaller()
		cancel(nil)
		stopDeadline()
	}
	return streamCtx, release, func() { stopPolicy() }
}

// asIfUnder returns the error gRPC would have returned for a NewStream
// that failed because ctx, the policies' context, ended: the stream's own
// context was cancelled when ctx ended, so gRPC says CANCELLED where ctx
// may have passed its deadline.
func asIfUnder(ctx context.Context, err error) error {
	if ctx.Err() == nil || status.Code(err) != codes.Canceled {
		return err
	}
	return status.Error(status.FromContextError(ctx.Err()).Code(), status.Convert(err).Message())
}

// hasEnded reports whether the call has returned.
func (c *streamCall) hasEnded() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ended
}

// produced records a stream an attempt established. It reports false when
// the call has already returned without it.
func (c *streamCall) produced(gs *guardedStream) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return false
	}
	c.streams = append(c.streams, gs)
	return true
}

// finish ends the call: it cancels every stream established but not
// returned, and says what the caller gets.
func (c *streamCall) finish(cs grpc.ClientStream, err error) (grpc.ClientStream, error) {
	c.mu.Lock()
	c.ended = true
	streams := c.streams
	c.streams = nil
	c.mu.Unlock()
	kept, _ := cs.(*guardedStream)
	if err != nil {
		kept = nil
	}
	for _, gs := range streams {
		if gs != kept {
			gs.end()
		}
	}
	switch {
	case err != nil:
		return nil, clientError(err)
	case cs == nil:
		return nil, status.Error(codes.Internal, "leveegrpc: the policies returned no stream and no error")
	}
	if p, ok := cs.(*passedStream); ok {
		return nil, p.err
	}
	return cs, nil
}

// passedStream is the value the policies get for a NewStream whose error
// is no failure: a success for them, it carries the error to the caller.
// It is never returned as a stream.
type passedStream struct {
	grpc.ClientStream
	err error
}

// guardedStream is a stream an attempt established: it releases the
// attempt's context once the stream has ended.
type guardedStream struct {
	grpc.ClientStream
	serverStreams bool
	once          sync.Once
	release       func()
}

// end releases the stream's context, cancelling the stream if it is still
// running.
func (s *guardedStream) end() { s.once.Do(s.release) }

func (s *guardedStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err != nil || !s.serverStreams {
		// An error ends every stream; the one reply ends a stream the
		// server does not stream (gRPC has read its status by then).
		s.end()
	}
	return err
}

func (s *guardedStream) SendMsg(m any) error {
	err := s.ClientStream.SendMsg(m)
	if err != nil && !errors.Is(err, io.EOF) {
		s.end()
	}
	return err
}
