package breaker

import (
	"math"
	"math/rand/v2"
	"time"
)

// openBackoff is WithOpenBackoff: how the open period grows when the
// breaker opens again without having closed. The zero value keeps every
// open period at the open timeout.
type openBackoff struct {
	factor float64
	max    time.Duration
	jitter float64
	rng    *rand.Rand // WithJitterSeed; nil for the runtime's source
}

// openDuration returns how long the opens-th open period in a row lasts
// (1 for the first since the breaker was last closed). It is called with
// b.mu held, which is what guards the seeded generator.
func (b *Breaker) openDuration(opens int) time.Duration {
	bo := &b.rules.backoff
	if bo.factor == 0 || opens <= 1 {
		return b.openTimeout
	}
	grown := min(float64(b.openTimeout)*math.Pow(bo.factor, float64(opens-1)), float64(bo.max))
	if bo.jitter > 0 {
		u := rand.Float64()
		if bo.rng != nil {
			u = bo.rng.Float64()
		}
		grown *= 1 - bo.jitter*u
	}
	return max(time.Duration(grown), b.openTimeout)
}
