package breaker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/breaker"
)

func TestSmoke(t *testing.T) {
	now := time.Unix(1000, 0)
	b := breaker.New("dep", breaker.WithClock(func() time.Time { return now }))
	boom := errors.New("boom")
	calls := 0
	fail := func(context.Context) error { calls++; return boom }
	ok := func(context.Context) error { calls++; return nil }
	ctx := context.Background()
	require.NoError(t, b.Call(ctx, ok))
	for range 3 {
		require.ErrorIs(t, b.Call(ctx, fail), boom)
	}
	assert.Equal(t, breaker.Open, b.State())
	err := b.Call(ctx, ok)
	require.ErrorIs(t, err, breaker.ErrOpen)
	var oe *breaker.OpenError
	require.ErrorAs(t, err, &oe)
	assert.Equal(t, 30*time.Second, oe.RetryAfter())
	assert.Equal(t, 4, calls)
	now = now.Add(30 * time.Second)
	assert.Equal(t, breaker.HalfOpen, b.State())
	require.NoError(t, b.Call(ctx, ok))
	assert.Equal(t, breaker.Closed, b.State())
}
