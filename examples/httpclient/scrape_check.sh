#!/usr/bin/env bash
# scrape_check.sh: a real Prometheus scrapes the httpclient example through
# an outage, and its HTTP API must show the breaker open during the outage
# and closed after it; then every PromQL query of docs/dashboards.md and
# of the Grafana dashboard docs/grafana/levee.json must return data, and
# every levee metric the example exports must be on that dashboard. The
# dashboard's queries come from its JSON through the dashqueries command
# (Go, in the examples module: no jq or python needed for it), which also
# checks the JSON's structure and replaces Grafana's variables
# ($__rate_interval, $policy) with values Prometheus can run.
#
# Installs Debian's prometheus (and curl, jq) when missing, which needs root.
# Runs the prometheus binary directly, on loopback, with its data in a
# temporary directory; never starts the Debian service. Bounded in time
# (SCRAPE_CHECK_BUDGET seconds, default 240, apt included); cleans up its
# processes and files on every exit. Exits non-zero with a message naming
# what failed.
#
# Usage: examples/httpclient/scrape_check.sh   (from anywhere)
# Environment: PROMETHEUS=/path/to/prometheus to use another binary.
set -euo pipefail

cd "$(dirname "$0")/../.."
readonly doc=docs/dashboards.md
readonly dashboard=docs/grafana/levee.json
readonly budget=${SCRAPE_CHECK_BUDGET:-240}
readonly deadline=$((SECONDS + budget))
readonly policy=price-api

