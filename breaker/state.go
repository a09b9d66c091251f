package breaker

import (
	"strconv"

	"github.com/levee-go/levee/telemetry"
)

// State is a circuit breaker's state. The zero value is Closed.
type State int32

const (
	// Closed lets every call through and counts them for the trip rule.
	Closed State = iota
	// Open rejects every call at once, without running it, until the open
	// timeout has passed.
	Open
	// HalfOpen lets probe calls through, one at a time by default: their
	// success closes the breaker, a failure opens it again.
	HalfOpen
)

// String returns "closed", "open" or "half-open".
func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// telemetryValue is the state as the levee.circuit_breaker.* attributes
// spell it ("half_open", with an underscore, as attribute values do).
func (s State) telemetryValue() string {
	switch s {
	case Closed:
		return telemetry.StateClosed
	case Open:
		return telemetry.StateOpen
	case HalfOpen:
		return telemetry.StateHalfOpen
	}
	return s.String()
}

var allStates = [...]State{Closed, Open, HalfOpen}
