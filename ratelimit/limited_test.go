package ratelimit_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/internal/limited"
	"github.com/levee-go/levee/ratelimit"
)

// The hook leveeredis's fleet limiter refuses through gives this package's
// own error, so that callers cannot tell a fleet's refusal from a local one.
func TestLimitedNewError_IsALimitedError(t *testing.T) {
	err := limited.NewError("api", 1500*time.Millisecond)
	require.ErrorIs(t, err, ratelimit.ErrLimited)
	var le *ratelimit.LimitedError
	require.True(t, errors.As(err, &le))
	assert.Equal(t, "api", le.Name())
	assert.Equal(t, 1500*time.Millisecond, le.RetryAfter())
}
