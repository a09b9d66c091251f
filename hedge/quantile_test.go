package hedge

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestBucketOf_EachLatencyFallsInABucketAtMostAnEighthWide(t *testing.T) {
	t.Parallel()
	previous := 0
	for d := time.Duration(1 << minExponent); d < 1<<(maxExponent+1); d += d/97 + 1 {
		i := bucketOf(d)
		assert.GreaterOrEqual(t, i, previous, "buckets grow with the latency (%v)", d)
		previous = i
		upper := upperEdge(i)
		assert.Greater(t, upper, d, "%v is below its bucket's upper edge", d)
		assert.LessOrEqual(t, float64(upper), 1.125*float64(d), "%v: the upper edge %v is at most 12.5%% above", d, upper)
		if i > 0 {
			assert.LessOrEqual(t, upperEdge(i-1), d, "%v is not in the bucket below", d)
		}
	}
}

func TestBucketOf_LatenciesOutsideTheRangeShareTheEndBuckets(t *testing.T) {
	t.Parallel()
	assert.Equal(t, 0, bucketOf(0))
	assert.Equal(t, 0, bucketOf(-time.Second))
	assert.Equal(t, 0, bucketOf(time.Microsecond/2))
	assert.Equal(t, latencyBuckets-1, bucketOf(time.Hour))
	assert.Equal(t, latencyBuckets-1, bucketOf(1<<62))
	assert.Equal(t, time.Duration(1<<minExponent+1<<(minExponent-subBucketBits)), upperEdge(0))
}

func TestLatencies_TheInitialDelayUntilTheWindowHoldsEnough(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLatencies(0.95, 10*time.Second, time.Second)
		for range minQuantileSamples - 1 {
			l.record(time.Millisecond)
		}
		assert.Equal(t, time.Second, l.delay())
		l.record(time.Millisecond)
		assert.Equal(t, upperEdge(bucketOf(time.Millisecond)), l.delay(), "the 100th latency brings the estimate")
	})
}

func TestLatencies_TheQuantileOfTheWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLatencies(0.95, 10*time.Second, time.Second)
		for i := range 1000 {
			l.record(time.Duration(i%100+1) * time.Millisecond) // 1ms..100ms, evenly
		}
		// The 95th percentile is 95ms, in the bucket [92.27ms, 100.66ms).
		assert.Equal(t, 100663296*time.Nanosecond, l.delay())
	})
}

func TestLatencies_TheWindowForgetsOldLatencies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLatencies(0.5, 10*time.Second, time.Second)
		for range 200 {
			l.record(10 * time.Millisecond)
		}
		assert.Equal(t, upperEdge(bucketOf(10*time.Millisecond)), l.delay())

		time.Sleep(6 * time.Second) // the 10ms latencies are in the previous half now
		for range 300 {
			l.record(100 * time.Millisecond)
		}
		assert.Equal(t, upperEdge(bucketOf(100*time.Millisecond)), l.delay(), "the median of 200 at 10ms and 300 at 100ms")

		time.Sleep(5 * time.Second) // 11s: the 10ms latencies have left
		for range 10 {
			l.record(time.Millisecond)
		}
		assert.Equal(t, upperEdge(bucketOf(100*time.Millisecond)), l.delay(), "300 at 100ms and 10 at 1ms")

		time.Sleep(20 * time.Second) // a whole window without a recording
		l.record(time.Millisecond)
		assert.Equal(t, time.Second, l.delay(), "nothing left: the initial delay again")
	})
}
