package retry

import (
	"errors"
	"time"

	"github.com/levee-go/levee/internal/emit"
)

type backoffKind uint8

const (
	fullJitter backoffKind = iota
	constantDelay
	decorrelatedJitter
)

// backoff is how long a call waits before each retry.
type backoff struct {
	kind    backoffKind
	initial time.Duration
	// max is the ceiling of every delay, and the longest RetryAfter hint
	// waited for.
	max time.Duration
}

// delay returns the delay before retry number retry (1 before the second
// attempt), given the previous delay drawn (for decorrelated jitter).
func (b backoff) delay(retry int, previous time.Duration, random *lockedRand) time.Duration {
	switch b.kind {
	case constantDelay:
		return b.initial
	case decorrelatedJitter:
		low := b.initial
		high := b.max
		if previous <= 0 {
			previous = b.initial
		}
		if previous < high/3 {
			high = 3 * previous
		}
		return low + time.Duration(random.int64N(int64(high-low)+1))
	}
	return time.Duration(random.int64N(int64(b.ceiling(retry)) + 1))
}

// ceiling is the largest delay full jitter may draw before retry number
// retry: min(max, initial·2^(retry-1)), without overflowing.
func (b backoff) ceiling(retry int) time.Duration {
	shift := retry - 1
	if shift >= 62 || b.initial > b.max>>shift {
		return b.max
	}
	return b.initial << shift
}

// retryAfterHint is an error that says how long to wait before trying
// again: leveehttp's response errors for a 429 or 503, a breaker's
// OpenError, a rate limiter's rejection.
type retryAfterHint interface {
	error
	RetryAfter() time.Duration
}

// hintOf returns the RetryAfter hint of the first error in err's tree that
// has one, and whether there is one. A hint that is not positive is none. A
// RetryAfter method that panics gives no hint: the panic is reported to
// otel.Handle.
func hintOf(err error) (hint time.Duration, ok bool) {
	h, found := errors.AsType[retryAfterHint](err)
	if !found {
		return 0, false
	}
	emit.Guard("retry: the RetryAfter method of an error", func() { hint = h.RetryAfter() })
	return hint, hint > 0
}
