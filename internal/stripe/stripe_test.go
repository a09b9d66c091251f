package stripe_test

import (
	"sync"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"

	"github.com/levee-go/levee/internal/stripe"
)

func TestHint_InRangeStableAndSpread(t *testing.T) {
	t.Parallel()
	salt := unsafe.Pointer(new([64]byte))
	h := stripe.Hint(salt)
	assert.Equal(t, h, stripe.Hint(salt), "a goroutine keeps its stripe")
	seen := map[int]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			s := stripe.Hint(salt)
			assert.GreaterOrEqual(t, s, 0)
			assert.Less(t, s, stripe.Count)
			mu.Lock()
			seen[s] = true
			mu.Unlock()
		})
	}
	wg.Wait()
	assert.Greater(t, len(seen), stripe.Count/2, "64 goroutines spread over the stripes")
}
