#!/usr/bin/env bash
# run.sh: levee's side-by-side benchmarks, in one command.
#
#   bench/run.sh                        # -benchmem, 6 rounds: the published run
#   COUNT=1 bench/run.sh                # a quick look
#   COUNT=3 BENCH=OpenRejection bench/run.sh   # some benchmarks only (a go test -bench regexp)
#   COUNT=6 BENCH='Retry|Hedge' bench/run.sh  # the retry and hedge benchmarks
#   COUNT=6 BENCH='Bulkhead|RateLimit|Throttle' bench/run.sh  # the limits (issue 13)
#
# The raw output goes to bench/results/<UTC time>/ (git ignores bench/results/);
# benchstat then prints one table per workload, with a column per library, and
# cmd/goalcheck checks the goals of docs/performance.md against the same run.
# benchstat is installed from the Go module proxy into a temporary GOBIN when
# it is not on PATH.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

count=${COUNT:-6}
bench=${BENCH:-.}
benchtime=${BENCHTIME:-1s}
benchstat_version=v0.0.0-20260908200009-22c9c6c9d4da

out="$here/results/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"

benchstat=$(command -v benchstat || true)
if [[ -z $benchstat ]]; then
	gobin=$(mktemp -d)
	trap 'rm -rf "$gobin"' EXIT
	echo "installing benchstat@$benchstat_version into $gobin"
	GOBIN=$gobin GOFLAGS=-mod=mod go install "golang.org/x/perf/cmd/benchstat@$benchstat_version"
	benchstat=$gobin/benchstat
fi

{
	echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "nproc:    $(nproc)"
	echo "cpu:      $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" \
		"(family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')," \
		"model $(grep -m1 '^model\s*:' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')," \
		"$(grep -m1 'cpu MHz' /proc/cpuinfo | cut -d: -f2 | tr -d ' ') MHz$(grep -q hypervisor /proc/cpuinfo && echo ', virtual machine'))"
	echo "go:       $(go version)"
	echo "kernel:   $(uname -sr)"
	echo "commit:   $(git -C .. rev-parse --short HEAD 2>/dev/null || echo unknown)"
	echo "command:  bench/run.sh (COUNT=$count BENCH='$bench' BENCHTIME=$benchtime): go test -c, then $count rounds of"
	echo "          bench.test -test.run='^\$' -test.bench='$bench' -test.benchmem -test.count=1 -test.benchtime=$benchtime"
	echo "load avg: $(cut -d' ' -f1-3 /proc/loadavg) (before)"
} | tee "$out/machine.txt"
echo "raw output: $out/raw.txt"

# The suite is compiled once and run count times, one round after another
# (the same samples as -count=N): each round measures every library, so a
# change in the machine's load between rounds hits them all alike instead
# of whichever benchmark happened to be running.
go test -c -o "$out/bench.test" .
failed=0
for round in $(seq "$count"); do
	echo "round $round of $count" >&2
	# A benchmark that fails is reported and the rounds go on: one failure
	# should not throw away the rest of a long run.
	"$out/bench.test" -test.run='^$' -test.bench="$bench" -test.benchmem -test.count=1 \
		-test.benchtime="$benchtime" -test.timeout=60m ||
		echo "round $round: a benchmark failed (see above)"
done | tee "$out/raw.txt"
rm -f "$out/bench.test"
if grep -q -e '^--- FAIL' -e 'a benchmark failed' "$out/raw.txt"; then
	failed=1
fi

echo "load avg: $(cut -d' ' -f1-3 /proc/loadavg) (after)" | tee -a "$out/machine.txt"

{
	for workload in ClosedSuccess ClosedSuccessParallel OpenRejection FailuresUntilOpen Pipeline \
		RetrySuccess RetrySuccessParallel RetryOneFailure RetryOneFailureParallel HedgeFirstFast HedgeFirstFastParallel \
		BulkheadAcquireRelease BulkheadAcquireReleaseParallel RateLimitAllowed RateLimitAllowedParallel \
		ThrottleHealthy ThrottleHealthyParallel; do
		if grep -q "^Benchmark$workload/" "$out/raw.txt"; then
			echo
			echo "## $workload"
			"$benchstat" -filter ".name:$workload" -row /lib -col .name "$out/raw.txt"
		fi
	done
	if grep -q '^BenchmarkRateLimitKeyed' "$out/raw.txt"; then
		echo
		echo "## RateLimitKeyed"
		"$benchstat" -filter '.name:(RateLimitKeyed OR RateLimitKeyedParallel)' -row /keys,/lib -col .name "$out/raw.txt"
	fi
	if grep -q -e '^BenchmarkBreakerMemory' -e '^BenchmarkFleet10k' "$out/raw.txt"; then
		echo
		echo "## Scale"
		(cd "$out" && "$benchstat" -filter '.name:(BreakerMemory OR Fleet10k OR Fleet10kSDKFloor)' -row .name raw.txt)
	fi
	echo
} | tee "$out/benchstat.txt"

status=0
go run ./cmd/goalcheck "$out/raw.txt" | tee "$out/goals.txt" || status=$?
if [[ $failed -ne 0 ]]; then
	echo "some benchmarks FAILED: see $out/raw.txt"
	status=1
fi
echo "results in $out"
exit $status
