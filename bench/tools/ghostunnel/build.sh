#!/bin/sh
# Builds the pinned ghostunnel mTLS proxy the benchmark harness measures
# Palisade against. v1.8.4 is the version the module proxy serves.
# Usage: bench/tools/ghostunnel/build.sh [OUTPUT_DIR]   (default: bench/tools/ghostunnel/bin)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/bin"}
mkdir -p "$out"
cd "$here"
GONOSUMDB=github.com/landlock-lsm/go-landlock CGO_ENABLED=1 go build -o "$out/ghostunnel" github.com/ghostunnel/ghostunnel
echo "$out/ghostunnel"
