#!/usr/bin/env bash
# Builds the pinned staticcheck into OUT_DIR (default tools/staticcheck/bin).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/bin"}
mkdir -p "$out"
cd "$here"
go build -o "$out/staticcheck" honnef.co/go/tools/cmd/staticcheck
echo "$out/staticcheck"
