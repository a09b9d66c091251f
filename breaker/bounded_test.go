package breaker_test

import (
	"fmt"
	"runtime"
	"testing"
	"testing/synctest"
	"time"
)

// bubbleBound is how long, in real time, a test's synctest bubble may run
// before boundedSyncTest calls it hung. The bubbles here take well under a
// second, -race included.
const bubbleBound = 60 * time.Second

// boundedSyncTest runs f in a synctest bubble, as synctest.Test does, and
// bounds it in real time. synctest reports a bubble whose goroutines are all
// durably blocked, but not one whose goroutine waits on a sync.Mutex (not
// durably blocking) or spins: a breaker that deadlocked on its own mutex
// would hang the test until go test's 10-minute timeout. Past bound, the
// watchdog ends the test binary with every goroutine's stack instead.
func boundedSyncTest(t *testing.T, bound time.Duration, f func(t *testing.T)) {
	t.Helper()
	stop := realTimeWatchdog(t.Name()+": the synctest bubble", bound)
	defer stop()
	synctest.Test(t, f)
}

// realTimeWatchdog ends the test binary, with what and every goroutine's
// stack, unless stop is called within bound of real time. It must be called
// outside any bubble. A panic on the watchdog's own goroutine is the one way
// to end a test whose goroutine is stuck: t.Fatal would have to be called
// from that very goroutine.
func realTimeWatchdog(what string, bound time.Duration) (stop func()) {
	timer := time.AfterFunc(bound, func() {
		buf := make([]byte, 1<<22)
		buf = buf[:runtime.Stack(buf, true)]
		panic(fmt.Sprintf("%s has not ended within %v of real time: a goroutine is blocked on something that is not durably blocking (a mutex?) or spins\n\n%s",
			what, bound, buf))
	})
	return func() { timer.Stop() }
}
