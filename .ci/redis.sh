#!/usr/bin/env bash
# redis.sh: makes sure Debian's redis-server is on this machine, for
# leveeredis's tests (which start their own servers on loopback, through
# leveeredis/internal/redistest). Installs it with apt-get when missing;
# bounded, so a slow mirror fails CI with a message instead of hanging.
set -euo pipefail
if command -v redis-server >/dev/null; then
	redis-server --version
	exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "redis.sh: redis-server missing and not root: install Debian's redis-server" >&2; exit 1; }
command -v apt-get >/dev/null || { echo "redis.sh: redis-server missing and no apt-get" >&2; exit 1; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT
timeout 150 apt-get update -qq >"$log" 2>&1 || { tail -n 20 "$log" >&2; echo "redis.sh: apt-get update failed or timed out" >&2; exit 1; }
DEBIAN_FRONTEND=noninteractive timeout 150 apt-get install -y -qq --no-install-recommends redis-server >"$log" 2>&1 ||
	{ tail -n 20 "$log" >&2; echo "redis.sh: apt-get install redis-server failed or timed out" >&2; exit 1; }
# The package's own service is not what the tests use: they start servers
# of their own on free ports.
service redis-server stop >/dev/null 2>&1 || true
redis-server --version
