#!/usr/bin/env bash
# Checks that the sidecars built with -race answer every benchmark path
# with the same response codes as the normal build: bin/ (make build) and
# bin-race/ (go build -race), then `meshbench codes`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
make --no-print-directory build
go build -race -o bin-race/ ./cmd/palisade ./cmd/palisade-proxy
fortio=bench/tools/fortio/bin/fortio
[ -x "$fortio" ] || bench/tools/fortio/build.sh >/dev/null
go run ./bench/cmd/meshbench codes -bin bin -race-bin bin-race -fortio "$fortio" "$@"
