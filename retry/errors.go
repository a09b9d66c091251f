package retry

import (
	"errors"
	"strconv"

	"github.com/levee-go/levee/internal/emit"
	"github.com/levee-go/levee/telemetry"
)

// ErrBudgetExhausted matches the error of a call whose retry the budget
// refused (see WithBudget): errors.Is(err, ErrBudgetExhausted) holds, and
// the last attempt's error is reachable with errors.Is and errors.As too.
var ErrBudgetExhausted = errors.New("levee: retry budget exhausted")

// Permanent marks err as not worth retrying: a retry policy with the
// default predicate returns it at once. The result wraps err, so errors.Is
// and errors.As see through it, and has err's message; Permanent(nil) is
// nil.
//
//	if resp.StatusCode == http.StatusBadRequest {
//		return nil, retry.Permanent(fmt.Errorf("bad request: %s", body))
//	}
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string   { return e.err.Error() }
func (e *permanentError) Unwrap() error   { return e.err }
func (e *permanentError) Permanent() bool { return true }

// ErrorType names the error for telemetry as the error it wraps: marking an
// error permanent does not change its error.type.
func (e *permanentError) ErrorType() string { return telemetry.ErrorType(e.err) }

// permanence is an error that says whether it is worth retrying: any error
// type can declare itself permanent with a Permanent() bool method, as
// Permanent's wrapper does.
type permanence interface {
	error
	Permanent() bool
}

// IsPermanent reports whether err is marked permanent: the first error in
// its tree (as errors.As walks it) with a method
//
//	Permanent() bool
//
// returns true. Permanent's result is one; an error type of your own can be
// one too, by declaring the method, and a type that returns false from it
// hides the errors it wraps from this test. The default retry predicate
// retries every error that is not permanent. A Permanent method that
// panics counts as false: the panic is reported to otel.Handle.
func IsPermanent(err error) (permanent bool) {
	p, ok := errors.AsType[permanence](err)
	if !ok {
		return false
	}
	emit.Guard("retry: the Permanent method of an error", func() { permanent = p.Permanent() })
	return permanent
}

// Why a call stopped retrying with an error still worth retrying. The
// first four are the values of the levee.retry.reason attribute.
const (
	stopMaxAttempts = telemetry.RetryReasonMaxAttempts
	stopMaxDuration = telemetry.RetryReasonMaxDuration
	stopDeadline    = telemetry.RetryReasonDeadline
	stopMaxDelay    = telemetry.RetryReasonMaxDelay
	stopBudget      = "budget"
	stopCanceled    = "canceled"
)

// Error is the error of a call that stopped retrying while its last error
// was still worth retrying: its attempts ran out, the next delay (or a
// RetryAfter hint) would have passed the caller's deadline, WithMaxDuration
// or the maximum delay, the budget refused the retry, or the caller's
// context ended while the call waited to retry. It says how many attempts
// were made and wraps the last attempt's error, so that errors.Is and
// errors.As find it; when the budget refused, it matches ErrBudgetExhausted
// too, and when the caller's context ended, that context's error.
//
// An error that is not worth retrying (a permanent one, one If declines, or
// one that came with the caller's context ended during an attempt) is
// returned as it is, never wrapped.
type Error struct {
	// Name is the name the retry reports under: its pipeline's.
	Name string
	// Attempts is how many attempts were made, the first included.
	Attempts int
	// Err is the last attempt's error.
	Err error

	stop  string
	cause error // ErrBudgetExhausted, or the caller's context's error
}

// Error says how many attempts were made, why the retries stopped and what
// the last attempt's error was.
func (e *Error) Error() string {
	msg := "levee: retry " + strconv.Quote(e.Name) + ": "
	attempts := attemptsString(e.Attempts)
	switch e.stop {
	case stopMaxDuration:
		msg += "stopped after " + attempts + ": the next retry would start past the maximum duration"
	case stopDeadline:
		msg += "stopped after " + attempts + ": the next retry would start past the caller's deadline"
	case stopMaxDelay:
		msg += "stopped after " + attempts + ": the error asks to wait longer than the maximum delay"
	case stopBudget:
		msg += "retry budget exhausted after " + attempts
	case stopCanceled:
		msg += "gave up waiting to retry after " + attempts + ": " + e.cause.Error()
	default:
		msg += "gave up after " + attempts
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the last attempt's error and, when the budget refused or
// the caller's context ended, ErrBudgetExhausted or the context's error.
func (e *Error) Unwrap() []error {
	if e.cause != nil {
		return []error{e.Err, e.cause}
	}
	return []error{e.Err}
}

// attemptsString is "1 attempt", "2 attempts", ...
func attemptsString(n int) string {
	if n == 1 {
		return "1 attempt"
	}
	return strconv.Itoa(n) + " attempts"
}
