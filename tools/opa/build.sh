#!/bin/sh
# Builds the pinned Open Policy Agent binaries used by internal/extauthz's
# integration tests and benchmarks:
#   opa-envoy-plugin  the Envoy ext_authz gRPC server (v1.4.2-envoy)
#   opa               the OPA CLI, for `opa test` (v1.22.2)
# Each lives in its own module because the plugin pins an older OPA.
# Usage: tools/opa/build.sh [OUTPUT_DIR]   (default: tools/opa/bin)
# The tests find them through $PALISADE_OPA_ENVOY and $PALISADE_OPA, or in
# tools/opa/bin/.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/bin"}
mkdir -p "$out"
out=$(cd "$out" && pwd)
export CGO_ENABLED="${CGO_ENABLED:-0}"
(cd "$here/envoy" && go build -trimpath -o "$out/opa-envoy-plugin" github.com/open-policy-agent/opa-envoy-plugin/cmd/opa-envoy-plugin)
(cd "$here/cli" && go build -trimpath -o "$out/opa" github.com/open-policy-agent/opa)
echo "$out/opa-envoy-plugin"
echo "$out/opa"
