package throttle

import (
	"errors"
	"strconv"

	"github.com/levee-go/levee/telemetry"
)

// ErrThrottled matches every call a throttle refused:
// errors.Is(err, ErrThrottled) holds.
var ErrThrottled = errors.New("levee: throttled")

// throttledError is the error of a refused call. A throttle makes its one
// value when it is created, so a rejection allocates nothing.
type throttledError struct{ name string }

func (e *throttledError) Error() string {
	return "levee: throttle " + strconv.Quote(e.name) + " refused the call: its dependency is refusing calls"
}

// Is reports whether target is ErrThrottled.
func (e *throttledError) Is(target error) bool { return target == ErrThrottled }

// ErrorType names the error for telemetry: "throttled".
func (e *throttledError) ErrorType() string { return telemetry.ErrorTypeThrottled }

// errNilFunc refuses Call(ctx, nil): a programming error, not a decision.
var errNilFunc = errors.New("levee: throttle.Call: fn must not be nil")
