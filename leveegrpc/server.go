package leveegrpc

import (
	"context"
	"errors"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/levee-go/levee/resilience"
)

// UnaryServerInterceptor returns an interceptor that guards a server's
// unary handlers with policies, listed outermost first as for
// resilience.Wrap, to shed load: while a breaker among them is open (or a
// bulkhead is full, a rate limit or a throttle says no), a call is answered
// at once, and the handler is not called, so that it and what it depends on
// can recover:
//
//	search := breaker.New("search")
//	srv := grpc.NewServer(
//		grpc.ChainUnaryInterceptor(leveegrpc.UnaryServerInterceptor([]resilience.Policy[any]{breaker.Policy[any](search)})),
//		grpc.ChainStreamInterceptor(leveegrpc.StreamServerInterceptor([]resilience.Policy[any]{breaker.Policy[any](search)})),
//	)
//
// The pipeline is built here, once, and the policies' values are the
// handler's responses.
//
// A rejected call is answered with UNAVAILABLE (an open breaker, a
// throttle) or RESOURCE_EXHAUSTED (a full bulkhead, a rate limit), with the
// message "levee: rejected: circuit_open" (the kind of rejection, never a
// policy's name) and, when the policy says how long to wait (a breaker
// until it lets a probe through, a rate limit until its next token), with a
// grpc-retry-pushback-ms trailer and a google.rpc.RetryInfo in the status's
// details: gRPC's own retry and levee's client interceptors honour them. A
// call whose context had ended before it began gets CANCELLED or
// DEADLINE_EXCEEDED.
//
// What counts as a failure of the handler: an error whose status the
// failure predicate counts (DefaultIsFailure, or WithIsFailure's; an error
// that is not a status is UNKNOWN, as gRPC sends it), which reaches the
// policies as a *StatusError, and a panic, which a breaker records and lets
// propagate unchanged. A call whose context has ended by the time the
// handler returns (the client went away, its deadline passed) and a
// CANCELLED status are neither. Anything else is a success. The client
// gets the handler's response and error unchanged in every case.
//
// The interceptor is safe for concurrent use, as the policies are. A nil
// policy or option panics here, naming it.
func UnaryServerInterceptor(policies []resilience.Policy[any], opts ...Option) grpc.UnaryServerInterceptor {
	c := newConfig(opts)
	c.check("UnaryServerInterceptor")
	u := &unaryServer{isFailure: c.isFailure}
	u.pipeline = resilience.WrapWith(pipelineTelemetry(c, policies, "leveegrpc.server"),
		resilience.Func[any](u.attempt), policies...)
	return u.intercept
}

type unaryServer struct {
	isFailure func(*status.Status) bool
	pipeline  resilience.Func[any]
}

// unaryServerCall is one unary call a server handles.
type unaryServerCall struct {
	req     any
	info    *grpc.UnaryServerInfo
	handler grpc.UnaryHandler
}

func (u *unaryServer) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	c := &unaryServerCall{req: req, info: info, handler: handler}
	resp, err := u.pipeline(context.WithValue(ctx, callKey{}, c))
	switch {
	case err == nil:
		if p, ok := resp.(*passed); ok {
			return p.value, p.err
		}
		return resp, nil // the handler's response, or a fallback's
	case handlerError(err) != nil:
		return nil, handlerError(err)
	case hasStatus(err):
		return nil, err // a guard's own answer (an authorization check's PERMISSION_DENIED, say)
	}
	rejected := serverError(err)
	if md, ok := pushback(rejected); ok {
		_ = grpc.SetTrailer(ctx, md) // fails only when the call has no stream: a test calling the interceptor directly
	}
	return nil, rejected
}

// attempt is the function the policies guard: one run of the handler.
func (u *unaryServer) attempt(ctx context.Context) (any, error) {
	c, _ := ctx.Value(callKey{}).(*unaryServerCall)
	if c == nil {
		return nil, errForeignContext
	}
	resp, err := c.handler(ctx, c.req)
	if err == nil {
		return resp, nil
	}
	if failure, pass := verdict(ctx, u.isFailure, err, c.info.FullMethod); !pass {
		return nil, failure
	}
	return &passed{value: resp, err: err}, nil
}

