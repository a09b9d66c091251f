package testkit

import (
	"github.com/stretchr/testify/require"
)

// TB is the part of testing.TB that PanicMessage uses; *testing.T and
// *testing.B satisfy it.
type TB interface {
	Helper()
	require.TestingT
}

// PanicMessage runs f and returns the string it panicked with. It fails the
// test if f does not panic, or panics with a value that is not a string.
func PanicMessage(t TB, f func()) (msg string) {
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
