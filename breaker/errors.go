package breaker

import (
	"errors"
	"time"

	"github.com/levee-go/levee/telemetry"
)

// ErrOpen matches every rejection by a circuit breaker:
// errors.Is(err, ErrOpen) holds for each *OpenError. Use errors.As to get
// the *OpenError and its RetryAfter.
var ErrOpen = errors.New("levee: circuit breaker is open")

// OpenError is the error of a call a breaker rejected without running it.
// It matches ErrOpen. All rejections of one open (or half-open) period share
// one OpenError value, so a rejection allocates nothing: treat it as
// read-only.
type OpenError struct {
	// Name is the breaker's name.
	Name string
	// State is the state that rejected the call: Open, or HalfOpen while
	// the probe is in flight.
	State State
	// Until is when an open breaker lets a probe through. It is zero while
	// the breaker is held open by ForceOpen, and the moment the breaker
	// became half-open for a half-open rejection.
	Until time.Time

	forced      bool
	openTimeout time.Duration
	now         func() time.Time
}

// Error says which breaker rejected the call and why.
func (e *OpenError) Error() string {
	switch {
	case e.forced:
		return "levee: circuit breaker " + quote(e.Name) + " is forced open"
	case e.State == HalfOpen:
		return "levee: circuit breaker " + quote(e.Name) + " is half-open and its probe is in flight"
	}
	return "levee: circuit breaker " + quote(e.Name) + " is open"
}

// Is reports whether target is ErrOpen.
func (e *OpenError) Is(target error) bool { return target == ErrOpen }

// ErrorType names the error for telemetry: "circuit_open".
func (e *OpenError) ErrorType() string { return telemetry.ErrorTypeCircuitOpen }

// RetryAfter returns how long until the breaker lets a probe through: the
// time left of the open timeout, read from the breaker's clock, and 0 once it
// has passed or while a half-open probe is in flight. While the breaker is
// held open by ForceOpen no probe is scheduled; RetryAfter then returns the
// breaker's open timeout as a hint. It is meant for Retry-After headers and
// client back-off.
func (e *OpenError) RetryAfter() time.Duration {
	if e.forced {
		return e.openTimeout
	}
	if e.Until.IsZero() || e.now == nil {
		return 0
	}
	if d := e.Until.Sub(e.now()); d > 0 {
		return d
	}
	return 0
}

func quote(s string) string { return `"` + s + `"` }
