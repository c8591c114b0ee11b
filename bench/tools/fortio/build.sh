#!/bin/sh
# Builds the pinned fortio load generator used by the benchmark harness.
# Usage: bench/tools/fortio/build.sh [OUTPUT_DIR]   (default: bench/tools/fortio/bin)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/bin"}
mkdir -p "$out"
cd "$here"
go build -o "$out/fortio" fortio.org/fortio
echo "$out/fortio"
