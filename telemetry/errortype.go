package telemetry

import (
	"context"
	"errors"
	"fmt"
	"reflect"
)

// Values of KeyErrorType that do not come from an error's Go type.
const (
	// ErrorTypeTimeout: a timeout fired (levee's ErrTimeout, or
	// context.DeadlineExceeded).
	ErrorTypeTimeout = "timeout"
	// ErrorTypeCircuitOpen: a circuit breaker rejected the call.
	ErrorTypeCircuitOpen = "circuit_open"
	// ErrorTypeCanceled: the context was canceled (context.Canceled).
	ErrorTypeCanceled = "canceled"
	// ErrorTypeBulkheadFull: a bulkhead refused the call (ErrFull).
	ErrorTypeBulkheadFull = "bulkhead_full"
	// ErrorTypeRateLimited: a rate limit refused the call (ErrLimited).
	ErrorTypeRateLimited = "rate_limited"
	// ErrorTypeThrottled: an adaptive throttle rejected the call
	// (ErrThrottled).
	ErrorTypeThrottled = "throttled"
	// ErrorTypeOther is the semantic conventions' value when there is no
	// error to name: ErrorType(nil).
	ErrorTypeOther = "_OTHER"
)

// ErrorTyper is implemented by errors that name their own error.type. The
// value must come from a small fixed set (a constant per type, say): it
// becomes a metric attribute. levee's own errors implement it.
type ErrorTyper interface {
	ErrorType() string
}

// typedError is an error that names its own error.type.
type typedError interface {
	error
	ErrorTyper
}

// ErrorType returns the bounded error.type value for err, following the
// OpenTelemetry semantic conventions and agreeing with their Go helper
// (semconv.ErrorType) wherever levee has no better value:
//   - the ErrorType() of the first error in err's tree that implements
//     ErrorTyper and names a value ("timeout" for levee's timeouts,
//     "circuit_open" for a breaker's rejections);
//   - "timeout" for context.DeadlineExceeded and "canceled" for
//     context.Canceled, where the helper would name their unexported types;
//   - otherwise the error's Go type, looking through fmt.Errorf's single %w
//     wrapper: "*net.OpError", "*errors.errorString" for errors.New,
//     "example.com/app.NotFound" for a named value type;
//   - "_OTHER" for a nil error.
//
// A program has finitely many error types, so the value's cardinality is
// bounded; an error message never becomes an attribute. Safe for concurrent
// use. It allocates nothing, except the joined name of a named value type.
func ErrorType(err error) string {
	if err == nil {
		return ErrorTypeOther
	}
	// errors.AsType, not errors.As: As makes its target escape, which
	// costs an allocation on every call.
	if typed, ok := errors.AsType[typedError](err); ok {
		if s := typed.ErrorType(); s != "" {
			return s
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return ErrorTypeTimeout
	case errors.Is(err, context.Canceled):
		return ErrorTypeCanceled
	}
	t := reflect.TypeOf(unwrapFmtWrapped(err))
	if pkg, name := t.PkgPath(), t.Name(); pkg != "" && name != "" {
		return pkg + "." + name
	}
	return t.String()
}

var fmtWrapErrorType = reflect.TypeOf(fmt.Errorf("%w", errors.New("x")))

// unwrapFmtWrapped looks through fmt.Errorf's single-%w wrappers, as the
// semantic conventions' helper does.
func unwrapFmtWrapped(err error) error {
	for reflect.TypeOf(err) == fmtWrapErrorType {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
	return err
}
