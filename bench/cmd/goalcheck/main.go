// Command goalcheck reads the output of the bench suite (go test -bench,
// any -count) and checks the performance goals of docs/performance.md,
// comparing the medians of one run. It prints one line per goal and exits
// with status 1 when a goal is missed.
//
//	go run ./cmd/goalcheck results/<run>/raw.txt
package main

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// samples[benchmark][unit] are the values of every run of a benchmark.
type samples map[string]map[string][]float64

// benchLine matches "BenchmarkName/sub-8   N   v unit   v unit ...".
var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)

func read(path string) (samples, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s := samples{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		fields := strings.Fields(m[2])
		for i := 0; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				continue
			}
			if s[m[1]] == nil {
				s[m[1]] = map[string][]float64{}
			}
			s[m[1]][fields[i+1]] = append(s[m[1]][fields[i+1]], v)
		}
	}
	return s, sc.Err()
}

// median returns the median of a benchmark's unit, and whether it ran.
func (s samples) median(bench, unit string) (float64, bool) {
	vs := slices.Clone(s[bench][unit])
	if len(vs) == 0 {
		return 0, false
	}
	slices.Sort(vs)
	if n := len(vs); n%2 == 0 {
		return (vs[n/2-1] + vs[n/2]) / 2, true
	}
	return vs[len(vs)/2], true
}

// tables are the side-by-side workloads, each table a row per workload and
// a column per library.
var tables = []struct {
	workloads, libs []string
}{
	{
		[]string{"ClosedSuccess", "ClosedSuccessParallel", "OpenRejection", "FailuresUntilOpen", "Pipeline"},
		[]string{"direct", "direct+atomic", "floor", "withtimeout", "levee", "levee-span", "gobreaker", "failsafe-go", "fortify", "go-resiliency"},
	},
	{
		[]string{"ClosedSuccessWindow", "ClosedSuccessWindowParallel"},
		[]string{"levee-count", "levee-time", "gobreaker-rolling", "failsafe-go-count", "failsafe-go-time"},
	},
	{
		[]string{"RetrySuccess", "RetrySuccessParallel", "RetryOneFailure", "RetryOneFailureParallel", "HedgeFirstFast", "HedgeFirstFastDone", "HedgeFirstFastParallel", "HedgeHedged"},
		[]string{"floor", "withcancel+timer", "levee", "levee-budget", "levee-span", "failsafe-go", "backoff", "retry-go"},
	},
	{
		[]string{"BulkheadAcquireRelease", "BulkheadAcquireReleaseParallel"},
		[]string{"floor", "floor-admit", "levee", "semaphore", "failsafe-go", "failsafe-go-executor"},
	},
	{
		[]string{"RateLimitAllowed", "RateLimitAllowedParallel", "ThrottleHealthy", "ThrottleHealthyParallel"},
		[]string{"levee", "x-time-rate", "uber-ratelimit", "failsafe-go", "failsafe-go-executor"},
	},
	{
		[]string{"RateLimitKeyed/keys=1000", "RateLimitKeyedParallel/keys=1000", "RateLimitKeyed/keys=1000000", "RateLimitKeyedParallel/keys=1000000"},
		[]string{"levee", "x-time-rate"},
	},
}

// summary prints the medians of the side-by-side workloads that ran,
// ns/op (allocs/op), a table per family of workloads.
func summary(s samples) {
	fmt.Println("summary: median ns/op (allocs/op) of this run")
	for _, t := range tables {
		var ran []string
		for _, w := range t.workloads {
			for _, lib := range t.libs {
				if _, ok := s.median("Benchmark"+w+"/lib="+lib, "ns/op"); ok {
					ran = append(ran, w)
					break
				}
			}
		}
		if len(ran) == 0 {
			continue
		}
		fmt.Printf("%-34s", "workload")
		for _, lib := range t.libs {
			fmt.Printf(" %16s", lib)
		}
		fmt.Println()
		for _, w := range ran {
			fmt.Printf("%-34s", w)
			for _, lib := range t.libs {
				name := "Benchmark" + w + "/lib=" + lib
				ns, ok := s.median(name, "ns/op")
				if !ok {
					fmt.Printf(" %16s", "")
					continue
				}
				allocs, _ := s.median(name, "allocs/op")
				fmt.Printf(" %16s", fmt.Sprintf("%.4g (%g)", ns, allocs))
			}
			fmt.Println()
		}
		fmt.Println()
	}
}

