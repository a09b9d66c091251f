package fallback_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/fallback"
	"github.com/levee-go/levee/resilience"
)

// Errors of uncomparable types (issue 10, point 7): == on them panics at
// run time, and a fallback must not, whether f returns the original error
// ("return the original error unchanged") or another one.

// validationErrors is a slice of errors, as validators return.
type validationErrors []error

func (e validationErrors) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

// fieldErrors is a map type.
type fieldErrors map[string]string

func (e fieldErrors) Error() string { return "invalid fields: " + strings.Join(mapKeys(e), ", ") }

func mapKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// detailError is a comparable struct type holding an uncomparable value:
// == on two of them panics.
type detailError struct {
	msg     string
	details any
}

func (e detailError) Error() string { return e.msg }

func uncomparableErrors() map[string]func() error {
	return map[string]func() error{
		"slice type": func() error {
			return validationErrors{errors.New("name is empty"), errors.New("age is negative")}
		},
		"map type": func() error { return fieldErrors{"name": "empty"} },
		"struct holding a slice": func() error {
			return detailError{msg: "rejected", details: []string{"name", "age"}}
		},
	}
}

// requireSameError requires got to be original itself: the same type, and
// the same value (for a slice or a map, the same backing storage).
func requireSameError(t *testing.T, original, got error) {
	t.Helper()
	require.IsType(t, original, got)
	require.Equal(t, original, got)
	var fbErr *fallback.Error
	require.False(t, errors.As(got, &fbErr), "returned as it is, not wrapped: %v", got)
}

func TestFunc_ReturningAnOriginalErrorOfAnUncomparableTypeReturnsItUnchanged(t *testing.T) {
	t.Parallel()
	for name, newErr := range uncomparableErrors() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			original := newErr()
			get := resilience.Wrap(func(context.Context) (string, error) { return "", original },
				fallback.Func(func(_ context.Context, err error) (string, error) { return "as is", err }))

			var v string
			var err error
			require.NotPanics(t, func() { v, err = get(context.Background()) })

			assert.Equal(t, "as is", v)
			requireSameError(t, original, err)
		})
	}
}

func TestFunc_ReturningAnotherErrorOfAnUncomparableTypeWrapsBoth(t *testing.T) {
	t.Parallel()
	for name, newErr := range uncomparableErrors() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			original, another := newErr(), newErr() // equal in content, not the same value
			get := resilience.Wrap(func(context.Context) (string, error) { return "", original },
				fallback.Func(func(context.Context, error) (string, error) { return "", another }))

			var err error
			require.NotPanics(t, func() { _, err = get(context.Background()) })

			var fbErr *fallback.Error
			require.ErrorAs(t, err, &fbErr, "a failing fallback's error wraps both")
			assert.Equal(t, another, fbErr.Err)
			assert.Equal(t, original, fbErr.Original)
		})
	}
}

// f may take the original error out of its interface (a type assertion) and
// return it: a new interface value, around the same slice or map, is still
// the original error.
func TestFunc_ReturningTheOriginalSliceOrMapAfterATypeAssertionReturnsItUnchanged(t *testing.T) {
	t.Parallel()
	for name, tt := range map[string]struct {
		original error
		unbox    func(error) error
	}{
		"slice type": {
			original: validationErrors{errors.New("name is empty")},
			unbox: func(err error) error {
				ve, _ := err.(validationErrors)
				return ve
			},
		},
		"map type": {
			original: fieldErrors{"name": "empty"},
			unbox: func(err error) error {
				fe, _ := err.(fieldErrors)
				return fe
			},
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			get := resilience.Wrap(func(context.Context) (string, error) { return "", tt.original },
				fallback.Func(func(_ context.Context, err error) (string, error) { return "", tt.unbox(err) }))

			var err error
			require.NotPanics(t, func() { _, err = get(context.Background()) })

			requireSameError(t, tt.original, err)
		})
	}
}
