package ratelimit

import (
	"errors"
	"strconv"
	"time"

	"github.com/levee-go/levee/internal/limited"
	"github.com/levee-go/levee/telemetry"
)

// ErrLimited matches every call a rate limit refused:
// errors.Is(err, ErrLimited) holds for each *LimitedError. Use errors.As to
// get the *LimitedError and its RetryAfter. A call whose own context ended
// while it waited gets the context's error instead.
var ErrLimited = errors.New("levee: rate limit exceeded")

// LimitedError is the error of a call a rate limit refused without running
// it. It matches ErrLimited, and says when a token will be there.
type LimitedError struct {
	name       string
	retryAfter time.Duration
}

// Name returns the name of the limiter that refused the call.
func (e *LimitedError) Name() string { return e.name }

// RetryAfter returns how long after the refusal the next token comes, for
// the call's key when the limiter is keyed: a call made that long after the
// refused one gets a token, unless other calls take it first. It is exact to
// the nanosecond and never rounded down; it is what an HTTP server puts in
// its Retry-After header, rounded up to whole seconds.
func (e *LimitedError) RetryAfter() time.Duration { return e.retryAfter }

// Error says which limit refused the call, and when to retry.
func (e *LimitedError) Error() string {
	return "levee: rate limit " + strconv.Quote(e.name) + " exceeded, retry after " + e.retryAfter.String()
}

// Is reports whether target is ErrLimited.
func (e *LimitedError) Is(target error) bool { return target == ErrLimited }

// ErrorType names the error for telemetry: "rate_limited".
func (e *LimitedError) ErrorType() string { return telemetry.ErrorTypeRateLimited }

// errNilFunc refuses Call(ctx, nil): a programming error, not a decision.
var errNilFunc = errors.New("levee: ratelimit.Call: fn must not be nil")

// The fleet limiter of leveeredis refuses with this package's error.
func init() {
	limited.NewError = func(name string, retryAfter time.Duration) error {
		return &LimitedError{name: name, retryAfter: retryAfter}
	}
}
