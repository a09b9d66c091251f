#!/usr/bin/env bash
# chromium.sh: makes sure Debian's chromium is on this machine, for the
# dashboard's browser test (examples/dashboard/browser_test.go, which drives
# it headless through chromedp and fails, never skips, without it). Installs
# it with apt-get when missing; bounded, so a slow mirror fails CI with a
# message instead of hanging.
set -euo pipefail
if command -v chromium >/dev/null; then
	chromium --version 2>/dev/null
	exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "chromium.sh: chromium missing and not root: install Debian's chromium" >&2; exit 1; }
command -v apt-get >/dev/null || { echo "chromium.sh: chromium missing and no apt-get" >&2; exit 1; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT
timeout 150 apt-get update -qq >"$log" 2>&1 || { tail -n 20 "$log" >&2; echo "chromium.sh: apt-get update failed or timed out" >&2; exit 1; }
candidate=$(apt-cache policy chromium | sed -n 's/^ *Candidate: *//p')
[ -n "$candidate" ] && [ "$candidate" != "(none)" ] || { echo "chromium.sh: Debian offers no 'chromium' package (apt-cache policy chromium)" >&2; exit 1; }
DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq --no-install-recommends chromium >"$log" 2>&1 ||
	{ tail -n 20 "$log" >&2; echo "chromium.sh: apt-get install chromium failed or timed out" >&2; exit 1; }
chromium --version 2>/dev/null
