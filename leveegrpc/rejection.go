package leveegrpc

import (
	"context"
	"errors"
	"math"
	"time"

	"go.opentelemetry.io/otel"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/levee-go/levee/bulkhead"
	"github.com/levee-go/levee/ratelimit"
	"github.com/levee-go/levee/telemetry"
)

// rejectedError is the gRPC status error of a call that the policies ended
// without an answer from gRPC: a breaker's rejection, a timeout that
// abandoned the call, the caller's context ending before the call began.
// Its status carries the code and, when the policy said how long to wait, a
// google.rpc.RetryInfo; it wraps the policy's error, so that
// errors.Is(err, breaker.ErrOpen) and errors.As to a *breaker.OpenError
// still hold.
type rejectedError struct {
	code   codes.Code
	err    error // the policy's error
	server bool  // a server's answer, whose message names no policy
}

// message is the status's message: the policy's error on a client; on a
// server, the kind of rejection ("levee: rejected: circuit_open"). It is
// made when asked for, not on every rejection.
func (e *rejectedError) message() string {
	if e.server {
		return "levee: rejected: " + telemetry.ErrorType(e.err)
	}
	return e.err.Error()
}

// Error reads as a gRPC status error does: "rpc error: code = Unavailable
// desc = levee: circuit breaker "payments" is open".
func (e *rejectedError) Error() string {
	return "rpc error: code = " + e.code.String() + " desc = " + e.message()
}

// GRPCStatus returns the status the call ends with, for status.FromError,
// status.Code and, on a server, for gRPC to send.
func (e *rejectedError) GRPCStatus() *status.Status {
	s := status.New(e.code, e.message())
	if d, ok := retryAfterOf(e.err); ok {
		if withInfo, err := s.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(d)}); err == nil {
			return withInfo
		}
	}
	return s
}

// Unwrap returns the policy's error.
func (e *rejectedError) Unwrap() error { return e.err }

// ErrorType names the error for telemetry as the policy's error does
// ("circuit_open").
func (e *rejectedError) ErrorType() string { return telemetry.ErrorType(e.err) }

// clientError is what a client interceptor returns for the pipeline's error
// err: the error gRPC returned when err carries one (a failure, even one a
// retry or a timeout wrapped), err itself when it is a status error already
// (a fallback's own), and otherwise a rejectedError, UNAVAILABLE, or
// CANCELLED or DEADLINE_EXCEEDED when a context ended.
func clientError(err error) error {
	if failed, ok := errors.AsType[*StatusError](err); ok {
		return failed.err
	}
	if hasStatus(err) {
		return err
	}
	code := codes.Unavailable
	if c, ok := contextCode(err); ok {
		code = c
	}
	return &rejectedError{code: code, err: err}
}

// serverError is what a server interceptor answers when the policies
// refused to run the handler with err: RESOURCE_EXHAUSTED for a full
// bulkhead or a rate limit, CANCELLED or DEADLINE_EXCEEDED when a context
// ended, UNAVAILABLE for the rest (an open breaker, a throttle). The
// message names the kind of rejection ("levee: rejected: circuit_open")
// and never a policy's name, which is the server's business.
//
// The kind is told by the policies' sentinel errors, their contract, and
// not by error.type, a telemetry value: errors.Is sees through every
// wrapper, one that names its own error.type included.
func serverError(err error) *rejectedError {
	code := codes.Unavailable
	if c, ok := contextCode(err); ok {
		code = c
	} else if errors.Is(err, bulkhead.ErrFull) || errors.Is(err, ratelimit.ErrLimited) {
		code = codes.ResourceExhausted
	}
	return &rejectedError{code: code, err: err, server: true}
}

// contextCode is the code of an error that a context ending caused,
// levee's ErrTimeout included.
func contextCode(err error) (codes.Code, bool) {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded, true
	case errors.Is(err, context.Canceled):
		return codes.Canceled, true
	}
	return codes.OK, false
}

// retryAfterOf is the delay err asks for through a RetryAfter method in its
// tree (a breaker's OpenError, a rate limit's rejection), rounded up to a
// whole millisecond and at least 1 ms: the wire counts in milliseconds, and
// a breaker whose probe is in flight (RetryAfter 0) still asks the client to
// back off. A RetryAfter method that panics is no hint; the panic is
// reported to otel.Handle.
func retryAfterOf(err error) (d time.Duration, ok bool) {
	hint, found := errors.AsType[interface {
		error
		RetryAfter() time.Duration
	}](err)
	if !found {
		return 0, false
	}
	defer func() {
		if v := recover(); v != nil {
			otel.Handle(panicError{v})
			d, ok = 0, false
		}
	}()
	d = hint.RetryAfter()
	return wholeMillis(d), true
}

// wholeMillis is d rounded up to a whole millisecond, at least 1 ms (and
// rounded down where rounding up would overflow).
func wholeMillis(d time.Duration) time.Duration {
	if d < time.Millisecond {
		return time.Millisecond
	}
	rest := d % time.Millisecond
	if rest == 0 || d > math.MaxInt64-time.Millisecond {
		return d - rest
	}
	return d - rest + time.Millisecond
}

// panicError reports a panic of a RetryAfter method to otel.Handle.
type panicError struct{ value any }

func (e panicError) Error() string {
	return "levee: leveegrpc: the RetryAfter method of a rejection panicked"
}