type checker struct {
	s       samples
	missed  int
	skipped int
}

// report prints one goal's verdict: got is levee's figure, limit the most
// the goal allows.
func (c *checker) report(goal string, got, limit float64, unit, detail string) {
	verdict := "met"
	if got > limit {
		verdict = "MISSED"
		c.missed++
	}
	fmt.Printf("%-7s %-58s %10.4g %-12s (limit %.4g; %s)\n", verdict, goal, got, unit, limit, detail)
}

func (c *checker) need(bench, unit string) (float64, bool) {
	v, ok := c.s.median(bench, unit)
	if !ok {
		c.skipped++
		fmt.Printf("skip    (no %s for %s in this run)\n", unit, bench)
	}
	return v, ok
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: goalcheck raw-benchmark-output.txt")
		os.Exit(2)
	}
	s, err := read(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	summary(s)
	c := &checker{s: s}
	fmt.Println("goal check (medians of this run):")

	// The closed path's goal is DESIGN.md's: floor + 3 ns, the floor being
	// a call through a func value, an open-coded defer and one atomic add
	// (lib=floor, measured in the same run). Issue 4's first goal, direct +
	// 8 ns, is printed beside it: DESIGN.md measures the floor alone at
	// 7.5 ns over a direct call, which leaves that goal half a nanosecond
	// for the period's load, the failure count's load and ctx.Err() that
	// DESIGN.md's own "How" requires, so DESIGN.md's budget replaced it.
	if floor, ok := c.need("BenchmarkClosedSuccess/lib=floor", "ns/op"); ok {
		if levee, ok := c.need("BenchmarkClosedSuccess/lib=levee", "ns/op"); ok {
			c.report("closed success, SDK installed: <= floor + 3 ns", levee, floor+3, "ns/op",
				fmt.Sprintf("floor %.3g ns (func value + open-coded defer + atomic add), overhead %.3g ns", floor, levee-floor))
		}
	}
	if direct, ok := c.s.median("BenchmarkClosedSuccess/lib=direct", "ns/op"); ok {
		if levee, ok := c.s.median("BenchmarkClosedSuccess/lib=levee", "ns/op"); ok {
			fmt.Printf("        (direct call %.3g ns: levee is %.3g ns over it; issue 4's first goal, direct + 8 ns, superseded by DESIGN.md's)\n", direct, levee-direct)
		}
	}
	if floor, ok := c.s.median("BenchmarkClosedSuccess/lib=direct+atomic", "ns/op"); ok {
		if levee, ok := c.s.median("BenchmarkClosedSuccess/lib=levee", "ns/op"); ok {
			fmt.Printf("        (direct + one atomic add: %.3g ns; levee is %.3g ns over it)\n", floor, levee-floor)
		}
	}
	if allocs, ok := c.need("BenchmarkClosedSuccess/lib=levee", "allocs/op"); ok {
		c.report("closed success: 0 allocs/op", allocs, 0, "allocs/op", "")
	}
	if serial, ok := c.need("BenchmarkClosedSuccess/lib=levee", "ns/op"); ok {
		if parallel, ok := c.need("BenchmarkClosedSuccessParallel/lib=levee", "ns/op"); ok {
			c.report("closed success, RunParallel: <= 1.5x serial", parallel, 1.5*serial, "ns/op",
				fmt.Sprintf("serial %.3g ns, ratio %.2fx", serial, parallel/serial))
		}
	}
	for _, window := range []string{"count", "time"} {
		lib := "BenchmarkClosedSuccessWindow/lib=levee-" + window
		if consecutive, ok := c.need("BenchmarkClosedSuccess/lib=levee", "ns/op"); ok {
			if windowed, ok := c.need(lib, "ns/op"); ok {
				c.report("closed success, "+window+" window: <= 2x the consecutive path", windowed, 2*consecutive, "ns/op",
					fmt.Sprintf("consecutive %.3g ns, ratio %.2fx", consecutive, windowed/consecutive))
			}
		}
		if allocs, ok := c.need(lib, "allocs/op"); ok {
			c.report("closed success, "+window+" window: 0 allocs/op", allocs, 0, "allocs/op", "")
		}
		if serial, ok := c.need(lib, "ns/op"); ok {
			if parallel, ok := c.need("BenchmarkClosedSuccessWindowParallel/lib=levee-"+window, "ns/op"); ok {
				c.report("closed success, "+window+" window, RunParallel: <= 1.5x serial", parallel, 1.5*serial, "ns/op",
					fmt.Sprintf("serial %.3g ns, ratio %.2fx", serial, parallel/serial))
			}
		}
	}
	if gob, ok := c.need("BenchmarkOpenRejection/lib=gobreaker", "ns/op"); ok {
		if levee, ok := c.need("BenchmarkOpenRejection/lib=levee", "ns/op"); ok {
			c.report("open rejection: <= half of gobreaker's", levee, gob/2, "ns/op",
				fmt.Sprintf("gobreaker %.3g ns, ratio %.2fx", gob, levee/gob))
		}
	}
	if allocs, ok := c.need("BenchmarkOpenRejection/lib=levee", "allocs/op"); ok {
		c.report("open rejection: 0 allocs/op", allocs, 0, "allocs/op", "")
	}
	if floor, ok := c.need("BenchmarkPipeline/lib=withtimeout", "ns/op"); ok {
		if levee, ok := c.need("BenchmarkPipeline/lib=levee", "ns/op"); ok {
			c.report("fallback+breaker+timeout: <= 1.1x context.WithTimeout", levee, 1.1*floor, "ns/op",
				fmt.Sprintf("WithTimeout %.3g ns, ratio %.2fx", floor, levee/floor))
		}
	}
	if allocs, ok := c.need("BenchmarkPipeline/lib=levee", "allocs/op"); ok {
		c.report("fallback+breaker+timeout: <= 4 allocs/op", allocs, 4, "allocs/op", "")
	}
	if mem, ok := c.need("BenchmarkBreakerMemory", "B/breaker"); ok {
		c.report("one breaker with telemetry registered: <= 1 KiB", mem, 1024, "B/breaker", "10 000 breakers, live heap / 10 000")
	}
	// Issue 9 restated issue 4's 100 ms for 10 000 breakers as levee's
	// share: no more than the SDK's own (BenchmarkFleet10kSDKFloor, the
	// same 10 000 registrations and one collection without levee), since
	// the SDK alone takes most of the 100 ms on this machine.
	if ms, ok := c.need("BenchmarkFleet10k", "ms/op"); ok {
		if sdk, ok := c.need("BenchmarkFleet10kSDKFloor", "ms/op"); ok {
			c.report("10 000 breakers created + collected once: levee's share <= the SDK's", ms-sdk, sdk, "ms",
				fmt.Sprintf("in all %.4g ms, the SDK alone %.4g ms; issue 4's first goal, 100 ms in all", ms, sdk))
		}
	}
	c.retryGoals()
	c.hedgeGoals()
	c.limitGoals()
	if c.skipped > 0 {
		fmt.Printf("%d figure(s) missing: some goals were not checked\n", c.skipped)
	}
	if c.missed > 0 {
		fmt.Printf("%d goal(s) missed\n", c.missed)
		os.Exit(1)
	}
	if c.skipped == 0 {
		fmt.Println("all goals met")
	}
}

