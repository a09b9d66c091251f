package telemetry

import (
	"context"
	"errors"
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
	// ErrorTypeOther: an error with nothing bounded to tell it by: a plain
	// errors.New or fmt.Errorf value, or one whose type has no name.
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

// ErrorType returns the bounded error.type value for err, in this order:
//   - "" for a nil error;
//   - the ErrorType() of the first error in err's tree that implements
//     ErrorTyper ("timeout" for levee's timeouts, "circuit_open" for a
//     breaker's rejections);
//   - "timeout" for context.DeadlineExceeded, "canceled" for
//     context.Canceled;
//   - otherwise the Go type name of err, looking through the wrappers that
//     fmt.Errorf and errors.Join make ("*net.OpError", "*myapp.NotFound"),
//     or "_OTHER" where that is a plain string error or an unnamed type.
//
// A program has finitely many error types, so the value's cardinality is
// bounded; an error message never becomes an attribute. Safe for concurrent
// use, and allocates nothing; levee still calls it only on rare paths
// (fallbacks, timeouts), as it walks the error's tree.
func ErrorType(err error) string {
	if err == nil {
		return ""
	}
	// errors.AsType, not errors.As: As makes its target escape, which
	// costs an allocation on every call.
	if typed, ok := errors.AsType[typedError](err); ok {
		return typed.ErrorType()
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return ErrorTypeTimeout
	case errors.Is(err, context.Canceled):
		return ErrorTypeCanceled
	}
	return goTypeName(err)
}

var (
	typeFmtWrap    = reflect.TypeOf(fmtWrapError())
	typeFmtWraps   = reflect.TypeOf(fmtWrapErrors())
	typeJoin       = reflect.TypeOf(errors.Join(errors.New("a"), errors.New("b")))
	typeErrorsNew  = reflect.TypeOf(errors.New(""))
	typeFmtNoWrap  = reflect.TypeOf(fmtPlainError())
	plainWrapTypes = map[reflect.Type]bool{typeFmtWrap: true, typeFmtWraps: true, typeJoin: true}
)

// goTypeName names err by its Go type, skipping the anonymous wrappers of
// the standard library so that fmt.Errorf("...: %w", netErr) is named for
// netErr.
func goTypeName(err error) string {
	for {
		t := reflect.TypeOf(err)
		if !plainWrapTypes[t] {
			return typeName(t)
		}
		var next error
		switch w := err.(type) {
		case interface{ Unwrap() error }:
			next = w.Unwrap()
		case interface{ Unwrap() []error }:
			if errs := w.Unwrap(); len(errs) > 0 {
				next = errs[0]
			}
		}
		if next == nil {
			return ErrorTypeOther
		}
		err = next
	}
}

func typeName(t reflect.Type) string {
	if t == typeErrorsNew || t == typeFmtNoWrap {
		return ErrorTypeOther
	}
	name := t.String()
	if name == "" || t.Name() == "" && (t.Kind() != reflect.Pointer || t.Elem().Name() == "") {
		return ErrorTypeOther
	}
	return name
}
