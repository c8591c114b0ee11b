#!/bin/sh
# Builds the pinned Dex OIDC provider used by internal/jwt's end-to-end test.
# Usage: tools/dex/build.sh [OUTPUT_DIR]   (default: tools/dex/bin)
# The test finds it through $PALISADE_DEX, or tools/dex/bin/dex.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/bin"}
mkdir -p "$out"
cd "$here"
CGO_ENABLED=1 go build -o "$out/dex" github.com/dexidp/dex/cmd/dex
echo "$out/dex"
