#!/usr/bin/env bash
# lean-deps.sh: proves that a user who imports github.com/levee-go/levee/breaker
# gets no Prometheus, no OpenTelemetry exporter, no gRPC and no Redis client in their module
# graph (DESIGN.md, "Layout": exporters live only in the examples module,
# gRPC only in the leveegrpc module, the Redis client only in leveeredis).
#
# It writes a throwaway module in a temporary directory that imports breaker,
# with a replace directive pointing at this checkout, runs `go mod tidy` and
# `go list -m all` there with GOWORK=off (as a user's module would be, outside
# our workspace), prints every module it found, and fails if any module path
# matches prometheus, otel/exporters or google.golang.org/grpc. Needs only Go
# and the module proxy.
#
# Usage: .ci/lean-deps.sh [checkout]   (default: the checkout holding this script)
set -euo pipefail

checkout=$(cd "${1:-$(dirname "$0")/..}" && pwd)
[ -f "$checkout/go.mod" ] || { echo "lean-deps: no go.mod in $checkout" >&2; exit 1; }
readonly forbidden='prometheus|otel/exporters|google.golang.org/grpc|redis'

tmp=$(mktemp -d "${TMPDIR:-/tmp}/levee-lean-deps.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

cat >"$tmp/go.mod" <<MOD
module example.com/leveeuser

go 1.26.0

require github.com/levee-go/levee v0.0.0-00010101000000-000000000000

replace github.com/levee-go/levee => $checkout
MOD
cat >"$tmp/main.go" <<'GO'
// Command leveeuser is a user of levee's breaker and nothing else.
package main

import (
	"context"
	"fmt"

	"github.com/levee-go/levee/breaker"
)

func main() {
	b := breaker.New("lean")
	fmt.Println(b.Call(context.Background(), func(context.Context) error { return nil }), b.State())
}
GO

cd "$tmp"
export GOWORK=off
go mod tidy
go build -o /dev/null .
go list -m all >"$tmp/modules.txt"

echo "lean-deps: a module importing github.com/levee-go/levee/breaker lists $(wc -l <"$tmp/modules.txt") modules in 'go list -m all' (its own first):"
sed 's/^/  /' "$tmp/modules.txt"
if found=$(awk '{print $1}' "$tmp/modules.txt" | grep -iE "$forbidden"); then
	echo "lean-deps: FAIL: modules matching '$forbidden':"
	echo "$found" | sed 's/^/  /'
	exit 1
fi
echo "lean-deps: PASS: none matches '$forbidden'"
