package breaker

import (
	"errors"
	"strconv"
	"time"

	"github.com/levee-go/levee/telemetry"
)

// ErrOpen matches every rejection by a circuit breaker:
// errors.Is(err, ErrOpen) holds for each *OpenError. Use errors.As to get
// the *OpenError and its RetryAfter.
var ErrOpen = errors.New("levee: circuit breaker is open")

// OpenError is the error of a call a breaker rejected without running it.
// It matches ErrOpen. All rejections of one open (or half-open) period share
// one OpenError value, so a rejection allocates nothing; it has no exported
// fields, and its methods only read, so sharing it is safe.
type OpenError struct {
	name        string
	state       State
	until       time.Time
	forced      bool
	openTimeout time.Duration
	probes      int // HalfOpen: the probes the period lets through at once
}

// Name returns the name of the breaker that rejected the call.
func (e *OpenError) Name() string { return e.name }

// State returns the state that rejected the call: Open, or HalfOpen while
// as many probes as it lets through at once (WithHalfOpen) are in flight.
func (e *OpenError) State() State { return e.state }

// Until returns when the breaker lets a probe through: the end of the open
// period for an open breaker, the moment the breaker became half-open for a
// half-open rejection, and the zero time while the breaker is held open by
// ForceOpen (no probe is scheduled).
func (e *OpenError) Until() time.Time { return e.until }

// Error says which breaker rejected the call and why.
func (e *OpenError) Error() string {
	switch {
	case e.forced:
		return "levee: circuit breaker " + strconv.Quote(e.name) + " is forced open"
	case e.state == HalfOpen && e.probes > 1:
		return "levee: circuit breaker " + strconv.Quote(e.name) + " is half-open and its " + strconv.Itoa(e.probes) + " probes are in flight"
	case e.state == HalfOpen:
		return "levee: circuit breaker " + strconv.Quote(e.name) + " is half-open and its probe is in flight"
	}
	return "levee: circuit breaker " + strconv.Quote(e.name) + " is open"
}

// Is reports whether target is ErrOpen.
func (e *OpenError) Is(target error) bool { return target == ErrOpen }

// ErrorType names the error for telemetry: "circuit_open".
func (e *OpenError) ErrorType() string { return telemetry.ErrorTypeCircuitOpen }

// RetryAfter returns how long until the breaker lets a probe through: the
// time left of the open period, and 0 once it has passed or while the
// half-open probes are in flight. While the breaker is held open by ForceOpen
// no probe is scheduled; RetryAfter then returns the breaker's open timeout
// as a hint. It is meant for Retry-After headers and client back-off, and
// reads the clock.
func (e *OpenError) RetryAfter() time.Duration {
	if e.forced {
		return e.openTimeout
	}
	if e.until.IsZero() {
		return 0
	}
	return max(time.Until(e.until), 0)
}

// Ignored marks err as telling nothing about the dependency: a breaker
// counts a call that returns it as neither success nor failure, as it does a
// call whose caller's context ended (in HalfOpen it frees the probe slot).
// It is for integrations that know better than the error's type, such as a
// server handler whose client went away. errors.Is and errors.As see
// through it to err; its message is err's. Ignored(nil) is nil.
func Ignored(err error) error {
	if err == nil {
		return nil
	}
	return &ignoredError{err: err}
}

type ignoredError struct{ err error }

func (e *ignoredError) Error() string { return e.err.Error() }
func (e *ignoredError) Unwrap() error { return e.err }

func isMarkedIgnored(err error) bool {
	_, ok := errors.AsType[*ignoredError](err)
	return ok
}
