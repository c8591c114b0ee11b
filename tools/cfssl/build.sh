#!/bin/sh
# Builds the pinned CFSSL binary used by internal/ca's external-CA test.
# Usage: tools/cfssl/build.sh [OUTPUT_DIR]   (default: tools/cfssl/bin)
# The test finds it through $PALISADE_CFSSL, or tools/cfssl/bin/cfssl.
# CFSSL v1.7 needs Go 1.27: this tool module alone is built with the
# go1.27.3 toolchain, which the go command fetches from the module proxy;
# Palisade itself stays on the machine's Go 1.26.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/bin"}
mkdir -p "$out"
cd "$here"
GOTOOLCHAIN=go1.27.3 CGO_ENABLED=${CGO_ENABLED:-0} go build -o "$out/cfssl" github.com/cloudflare/cfssl/cmd/cfssl
echo "$out/cfssl"
