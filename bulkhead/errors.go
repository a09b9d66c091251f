package bulkhead

import (
	"errors"
	"strconv"
	"time"

	"github.com/levee-go/levee/telemetry"
)

// ErrFull matches every call a bulkhead refused: errors.Is(err, ErrFull)
// holds whether the call was rejected at once or waited until its maximum
// wait passed. A call whose own context ended gets the context's error
// instead.
var ErrFull = errors.New("levee: bulkhead is full")

// fullError is the error of a refused call. A bulkhead makes its two values
// (at once, after the maximum wait) when it is created, so a rejection
// allocates nothing.
type fullError struct {
	name    string
	maxWait time.Duration // 0: rejected at once
}

func (e *fullError) Error() string {
	msg := "levee: bulkhead " + strconv.Quote(e.name) + " is full"
	if e.maxWait > 0 {
		msg += ": no slot within " + e.maxWait.String()
	}
	return msg
}

// Is reports whether target is ErrFull.
func (e *fullError) Is(target error) bool { return target == ErrFull }

// ErrorType names the error for telemetry: "bulkhead_full".
func (e *fullError) ErrorType() string { return telemetry.ErrorTypeBulkheadFull }

// errNilFunc refuses Call(ctx, nil): a programming error, not a decision.
var errNilFunc = errors.New("levee: bulkhead.Call: fn must not be nil")
