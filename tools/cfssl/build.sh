#!/bin/sh
# Builds the pinned CFSSL binary used by internal/ca's external-CA test.
# Usage: tools/cfssl/build.sh [OUTPUT_DIR]   (default: tools/cfssl/bin)
# The test finds it through $PALISADE_CFSSL, or tools/cfssl/bin/cfssl.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/bin"}
mkdir -p "$out"
cd "$here"
CGO_ENABLED=${CGO_ENABLED:-0} go build -o "$out/cfssl" github.com/cloudflare/cfssl/cmd/cfssl
echo "$out/cfssl"