// retryGoals checks the goals of issue 11 for retries.
func (c *checker) retryGoals() {
	if floor, ok := c.need("BenchmarkRetrySuccess/lib=floor", "ns/op"); ok {
		if levee, ok := c.need("BenchmarkRetrySuccess/lib=levee", "ns/op"); ok {
			c.report("retry, first attempt succeeds: <= floor + 3 ns", levee, floor+3, "ns/op",
				fmt.Sprintf("floor %.3g ns, overhead %.3g ns", floor, levee-floor))
		}
	}
	if allocs, ok := c.need("BenchmarkRetrySuccess/lib=levee", "allocs/op"); ok {
		c.report("retry, first attempt succeeds: 0 allocs/op", allocs, 0, "allocs/op", "")
	}
	if levee, ok := c.need("BenchmarkRetryOneFailure/lib=levee", "ns/op"); ok {
		fastest, name := 0.0, ""
		for _, peer := range []string{"failsafe-go", "backoff", "retry-go"} {
			if ns, ok := c.need("BenchmarkRetryOneFailure/lib="+peer, "ns/op"); ok && (name == "" || ns < fastest) {
				fastest, name = ns, peer
			}
		}
		if name != "" {
			c.report("retried call (one failure): <= half of the fastest peer", levee, fastest/2, "ns/op",
				fmt.Sprintf("fastest %s %.3g ns, ratio %.2fx", name, fastest, levee/fastest))
		}
	}
	if allocs, ok := c.need("BenchmarkRetryOneFailure/lib=levee", "allocs/op"); ok {
		c.report("retried call (one failure): <= 2 allocs/op", allocs, 2, "allocs/op", "")
	}
	c.parallelGoal("retry, first attempt succeeds", "RetrySuccess")
	c.parallelGoal("retried call (one failure)", "RetryOneFailure")
}

