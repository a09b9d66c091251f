package breaker

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// Which path a closed breaker's calls take is not visible from outside: a
// breaker that uses none of the new options must keep the plain path (no
// window, no clock read), and only one that times its calls may read the
// clock per call (issue 12: "only a breaker that asks for it reads the
// clock per call").
func TestBreaker_OnlyABreakerThatTimesItsCallsReadsTheClock(t *testing.T) {
	never := func(WindowCounts) bool { return false }
	tests := map[string]struct {
		opts         []Option
		timed, plain bool
	}{
		"default":                    {nil, false, true},
		"threshold and open timeout": {[]Option{WithFailureThreshold(5), WithOpenTimeout(time.Second)}, false, true},
		"half-open, backoff, shadow": {[]Option{WithHalfOpen(3, 2), WithOpenBackoff(2, time.Hour, 0.5), WithShadowMode(), WithRetryAfter(time.Hour)}, false, true},
		"count window":               {[]Option{WithCountWindow(10), WithFailureRate(0.5)}, false, false},
		"time window":                {[]Option{WithTimeWindow(time.Minute, 6), WithTripRule(never)}, false, false},
		"slow calls":                 {[]Option{WithCountWindow(10), WithSlowCallDuration(time.Second)}, true, false},
		"call duration histogram":    {[]Option{WithCallDurationHistogram()}, true, false},
		"slow calls and a histogram": {[]Option{WithTimeWindow(time.Minute, 6), WithSlowCallDuration(time.Second), WithCallDurationHistogram()}, true, false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			b := New("paths", tt.opts...)
			assert.Equal(t, tt.timed, b.timed, "reads the clock around each call")
			windowed := len(tt.opts) > 0 && !tt.plain && !tt.timed
			for _, when := range []string{"the first closed period", "each closed period after it"} {
				p := b.current.Load()
				assert.Equal(t, tt.plain, p.plain, "%s takes the plain path", when)
				assert.Equal(t, windowed, p.windowedOnly, "%s takes the windowed path: a window, no clock", when)
				b.Reset(t.Context())
			}
		})
	}
}
