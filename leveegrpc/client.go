package leveegrpc

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/levee-go/levee/resilience"
)

// UnaryClientInterceptor returns an interceptor that sends each unary call
// of a ClientConn through policies (a breaker, a timeout, a retry...),
// listed outermost first as for resilience.Wrap:
//
//	payments := breaker.New("payments", breaker.WithRetryAfter(time.Minute))
//	conn, err := grpc.NewClient(target,
//		grpc.WithUnaryInterceptor(leveegrpc.UnaryClientInterceptor([]resilience.Policy[any]{
//			breaker.Policy[any](payments),         // rejects at once while payments is down
//			resilience.Timeout[any](2*time.Second), // a slow answer counts as a failure
//		})),
//	)
//
// The pipeline is built here, once, and the policies' values are replies:
// the reply message the caller passed, or the one a fallback answers with.
//
// A call fails, for the policies, when it ends with a status that the
// failure predicate counts (DefaultIsFailure, or WithIsFailure's); such a
// call reaches them as a *StatusError, with the server's pushback
// (grpc-retry-pushback-ms) as its RetryAfter, and reaches the caller as the
// error gRPC returned, unchanged. A status that is no failure (NOT_FOUND,
// say) is a success for the policies and reaches the caller unchanged too.
// A call whose context ends, and a CANCELLED status, are neither: a breaker
// ignores them. Note that a caller's own deadline ends the call's context,
// so a breaker ignores the calls it cuts short: to make slow answers count
// as failures, put a resilience.Timeout in the pipeline, inside the
// breaker.
//
// A call the policies end without an answer from gRPC returns a gRPC status
// error: UNAVAILABLE for a rejection (an open breaker), DEADLINE_EXCEEDED
// or CANCELLED when a timeout or a context ended it; its message is the
// policy's error, its details a google.rpc.RetryInfo when the policy said
// how long to wait, and it wraps the policy's error, so that
// errors.Is(err, breaker.ErrOpen) holds. Such a call sends nothing.
//
// A fallback answers with a reply of its own: a message of the reply's type
// (a proto.Message, or a pointer to the same type), which the interceptor
// copies into the caller's reply. An attempt that runs while another one is
// in flight (a hedge) decodes into a fresh message, so that attempts never
// share one; the interceptor returns once the attempt decoding into the
// caller's reply has returned. When the call returns an error, an attempt
// that a timeout abandoned (ReturnAtDeadline) may still be decoding into the
// reply: as with gRPC itself, read no reply after an error.
//
// The interceptor is safe for concurrent use, as the policies are. A nil
// policy or option panics here, naming it.
func UnaryClientInterceptor(policies []resilience.Policy[any], opts ...Option) grpc.UnaryClientInterceptor {
	c := newConfig(opts)
	c.check("UnaryClientInterceptor")
	u := &unaryClient{isFailure: c.isFailure}
	u.pipeline = resilience.WrapWith(pipelineTelemetry(c, policies, "leveegrpc.client"),
		resilience.Func[any](u.attempt), policies...)
	return u.intercept
}

type unaryClient struct {
	isFailure func(*status.Status) bool
	pipeline  resilience.Func[any]
}

func (u *unaryClient) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	c := &unaryCall{method: method, req: req, reply: reply, cc: cc, invoker: invoker, opts: opts}
	c.ctx = context.WithValue(ctx, callKey{}, c)
	v, err := u.pipeline(c.ctx)
	return c.finish(v, err)
}

// attempt is the function the policies guard: one call of the invoker.
func (u *unaryClient) attempt(ctx context.Context) (any, error) {
	c, _ := ctx.Value(callKey{}).(*unaryCall)
	if c == nil {
		return nil, errForeignContext
	}
	msg, intoReply, err := c.begin()
	if err != nil {
		return nil, err
	}
	md := &c.md // the attempt decoding into the reply owns the call's metadata
	if !intoReply {
		md = new(callMetadata)
	}
	err = c.invoker(ctx, c.method, c.req, msg, c.cc, md.callOptions(c.opts)...)
	header, trailer := md.header, md.trailer
	if intoReply {
		c.releaseReply(err == nil)
	}
	if err == nil {
		if intoReply {
			return c, nil // the caller's reply holds the answer
		}
		return msg, nil
	}
	if failure, pass := verdict(ctx, u.isFailure, err, c.method, trailer, header); !pass {
		return nil, failure
	}
	return &passed{err: err}, nil
}

// errForeignContext is returned by an attempt that a policy called with a
// context not derived from the interceptor's.
var errForeignContext = errors.New("leveegrpc: a policy called the pipeline with a context not derived from the call's")

// errCallEnded is returned by an attempt that starts after its call has
// returned (a retry of an abandoned attempt, say): nothing is sent.
var errCallEnded = errors.New("leveegrpc: the call already returned")

