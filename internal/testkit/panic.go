package testkit

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// PanicMessage runs f and returns the string it panicked with. It fails the
// test if f does not panic, or panics with a value that is not a string.
func PanicMessage(t testing.TB, f func()) (msg string) {
	t.Helper()
	defer func() {
		r := recover()
		require.NotNil(t, r, "expected a panic")
		s, ok := r.(string)
		require.True(t, ok, "panic value %#v is not a string", r)
		msg = s
	}()
	f()
	return ""
}
