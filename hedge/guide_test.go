package hedge_test

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/hedge"
	"github.com/levee-go/levee/resilience"
)

// The test docs/hedging.md shows users, as it is there.
func TestProfile_ASlowReplicaIsHedged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		fetch := func(ctx context.Context) (string, error) {
			if calls.Add(1) == 1 {
				<-ctx.Done() // the first replica is stuck
				return "", ctx.Err()
			}
			time.Sleep(5 * time.Millisecond)
			return "fast replica", nil
		}
		get := resilience.Wrap(fetch, hedge.Policy[string](20*time.Millisecond))
		start := time.Now()
		v, err := get(t.Context())
		require.NoError(t, err)
		assert.Equal(t, "fast replica", v)
		assert.Equal(t, 25*time.Millisecond, time.Since(start))
	})
}