log() { echo "scrape_check: $*" >&2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/levee-scrape-check.XXXXXX")
example_pid=
prometheus_pid=
created_policy_rc=

stop_process() { # pid
	local pid=$1 i
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for i in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local status=$?
	trap - EXIT INT TERM
	stop_process "$example_pid"
	stop_process "$prometheus_pid"
	if [ -n "$created_policy_rc" ]; then
		rm -f /usr/sbin/policy-rc.d
	fi
	rm -rf "$tmp"
	exit "$status"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

fail() {
	log "FAIL: $*"
	for f in example.log prometheus.log last_response.json; do
		if [ -s "$tmp/$f" ]; then
			echo "---- last lines of $f" >&2
			tail -n 25 "$tmp/$f" >&2
		fi
	done
	exit 1
}

time_left() { echo $((deadline - SECONDS)); }
check_budget() { [ "$(time_left)" -gt 0 ] || fail "out of time (budget ${budget}s) while $1"; }

# ---- tools: prometheus, curl, jq ------------------------------------------

prometheus_bin=${PROMETHEUS:-$(command -v prometheus || true)}
missing=()
[ -n "$prometheus_bin" ] || missing+=(prometheus)
command -v curl >/dev/null || missing+=(curl)
command -v jq >/dev/null || missing+=(jq)
if [ ${#missing[@]} -gt 0 ]; then
	log "installing ${missing[*]} from Debian"
	[ "$(id -u)" -eq 0 ] || fail "${missing[*]} missing and not root: cannot apt-get install"
	command -v apt-get >/dev/null || fail "${missing[*]} missing and no apt-get"
	export DEBIAN_FRONTEND=noninteractive
	timeout $(($(time_left) > 150 ? 150 : $(time_left))) apt-get update -qq ||
		fail "apt-get update failed or timed out"
	for pkg in "${missing[@]}"; do
		candidate=$(apt-cache policy "$pkg" | sed -n 's/^ *Candidate: *//p')
		[ -n "$candidate" ] && [ "$candidate" != "(none)" ] ||
			fail "Debian offers no '$pkg' package (apt-cache policy $pkg)"
		log "$pkg: Debian candidate $candidate"
	done
	# Keep the package's scripts from starting the Debian service: this check
	# runs its own prometheus (invoke-rc.d and deb-systemd-invoke honour this).
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		created_policy_rc=1
	fi
	timeout $(($(time_left) > 180 ? 180 : $(time_left))) \
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$tmp/apt.log" 2>&1 ||
		{ tail -n 20 "$tmp/apt.log" >&2; fail "apt-get install ${missing[*]} failed or timed out"; }
	if [ -n "$created_policy_rc" ]; then
		rm -f /usr/sbin/policy-rc.d
		created_policy_rc=
	fi
	prometheus_bin=${PROMETHEUS:-$(command -v prometheus || true)}
	[ -n "$prometheus_bin" ] || fail "prometheus is still not on PATH after installing it"
fi
log "using $("$prometheus_bin" --version 2>&1 | head -n 1)"

# ---- the example -----------------------------------------------------------

check_budget "building the example"
# From inside the examples module, so the build needs neither go.work nor the
# root module's go.mod to know the exporters.
(cd examples && go build -o "$tmp/httpclient" ./httpclient) || fail "go build ./httpclient in examples/"
(cd examples && go build -o "$tmp/dashqueries" ./httpclient/dashqueries) || fail "go build ./httpclient/dashqueries in examples/"
# The dashboard's queries, checked and read before anything starts: a
# broken dashboard fails at once. $__rate_interval becomes 1m: Grafana
# makes it at least four scrape intervals, and the whole run fits in it.
"$tmp/dashqueries" -rate-interval 1m "$dashboard" >"$tmp/dashboard_queries.tsv" 2>"$tmp/dashqueries.log" ||
	{ cat "$tmp/dashqueries.log" >&2; fail "$dashboard is not a dashboard the check can run (dashqueries)"; }

# A port nobody listens on, on loopback (a tiny race with other programs is
# possible; the start-up checks below then fail clearly).
free_port() {
	local port i
	for i in $(seq 100); do
		port=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return 0
		fi
	done
	return 1
}
metrics_port=$(free_port) || fail "no free port for the example's /metrics"
prometheus_port=$(free_port) || fail "no free port for prometheus"
while [ "$prometheus_port" = "$metrics_port" ]; do prometheus_port=$(free_port); done
readonly api="http://127.0.0.1:$prometheus_port/api/v1"

# The example holds its schedule until Prometheus's first scrape, then: up
# 3 s, down 10 s (open timeout 3 s, so the breaker is open most of the
# outage and every scrape in it sees it open or half-open), back up 8 s. It
# then keeps serving /metrics until this script stops it.
"$tmp/httpclient" \
	-metrics-addr "127.0.0.1:$metrics_port" \
	-wait-scrape 60s -up 3s -outage 10s -recovery 8s -open-timeout 3s \
	-serve-for 5m \
	>"$tmp/spans.jsonl" 2>"$tmp/example.log" &
example_pid=$!

wait_for() { # description, max seconds, command...
	local what=$1 max=$2 until
	shift 2
	until=$((SECONDS + max))
	while ! "$@"; do
		kill -0 "$example_pid" 2>/dev/null || fail "the example exited early, while waiting for $what"
		[ "$SECONDS" -lt "$until" ] || fail "timed out after ${max}s waiting for $what"
		check_budget "waiting for $what"
		sleep 0.2
	done
}

metrics_up() { curl -sf --max-time 2 "http://127.0.0.1:$metrics_port/metrics" >"$tmp/metrics.txt"; }
wait_for "the example's /metrics" 20 metrics_up
# The exact names Prometheus will store, as the OTel exporter writes them.
for series in \
	"levee_circuit_breaker_state{levee_circuit_breaker_state=\"closed\",levee_policy_name=\"$policy\"" \
	"levee_circuit_breaker_calls_total{levee_outcome=\"success\",levee_policy_name=\"$policy\""; do
	grep -qF "$series" "$tmp/metrics.txt" || fail "/metrics has no series $series"
done

# ---- prometheus ------------------------------------------------------------

cat >"$tmp/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: levee-httpclient
    static_configs:
      - targets: ['127.0.0.1:$metrics_port']
EOF
"$prometheus_bin" \
	--config.file="$tmp/prometheus.yml" \
	--storage.tsdb.path="$tmp/data" \
	--web.listen-address="127.0.0.1:$prometheus_port" \
	--log.level=warn \
	>"$tmp/prometheus.log" 2>&1 &
prometheus_pid=$!

prometheus_ready() {
	kill -0 "$prometheus_pid" 2>/dev/null || fail "prometheus exited at start-up"
	curl -sf --max-time 2 "http://127.0.0.1:$prometheus_port/-/ready" >/dev/null
}
wait_for "prometheus to be ready" 30 prometheus_ready

# query EXPR: runs an instant query; its JSON is left in last_response.json.
query() {
	curl -sf --max-time 5 -G --data-urlencode "query=$1" "$api/query" >"$tmp/last_response.json" || return 1
	[ "$(jq -r .status "$tmp/last_response.json")" = success ]
}
# value_of EXPR: the value of the single series EXPR selects, or empty.
value_of() {
	query "$1" || return 0
	jq -r 'if (.data.result | length) == 1 then .data.result[0].value[1] else empty end' "$tmp/last_response.json"
}
state_is() { # state value
	[ "$(value_of "levee_circuit_breaker_state{levee_policy_name=\"$policy\",levee_circuit_breaker_state=\"$1\"}")" = "$2" ]
}
logged() { grep -qF "$1" "$tmp/example.log"; }

wait_for "prometheus's first scrape of the example" 30 state_is closed 1
log "prometheus scrapes the example; the breaker reads closed"

# ---- the outage ------------------------------------------------------------

wait_for "the outage to start" 40 logged 'msg="price service down"'
log "outage started"
open_seen_during_outage() {
	if logged 'msg="price service back up"'; then
		fail "the outage ended and Prometheus never reported the breaker open (levee_circuit_breaker_state{levee_circuit_breaker_state=\"open\"} == 1)"
	fi
	state_is open 1
}
wait_for "the breaker to read open in Prometheus" 20 open_seen_during_outage
log "during the outage Prometheus reports levee_circuit_breaker_state{levee_circuit_breaker_state=\"open\"} = 1"

wait_for "the outage to end" 20 logged 'msg="price service back up"'
log "outage over"
closed_after_outage() { state_is closed 1 && state_is open 0 && state_is half_open 0; }
wait_for "the breaker to read closed again in Prometheus" 20 closed_after_outage
log "after the outage Prometheus reports closed = 1, open = 0, half_open = 0"

# ---- the dashboard queries, read from the doc ------------------------------

wait_for "the example's traffic to end" 20 logged 'msg="traffic done"'
sleep 2 # two more scrapes, so the last counts are stored

queries=()
while IFS= read -r q; do
	queries+=("$q")
done < <(awk '
	/^```promql[[:space:]]*$/ { inside = 1; q = ""; next }
	inside && /^```[[:space:]]*$/ { print q; inside = 0; next }
	inside { sub(/^[[:space:]]+/, ""); q = (q == "" ? $0 : q " " $0) }
' "$doc")
[ ${#queries[@]} -ge 5 ] || fail "found only ${#queries[@]} promql blocks in $doc"
for q in "${queries[@]}"; do
	check_budget "running the doc's queries"
	query "$q" || fail "query failed: $q"
	n=$(jq '.data.result | length' "$tmp/last_response.json")
	[ "$n" -gt 0 ] || fail "no data for the query from $doc: $q"
	log "ok, $n series: $q"
done

# ---- the Grafana dashboard's queries, read from its JSON -------------------

panels=0
while IFS=$'\t' read -r panel ref title q; do
	check_budget "running the dashboard's queries"
	query "$q" || fail "query failed: panel $panel ($title) $ref: $q"
	n=$(jq '.data.result | length' "$tmp/last_response.json")
	[ "$n" -gt 0 ] || fail "no data for panel $panel ($title), target $ref, of $dashboard: $q"
	log "ok, $n series: panel $panel ($title) $ref"
	panels=$((panels + 1))
done <"$tmp/dashboard_queries.tsv"
[ "$panels" -ge 20 ] || fail "found only $panels queries in $dashboard"

# Every levee metric the example exports is on the dashboard (a histogram by
# its _bucket series): a new signal needs a panel.
metrics_up || fail "the example's /metrics is gone"
while IFS= read -r family; do
	grep -qF "$family" "$dashboard" || fail "the example exports $family and no panel of $dashboard queries it"
done < <(grep -o '^levee_[a-z_]*' "$tmp/metrics.txt" | sed 's/_\(sum\|count\)$/_bucket/' | sort -u)

log "PASS in ${SECONDS}s: Prometheus saw the breaker open during the outage and closed after it; ${#queries[@]} queries from $doc and $panels from $dashboard returned data"