// hedgeGoals checks the goals of issue 11 for hedges.
func (c *checker) hedgeGoals() {
	if fs, ok := c.need("BenchmarkHedgeFirstFast/lib=failsafe-go", "ns/op"); ok {
		if levee, ok := c.need("BenchmarkHedgeFirstFast/lib=levee", "ns/op"); ok {
			detail := fmt.Sprintf("failsafe-go %.3g ns, ratio %.2fx", fs, levee/fs)
			if floor, ok := c.s.median("BenchmarkHedgeFirstFast/lib=withcancel+timer", "ns/op"); ok {
				detail += fmt.Sprintf("; WithCancel+AfterFunc alone %.3g ns", floor)
			}
			c.report("hedge, first attempt fast: <= 1/10 of failsafe-go's", levee, fs/10, "ns/op", detail)
		}
	}
	if allocs, ok := c.need("BenchmarkHedgeFirstFast/lib=levee", "allocs/op"); ok {
		c.report("hedge, first attempt fast: <= 1 alloc/op", allocs, 1, "allocs/op", "")
	}
	c.parallelGoal("hedge, first attempt fast", "HedgeFirstFast")
	// A function that waits on its context's Done makes the attempts'
	// context make a WithCancel: no goal, reported beside the floor.
	if levee, ok := c.s.median("BenchmarkHedgeFirstFastDone/lib=levee", "ns/op"); ok {
		if fs, ok := c.s.median("BenchmarkHedgeFirstFastDone/lib=failsafe-go", "ns/op"); ok {
			la, _ := c.s.median("BenchmarkHedgeFirstFastDone/lib=levee", "allocs/op")
			floor, _ := c.s.median("BenchmarkHedgeFirstFastDone/lib=withcancel+timer", "ns/op")
			fmt.Printf("        (first attempt fast, the function selects on Done, no goal: levee %.3g ns, %.0f allocs; WithCancel+AfterFunc %.3g ns; failsafe-go %.3g ns; ratio %.2fx)\n", levee, la, floor, fs, levee/fs)
		}
	}
	// The goals are for a first attempt that answers in time; a call that
	// starts a hedge has none, and is reported for comparison.
	if levee, ok := c.s.median("BenchmarkHedgeHedged/lib=levee", "ns/op"); ok {
		if fs, ok := c.s.median("BenchmarkHedgeHedged/lib=failsafe-go", "ns/op"); ok {
			la, _ := c.s.median("BenchmarkHedgeHedged/lib=levee", "allocs/op")
			fa, _ := c.s.median("BenchmarkHedgeHedged/lib=failsafe-go", "allocs/op")
			fmt.Printf("        (a hedge started, no goal: levee %.3g ns, %.0f allocs; failsafe-go %.3g ns, %.0f allocs; ratio %.2fx)\n", levee, la, fs, fa, levee/fs)
		}
	}
}

// parallelGoal checks that levee's figure of workload under RunParallel is
// at most 1.5 times its serial figure.
func (c *checker) parallelGoal(what, workload string) {
	serial, ok := c.need("Benchmark"+workload+"/lib=levee", "ns/op")
	if !ok {
		return
	}
	if parallel, ok := c.need("Benchmark"+workload+"Parallel/lib=levee", "ns/op"); ok {
		c.report(what+", RunParallel: <= 1.5x serial", parallel, 1.5*serial, "ns/op",
			fmt.Sprintf("serial %.3g ns, ratio %.2fx", serial, parallel/serial))
	}
}

