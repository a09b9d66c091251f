package retry_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/retry"
)

// The test docs/retry.md shows users, as it is there.
func TestCheckout_RetriesThreeTimesOneSecondApart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		calls := 0
		flaky := func(context.Context) (int, error) { calls++; return 0, errDown }
		get := resilience.Wrap(flaky, retry.Policy[int](retry.WithDelay(time.Second)))
		start := time.Now()
		_, err := get(t.Context())
		require.ErrorIs(t, err, errDown)
		assert.Equal(t, 3, calls)
		assert.Equal(t, 2*time.Second, time.Since(start)) // exactly
	})
}