// unaryCall is one unary call: what the invoker needs, and who is decoding
// into the caller's reply.
type unaryCall struct {
	ctx     context.Context // the caller's, with the call in it
	method  string
	req     any
	reply   any
	cc      *grpc.ClientConn
	invoker grpc.UnaryInvoker
	opts    []grpc.CallOption

	md callMetadata // for the attempt decoding into reply

	mu        sync.Mutex
	replyBusy bool          // an attempt is decoding into reply
	replyDone bool          // an attempt has decoded its answer into reply
	replyFree chan struct{} // closed when replyBusy ends, made by whoever waits for it
	ended     bool
}

// callMetadata is where an attempt's header and trailer are written, for
// the pushback they may hold, and the call options that write them there
// after the caller's own (room for a few, so that a call allocates none).
type callMetadata struct {
	header, trailer metadata.MD
	opts            [6]grpc.CallOption
}

func (m *callMetadata) callOptions(callers []grpc.CallOption) []grpc.CallOption {
	// gRPC writes them only once the attempt has a stream: an attempt
	// that fails before must not read an earlier attempt's pushback.
	m.header, m.trailer = nil, nil
	return append(append(m.opts[:0], callers...), grpc.Header(&m.header), grpc.Trailer(&m.trailer))
}

// begin starts an attempt and returns the message it decodes into: the
// caller's reply, unless another attempt is decoding into it or has decoded
// its answer there.
func (c *unaryCall) begin() (msg any, intoReply bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.ended:
		return nil, false, errCallEnded
	case !c.replyBusy && !c.replyDone:
		c.replyBusy = true
		return c.reply, true, nil
	}
	if msg = freshMessage(c.reply); msg == nil {
		return nil, false, fmt.Errorf("leveegrpc: a second attempt cannot run while the first decodes into the reply: cannot make a fresh %T", c.reply)
	}
	return msg, false, nil
}

// releaseReply ends an attempt's hold on the caller's reply; answered
// keeps its answer there.
func (c *unaryCall) releaseReply(answered bool) {
	c.mu.Lock()
	c.replyBusy = false
	c.replyDone = answered
	if c.replyFree != nil {
		close(c.replyFree)
		c.replyFree = nil
	}
	c.mu.Unlock()
}

// finish ends the call: the error the caller gets, once the answer the
// policies returned is in the caller's reply.
func (c *unaryCall) finish(v any, err error) error {
	c.mu.Lock()
	c.ended = true
	c.mu.Unlock()
	if err != nil {
		return clientError(err)
	}
	switch v := v.(type) {
	case *unaryCall:
		if v == c {
			return nil
		}
	case *passed:
		return v.err
	case nil:
		return status.Error(codes.Internal, "leveegrpc: the policies returned no reply and no error")
	}
	// A fresh message or a fallback's answer: wait until no attempt is
	// decoding into the reply any more, and copy it there.
	c.mu.Lock()
	for c.replyBusy {
		if c.replyFree == nil {
			c.replyFree = make(chan struct{})
		}
		free := c.replyFree
		c.mu.Unlock()
		<-free
		c.mu.Lock()
	}
	c.mu.Unlock()
	return copyReply(c.reply, v)
}

// freshMessage returns a new, empty message of reply's type, or nil when
// reply is not a pointer.
func freshMessage(reply any) any {
	if m, ok := reply.(proto.Message); ok {
		return m.ProtoReflect().New().Interface()
	}
	t := reflect.TypeOf(reply)
	if t == nil || t.Kind() != reflect.Pointer {
		return nil
	}
	return reflect.New(t.Elem()).Interface()
}

// copyReply writes the answer v into the caller's reply: a proto.Message of
// the reply's kind is merged into the reset reply; a pointer of the reply's
// type, or a value of the type it points to, is copied into it.
func copyReply(reply, v any) error {
	if dst, ok := reply.(proto.Message); ok {
		if src, ok := v.(proto.Message); ok && src.ProtoReflect().Descriptor().FullName() == dst.ProtoReflect().Descriptor().FullName() {
			proto.Reset(dst)
			proto.Merge(dst, src)
			return nil
		}
	} else if dst := reflect.ValueOf(reply); dst.Kind() == reflect.Pointer && !dst.IsNil() {
		src := reflect.ValueOf(v)
		switch {
		case src.Type() == dst.Type() && !src.IsNil():
			dst.Elem().Set(src.Elem())
			return nil
		case src.Type() == dst.Type().Elem():
			dst.Elem().Set(src)
			return nil
		}
	}
	return status.Errorf(codes.Internal, "leveegrpc: the policies answered with a %T, which cannot be written into the reply, a %T", v, reply)
}