// limitGoals checks the goals of issue 13 for the bulkhead, the rate limit
// and the throttle, and prints the heap a keyed rate limit holds per key.
func (c *checker) limitGoals() {
	const bulkhead = "BenchmarkBulkheadAcquireRelease/lib="
	for _, peer := range []string{"semaphore", "failsafe-go"} {
		if ns, ok := c.need(bulkhead+peer, "ns/op"); ok {
			if levee, ok := c.need(bulkhead+"levee", "ns/op"); ok {
				detail := fmt.Sprintf("%s %.3g ns, ratio %.2fx", peer, ns, levee/ns)
				if floor, ok := c.s.median(bulkhead+"floor", "ns/op"); ok {
					detail += fmt.Sprintf("; two atomic adds around the call %.3g ns", floor)
				}
				c.report("bulkhead, a free slot: <= 0.6x "+peer+"'s", levee, 0.6*ns, "ns/op", detail)
			}
		}
	}
	if allocs, ok := c.need(bulkhead+"levee", "allocs/op"); ok {
		c.report("bulkhead, a free slot: 0 allocs/op", allocs, 0, "allocs/op", "")
	}
	c.parallelGoal("bulkhead, a free slot", "BulkheadAcquireRelease")
	if floor, ok := c.s.median(bulkhead+"floor", "ns/op"); ok {
		if parallel, ok := c.s.median("BenchmarkBulkheadAcquireReleaseParallel/lib=floor", "ns/op"); ok {
			fmt.Printf("        (two atomic adds on one shared counter: RunParallel %.3g ns, %.2fx their serial %.3g ns)\n",
				parallel, parallel/floor, floor)
		}
	}
	if floor, ok := c.s.median(bulkhead+"floor-admit", "ns/op"); ok {
		if parallel, ok := c.s.median("BenchmarkBulkheadAcquireReleaseParallel/lib=floor-admit", "ns/op"); ok {
			fmt.Printf("        (one shared atomic add per call, the release on a stripe of its own: RunParallel %.3g ns, %.2fx its serial %.3g ns)\n",
				parallel, parallel/floor, floor)
		}
	}

	const allowed = "BenchmarkRateLimitAllowed/lib="
	if xrate, ok := c.need(allowed+"x-time-rate", "ns/op"); ok {
		if levee, ok := c.need(allowed+"levee", "ns/op"); ok {
			c.report("rate limit, a token there: <= 0.5x x/time/rate's Allow", levee, 0.5*xrate, "ns/op",
				fmt.Sprintf("x/time/rate %.3g ns, ratio %.2fx", xrate, levee/xrate))
		}
	}
	if allocs, ok := c.need(allowed+"levee", "allocs/op"); ok {
		c.report("rate limit, a token there: 0 allocs/op", allocs, 0, "allocs/op", "")
	}
	c.parallelGoal("rate limit, a token there", "RateLimitAllowed")

	for _, keys := range []string{"1000", "1000000"} {
		serial := "BenchmarkRateLimitKeyed/keys=" + keys + "/lib=levee"
		if allocs, ok := c.need(serial, "allocs/op"); ok {
			c.report("rate limit, keyed, "+keys+" keys: 0 allocs/op", allocs, 0, "allocs/op", "")
		}
		if ns, ok := c.need(serial, "ns/op"); ok {
			if parallel, ok := c.need("BenchmarkRateLimitKeyedParallel/keys="+keys+"/lib=levee", "ns/op"); ok {
				c.report("rate limit, keyed, "+keys+" keys, RunParallel: <= 1.5x serial", parallel, 1.5*ns, "ns/op",
					fmt.Sprintf("serial %.3g ns, ratio %.2fx", ns, parallel/ns))
			}
		}
		for _, lib := range []string{"levee", "x-time-rate"} {
			if perKey, ok := c.s.median("BenchmarkRateLimitKeyed/keys="+keys+"/lib="+lib, "B/key"); ok {
				mib, _ := c.s.median("BenchmarkRateLimitKeyed/keys="+keys+"/lib="+lib, "MiB-held")
				fmt.Printf("info    rate limit, keyed, %s keys, %s: %.0f B/key held (%.3g MiB)\n", keys, lib, perKey, mib)
			}
		}
	}

	if allocs, ok := c.need("BenchmarkThrottleHealthy/lib=levee", "allocs/op"); ok {
		c.report("throttle, a healthy dependency: 0 allocs/op", allocs, 0, "allocs/op", "")
	}
	c.parallelGoal("throttle, a healthy dependency", "ThrottleHealthy")
}
