#!/usr/bin/env bash
# callgrind.sh: instructions per op of some benchmarks, counted by valgrind's
# callgrind: a figure the machine's load does not move, for comparisons that
# timings on a shared machine cannot settle.
#
#   bench/callgrind.sh '^BenchmarkRetryOneFailure$/^lib=levee$' ...   # -bench regexps
#   N=200000 bench/callgrind.sh '^BenchmarkHedgeFirstFast$/'          # ops to count (default 1000000)
#   DIR=leveeredis bench/callgrind.sh '^BenchmarkLimiterFleetSpend$'  # another module's package (default bench/)
#
# Each regexp must select one benchmark. The suite is compiled once and run
# twice under callgrind, with -test.benchtime=1001x and (N+1001)x: each run
# calls the benchmark once with b.N=1 and then once with its count, so the two
# runs' setups are alike and their difference is N ops exactly. The whole
# program is counted (the scheduler, timers, malloc), with GOMAXPROCS=1 so
# that idle processors do not spin into the count, GOGC=off so that the
# collector does not either (when it runs depends on the heap, and made
# counts of allocating paths differ by 20% between runs; an allocation's
# later collection is therefore not counted: GOGC=100 bench/callgrind.sh
# counts it, noisily), GODEBUG=asyncpreemptoff=1 (the preemption signals
# crash callgrind) and cpu.rdtscp=off (valgrind 3.19 does not know the RDTSCP
# instruction the runtime reads the cycle counter with). Two runs of one
# benchmark agree to within 0.3%. apt-get install valgrind, if it is missing.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
n=${N:-1000000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "${DIR:-$here}" && GOWORK=off go test -c -o "$work/bench.test" .)

# count runs the suite under callgrind and prints the instructions it ran.
count() {
	GOMAXPROCS=1 GOGC=${GOGC:-off} GODEBUG=asyncpreemptoff=1,cpu.rdtscp=off valgrind --tool=callgrind \
		--callgrind-out-file="$work/callgrind.out" "$work/bench.test" \
		-test.run='^$' -test.bench="$1" -test.benchtime="$2" >"$work/stdout" 2>"$work/stderr"
	if ! grep -q '^PASS' "$work/stdout"; then
		echo "$1 at $2 did not pass:" >&2
		cat "$work/stdout" "$work/stderr" >&2
		exit 1
	fi
	if [[ $(grep -c '^Benchmark' "$work/stdout") -ne 1 ]]; then
		echo "$1 selects $(grep -c '^Benchmark' "$work/stdout") benchmarks, want 1" >&2
		exit 1
	fi
	sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$work/stderr"
}

printf '%-56s %14s\n' benchmark instr/op
for re in "$@"; do
	small=$(count "$re" 1001x)
	large=$(count "$re" $((n + 1001))x)
	awk -v re="$re" -v a="$small" -v b="$large" -v n="$n" 'BEGIN { printf "%-56s %14.1f\n", re, (b - a) / n }'
done