// StreamServerInterceptor returns an interceptor that guards a server's
// streaming handlers with policies, as UnaryServerInterceptor guards unary
// ones: a rejected stream is answered at once, the handler not called, and
// the error the handler returns is counted as UnaryServerInterceptor counts
// a unary handler's. The handler runs under the context the policies give
// it (a Timeout's deadline, say), which its stream's Context returns. A
// stream can be handled once only: a policy that would run the handler a
// second time (a retry) gets an error instead. Give no Timeout with
// ReturnAtDeadline to a stream's guards: it would return while the handler
// goes on using a stream that gRPC has finished. The pipeline is built here,
// once; the policies' values are nil, unless a fallback's.
func StreamServerInterceptor(policies []resilience.Policy[any], opts ...Option) grpc.StreamServerInterceptor {
	c := newConfig(opts)
	c.check("StreamServerInterceptor")
	s := &streamServer{isFailure: c.isFailure}
	s.pipeline = resilience.WrapWith(pipelineTelemetry(c, policies, "leveegrpc.server"),
		resilience.Func[any](s.attempt), policies...)
	return s.intercept
}

type streamServer struct {
	isFailure func(*status.Status) bool
	pipeline  resilience.Func[any]
}

// streamServerCall is one stream a server handles.
type streamServerCall struct {
	srv     any
	stream  grpc.ServerStream
	ctx     context.Context // the stream's, with the call in it
	info    *grpc.StreamServerInfo
	handler grpc.StreamHandler
	ran     atomic.Bool
}

func (s *streamServer) intercept(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	c := &streamServerCall{srv: srv, stream: ss, info: info, handler: handler}
	c.ctx = context.WithValue(ss.Context(), callKey{}, c)
	v, err := s.pipeline(c.ctx)
	switch {
	case err == nil:
		if p, ok := v.(*passed); ok {
			return p.err
		}
		return nil
	case handlerError(err) != nil:
		return handlerError(err)
	case hasStatus(err):
		return err
	}
	rejected := serverError(err)
	if md, ok := pushback(rejected); ok {
		ss.SetTrailer(md)
	}
	return rejected
}

// errHandledTwice is the error of a policy that runs a stream's handler a
// second time: the stream is the client's, and the first run consumed it.
var errHandledTwice = errors.New("leveegrpc: a stream's handler cannot run twice")

// attempt is the function the policies guard: the one run of the handler.
func (s *streamServer) attempt(ctx context.Context) (any, error) {
	c, _ := ctx.Value(callKey{}).(*streamServerCall)
	if c == nil {
		return nil, errForeignContext
	}
	if !c.ran.CompareAndSwap(false, true) {
		return nil, errHandledTwice
	}
	stream := c.stream
	if ctx != c.ctx {
		stream = &contextStream{ServerStream: stream, ctx: ctx}
	}
	err := c.handler(c.srv, stream)
	if err == nil {
		return nil, nil
	}
	if failure, pass := verdict(ctx, s.isFailure, err, c.info.FullMethod); !pass {
		return nil, failure
	}
	return &passed{err: err}, nil
}

// contextStream is a server stream whose Context is the one the policies
// gave the handler.
type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *contextStream) Context() context.Context { return s.ctx }

// handlerError is the handler's own error when the pipeline's error err
// carries one (a failure, even one a timeout wrapped), and nil otherwise.
func handlerError(err error) error {
	if failed, ok := errors.AsType[*StatusError](err); ok {
		return failed.err
	}
	return nil
}

// hasStatus reports whether err carries a gRPC status of its own.
func hasStatus(err error) bool {
	_, ok := errors.AsType[interface {
		error
		GRPCStatus() *status.Status
	}](err)
	return ok
}

// pushback is the trailer that asks the client to wait as the rejection's
// policy said, when it said anything.
func pushback(rejected *rejectedError) (metadata.MD, bool) {
	d, ok := retryAfterOf(rejected.err)
	if !ok {
		return nil, false
	}
	return metadata.Pairs(PushbackKey, formatPushback(d)), true
}
