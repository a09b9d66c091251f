package resilience

import (
	"context"
	"strconv"
	"time"

	"github.com/levee-go/levee/telemetry"
)

// ErrTimeout is the error of a call whose Timeout fired. Test for it with
// errors.Is(err, ErrTimeout); errors.Is(err, context.DeadlineExceeded) holds
// too, so code written for plain context deadlines keeps working.
var ErrTimeout error = timeoutSentinel{}

type timeoutSentinel struct{}

func (timeoutSentinel) Error() string        { return "levee: timeout exceeded" }
func (timeoutSentinel) Is(target error) bool { return target == context.DeadlineExceeded }

// Timeout reports true, as net.Error does for timeouts.
func (timeoutSentinel) Timeout() bool { return true }

// ErrorType names the error for telemetry: "timeout".
func (timeoutSentinel) ErrorType() string { return telemetry.ErrorTypeTimeout }

// timeoutError is returned when a Timeout's deadline fires. It matches
// ErrTimeout and context.DeadlineExceeded, and wraps what the function
// returned (when it returned), so errors.Is/As still reach the user's own
// error.
type timeoutError struct {
	name    string
	timeout time.Duration
	err     error // the function's own error; nil when it was abandoned
}

func (e *timeoutError) Error() string {
	msg := "levee: timeout " + strconv.Quote(e.name) + " exceeded after " + e.timeout.String()
	if e.err != nil && e.err != context.DeadlineExceeded {
		msg += ": " + e.err.Error()
	}
	return msg
}

func (e *timeoutError) Is(target error) bool {
	return target == ErrTimeout || target == context.DeadlineExceeded
}

func (e *timeoutError) Unwrap() error     { return e.err }
func (e *timeoutError) Timeout() bool     { return true }
func (e *timeoutError) ErrorType() string { return telemetry.ErrorTypeTimeout }
