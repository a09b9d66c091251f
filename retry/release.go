package retry

import "github.com/levee-go/levee/internal/emit"

// releasable is an error that holds a resource it can let go of when the
// retry moves past it: leveehttp's error for a failing response, whose
// body it closes.
type releasable interface {
	error
	Release()
}

// release calls the Release method of every error in err's tree that has
// one, in the order errors.As walks the tree: an error that appears twice
// is released twice, so Release must be idempotent. A Release method that
// panics is reported to otel.Handle.
func release(err error) {
	switch e := err.(type) {
	case nil:
		return
	case releasable:
		emit.Guard("retry: the Release method of an error", e.Release)
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		release(u.Unwrap())
	case interface{ Unwrap() []error }:
		for _, inner := range u.Unwrap() {
			release(inner)
		}
	}
}
